package main

import (
	"archive/tar"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestReleaseImage builds the image as a release does without a base: the
// binaries, the nonroot user and group and a CA bundle, the OCI labels; it
// writes an OCI layout and pushes to a registry (an in-process one speaking
// the registry protocol over HTTP), and both give back the same digest.
func TestReleaseImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "manager")
	if err := os.WriteFile(bin, []byte("binary manager"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := offlineFiles(ca)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Files: map[string]string{"usr/local/bin/manager": bin}, Data: data,
		Entrypoint: []string{"/usr/local/bin/manager"}, User: "65532:65532", Labels: Labels("v1.2.3", "abc123")}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()

	cfg, _ := img.ConfigFile()
	for k, want := range map[string]string{"org.opencontainers.image.version": "v1.2.3",
		"org.opencontainers.image.revision": "abc123", "org.opencontainers.image.licenses": "Apache-2.0"} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	modes := map[string]int64{}
	for _, f := range layerFiles(t, img) {
		if f.header.Typeflag != tar.TypeReg {
			continue
		}
		modes[f.header.Name] = f.header.Mode
		if f.header.Name == "etc/passwd" && !strings.Contains(string(f.content), "nonroot:x:65532:65532:") {
			t.Errorf("/etc/passwd has no nonroot user 65532: %q", f.content)
		}
	}
	for f, want := range map[string]int64{"usr/local/bin/manager": 0o755, "etc/passwd": 0o644, "etc/group": 0o644,
		"etc/ssl/certs/ca-certificates.crt": 0o644} {
		if modes[f] != want {
			t.Errorf("%s: mode %o, want %o (files %v)", f, modes[f], want, modes)
		}
	}

	// OCI layout.
	lay := filepath.Join(dir, "oci")
	if err := WriteLayout(lay, "example.test/licenseha:v1.2.3", img); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := p.ImageIndex()
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != digest ||
		m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "example.test/licenseha:v1.2.3" {
		t.Errorf("layout index %+v, want one image %s named example.test/licenseha:v1.2.3", m.Manifests, digest)
	}

	// Push, then pull by tag.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/licenseha/licenseha:v1.2.3"
	if err := Push(ref, img); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pulled.Digest(); got != digest {
		t.Errorf("pulled %s, pushed %s", got, digest)
	}
}
