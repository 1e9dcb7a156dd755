package version

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	defer func(v, r string) { Version, Revision = v, r }(Version, Revision)

	noInfo := func() (*debug.BuildInfo, bool) { return nil, false }
	vcs := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "feedbeef"}}}, true
	}

	Version, Revision = "dev", ""
	if got := revision(noInfo); got != "" {
		t.Errorf("revision without build info = %q, want empty", got)
	}
	if got := revision(vcs); got != "feedbeef" {
		t.Errorf("revision from build info = %q, want feedbeef", got)
	}
	Revision = "0123abcd"
	if got := revision(vcs); got != "0123abcd" {
		t.Errorf("revision set at link time = %q, want it to win over the build info", got)
	}

	for _, tc := range []struct {
		info Info
		want string
	}{
		{Info{Version: "v0.2.0", Revision: "0123abcd"}, "v0.2.0 (revision 0123abcd)"},
		{Info{Version: "dev"}, "dev (revision unknown)"},
	} {
		if got := tc.info.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.info, got, tc.want)
		}
	}

	Version, Revision = "v1.2.3", "cafe"
	var b bytes.Buffer
	Print(&b, "manager")
	if got, want := b.String(), "manager v1.2.3 (revision cafe)\n"; got != want {
		t.Errorf("Print = %q, want %q", got, want)
	}
}
