// Package version holds the version and source revision of the licenseha
// binaries. The Makefile sets both at link time (LDFLAGS):
//
//	-X github.com/licenseha/licenseha/internal/version.Version=v0.2.0
//	-X github.com/licenseha/licenseha/internal/version.Revision=<git commit>
//
// A binary built without them reports "dev" and, when the go command
// recorded it, the commit of the checkout it was built from.
package version

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Version is the release (a semantic version with a leading v, the same as
// the image tag), or "dev".
var Version = "dev"

// Revision is the git commit the binary was built from; empty when unknown.
var Revision = ""

// Info is the version of a binary, as printed by --version and reported by
// `kubectl licenseha version -o json|yaml`.
type Info struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
}

// Get returns Version and Revision; without a Revision set at link time, the
// commit the go command stamped into the binary (vcs.revision), if any.
func Get() Info {
	return Info{Version: Version, Revision: revision(debug.ReadBuildInfo)}
}

func revision(read func() (*debug.BuildInfo, bool)) string {
	if Revision != "" {
		return Revision
	}
	bi, ok := read()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

// String is the version and revision in one line: "v0.2.0 (revision
// 1a2b3c...)", or "dev (revision unknown)".
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("%s (revision %s)", i.Version, rev)
}

// Print writes what every binary's --version prints: its name, version and
// revision.
func Print(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, Get())
}
