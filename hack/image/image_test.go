package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerFile is an entry of an image's only layer.
type layerFile struct {
	header  *tar.Header
	content []byte
}

// layerFiles reads the entries of img's only layer.
func layerFiles(t *testing.T, img v1.Image) []layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []layerFile
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerFile{header: h, content: content})
	}
}

// TestImage writes an image of two files and reads it back: the file list,
// modes and owners, entrypoint and user are those asked for, and a second
// build gives the same digest.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, n := range []string{"manager", "agent"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte("binary "+n), 0o644); err != nil {
			t.Fatal(err)
		}
		files["usr/local/bin/"+n] = p
	}
	spec := Spec{Files: files, Entrypoint: []string{"/usr/local/bin/manager"}, User: "65532:65532"}
	out := filepath.Join(dir, "image.tar")
	if err := WriteImage(out, "example.test/licenseha:dev", spec); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example.test/licenseha:dev")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Entrypoint, spec.Entrypoint) || cfg.Config.User != spec.User || cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("config: entrypoint %v, user %q, platform %s/%s", cfg.Config.Entrypoint, cfg.Config.User, cfg.OS, cfg.Architecture)
	}
	var got []string
	for _, f := range layerFiles(t, img) {
		h := f.header
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) || (h.Typeflag == tar.TypeReg && h.Mode != 0o755) {
			t.Errorf("%s: owner %d:%d, time %s, mode %o", h.Name, h.Uid, h.Gid, h.ModTime, h.Mode)
		}
		got = append(got, h.Name)
	}
	want := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/agent", "usr/local/bin/manager"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files: %v, want %v", got, want)
	}
	first, _ := img.Digest()
	again, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if second, _ := again.Digest(); second != first {
		t.Errorf("digest changed between builds: %s, then %s", first, second)
	}
}
