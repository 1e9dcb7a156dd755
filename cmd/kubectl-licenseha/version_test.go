package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/licenseha/licenseha/internal/version"
)

func TestVersionFlagAndClient(t *testing.T) {
	defer func(v, r string) { version.Version, version.Revision = v, r }(version.Version, version.Revision)
	version.Version, version.Revision = "v1.2.3", "0123abcd"

	out, err := run(t, "--version")
	if err != nil || out != "kubectl-licenseha v1.2.3 (revision 0123abcd)\n" {
		t.Fatalf("--version = %q, %v", out, err)
	}
	out, err = run(t, "version", "--client")
	if err != nil || out != "Plugin:   v1.2.3 (revision 0123abcd)\n" {
		t.Fatalf("version --client = %q, %v", out, err)
	}
	if _, err := run(t, "version", "-o", "table"); err == nil {
		t.Fatal("version -o table succeeded; want a refusal")
	}
}

// Without a reachable cluster `version` still succeeds and says why the
// operator's version is unknown.
func TestVersionWithoutCluster(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "--kubeconfig", kubeconfig, "version")
	if err != nil || !strings.Contains(out, "Operator: unknown (operator not found: ") {
		t.Fatalf("version against no cluster = %v\n%s", err, out)
	}
	out, err = run(t, "--kubeconfig", kubeconfig, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var info VersionInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if info.Plugin.Version == "" || len(info.Operators) != 0 || !strings.HasPrefix(info.OperatorError, "operator not found: ") {
		t.Fatalf("version -o json = %+v", info)
	}
}

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"ghcr.io/licenseha/licenseha:v0.2.0":                         "v0.2.0",
		"registry.example.com:5000/team/licenseha:v0.2.0-rc.1":       "v0.2.0-rc.1",
		"registry.example.com:5000/team/licenseha":                   "",
		"ghcr.io/licenseha/licenseha:v0.2.0@sha256:0123456789abcdef": "v0.2.0",
		"ghcr.io/licenseha/licenseha@sha256:0123456789abcdef":        "",
		"licenseha:dev": "dev",
		"":              "",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}
