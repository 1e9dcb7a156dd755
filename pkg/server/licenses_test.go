package server

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRefusedLicencesAreReported(t *testing.T) {
	sg := newSigner(t)
	stranger := newSigner(t)
	dir := sg.licenceDir(t, "good.lic", 2)
	expired := sg.license("LIC-2", "LabelDesigner", 2)
	expired.NotAfter = testStart.AddDate(0, 0, -1)
	sg.write(t, dir, "expired.lic", expired)
	future := sg.license("LIC-3", "LabelDesigner", 2)
	future.NotBefore = testStart.AddDate(0, 1, 0)
	sg.write(t, dir, "future.lic", future)
	other := sg.license("LIC-4", "LabelDesigner", 2)
	other.Group = "printing/plant-b"
	sg.write(t, dir, "other-group.lic", other)
	stranger.write(t, dir, "untrusted.lic", stranger.license("LIC-5", "LabelDesigner", 2))
	sg.write(t, dir, "tampered.lic", sg.license("LIC-6", "LabelDesigner", 2))
	tamper(t, filepath.Join(dir, "tampered.lic"), `"printers": 2,`, `"printers": 200,`)
	if err := os.WriteFile(filepath.Join(dir, "garbage.lic"), []byte("not a licence"), 0o600); err != nil {
		t.Fatal(err)
	}
	sg.write(t, dir, "ignored.txt", sg.license("LIC-7", "LabelDesigner", 2))

	ts := newTestServer(t, sg, withLicenseDir(dir))
	want := map[string]string{
		"good.lic":        "",
		"expired.lic":     "licence has expired",
		"future.lic":      "licence is not valid yet",
		"other-group.lic": `bound to group "printing/plant-b"`,
		"untrusted.lic":   "untrusted key",
		"tampered.lic":    "changed after it was signed",
		"garbage.lic":     "malformed",
	}
	var st Status
	if code := call(t, http.MethodGet, ts.client.URL+"/v1/status", nil, &st); code != http.StatusOK {
		t.Fatalf("status = %d", code)
	}
	if len(st.Licenses) != len(want) {
		t.Fatalf("status lists %d licence files, want %d: %+v", len(st.Licenses), len(want), st.Licenses)
	}
	for _, l := range st.Licenses {
		reason, ok := want[l.File]
		if !ok || l.Valid != (reason == "") || !strings.Contains(l.Reason, reason) {
			t.Errorf("%s: valid=%v reason=%q, want reason containing %q", l.File, l.Valid, l.Reason, reason)
		}
	}
	if code, _, e := ts.checkout(t, "alice", "p1", "LIC-2"); code != http.StatusConflict || e.Code != CodeLicenseInvalid || !strings.Contains(e.Message, "expired") {
		t.Fatalf("checkout on an expired licence = %d %+v, want 409 license_invalid saying expired", code, e)
	}
	if code, c, _ := ts.checkout(t, "alice", "p1", "LabelDesigner"); code != http.StatusCreated || c.License != "LIC-1" {
		t.Fatalf("checkout by product = %d %+v, want the only valid licence LIC-1", code, c)
	}
}

func TestReloadPicksUpNewLicences(t *testing.T) {
	sg := newSigner(t)
	dir := t.TempDir()
	ts := newTestServer(t, sg, withLicenseDir(dir))
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusNotFound {
		t.Fatalf("checkout before the licence exists = %d, want 404", code)
	}
	sg.write(t, dir, "lic-1.lic", sg.license("LIC-1", "LabelDesigner", 2))
	lics, err := ts.adminClient().ReloadLicenses(context.Background())
	if err != nil || len(lics) != 1 || !lics[0].Valid {
		t.Fatalf("reload = %+v, %v; want LIC-1 valid", lics, err)
	}
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout after reload = %d, want 201", code)
	}
	got, err := ts.adminClient().Licenses(context.Background())
	if err != nil || got[0].InUse != 1 {
		t.Fatalf("admin licences = %+v, %v; want one seat in use", got, err)
	}
}

func tamper(t *testing.T, path, old, repl string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), old, repl, 1)
	if changed == string(data) {
		t.Fatalf("tamper: %q not found in %s", old, path)
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRunNoticesChangedLicenceFiles(t *testing.T) {
	sg := newSigner(t)
	dir := t.TempDir()
	ts := newTestServer(t, sg, withLicenseDir(dir), func(o *Options) { o.LicenseCheckInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Kubernetes swaps a mounted Secret's files in place.
	sg.write(t, dir, "lic-1.lic", sg.license("LIC-1", "LabelDesigner", 2))
	waitFor(t, func() bool { l := ts.Licenses(); return len(l) == 1 && l[0].Valid })
	short := sg.license("LIC-1", "LabelDesigner", 2)
	short.NotAfter = testStart.Add(time.Minute)
	sg.write(t, dir, "lic-1.lic", short)
	ts.clock.Advance(2 * time.Minute)
	waitFor(t, func() bool { l := ts.Licenses(); return len(l) == 1 && strings.Contains(l[0].Reason, "expired") })
}

func TestCheckoutRefusedOnceLicenceExpired(t *testing.T) {
	sg := newSigner(t)
	dir := t.TempDir()
	short := sg.license("LIC-1", "LabelDesigner", 2)
	short.NotAfter = testStart.Add(time.Minute)
	sg.write(t, dir, "lic-1.lic", short)
	ts := newTestServer(t, sg, withLicenseDir(dir))
	ts.clock.Advance(2 * time.Minute) // before the next periodic re-verification
	code, _, e := ts.checkout(t, "alice", "p1", "LIC-1")
	if code != http.StatusConflict || e.Code != CodeLicenseInvalid || !strings.Contains(e.Message, "expired") {
		t.Fatalf("checkout on a licence that just expired = %d %+v, want 409 license_invalid", code, e)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
