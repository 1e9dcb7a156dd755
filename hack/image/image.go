package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// PauseImage is the pause image's name; the real-node cluster configures
// it as containerd's sandbox_image.
const PauseImage = "localhost/licenseha/pause:dev"

// epoch is the time of every file and of the image config: a fixed date
// keeps the digest a function of the binaries alone.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Spec is an image of static files: one layer on a base image, or alone.
type Spec struct {
	// Files maps paths in the image (without the leading /) to files on
	// disk; they are made executable (0755) and owned by root.
	Files map[string]string
	// Data maps paths in the image to the content of plain files (0644),
	// e.g. /etc/passwd of an image without a base.
	Data       map[string][]byte
	Entrypoint []string
	User       string
	// Labels are added to the base's (OCI annotations keys, e.g.
	// org.opencontainers.image.version).
	Labels map[string]string
	// Base is the image the layer goes on; nil: none (scratch).
	Base v1.Image
}

// Build returns the image of spec for linux/amd64.
func Build(spec Spec) (v1.Image, error) {
	layerTar, err := layerTarball(spec.Files, spec.Data)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	base := spec.Base
	if base == nil {
		base = empty.Image
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "hack/image", Comment: "static binaries",
	}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = spec.Entrypoint
	cfg.Config.Cmd = nil
	cfg.Config.User = spec.User
	if len(cfg.Config.Env) == 0 {
		cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	if len(spec.Labels) > 0 && cfg.Config.Labels == nil {
		cfg.Config.Labels = map[string]string{}
	}
	for k, v := range spec.Labels {
		cfg.Config.Labels[k] = v
	}
	return mutate.ConfigFile(img, cfg)
}

// WriteImage builds spec and writes it, named tag, as a tarball that
// `ctr images import` and `docker load` accept.
func WriteImage(file, tag string, spec Spec) error {
	img, err := Build(spec)
	if err != nil {
		return fmt.Errorf("building %s: %w", tag, err)
	}
	return WriteTarball(file, tag, img)
}

// WriteTarball writes img, named tag, as a tarball.
func WriteTarball(file, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}

// layerTarball is the layer: the parent directories, then the files, in
// name order, with fixed times and owners.
func layerTarball(files map[string]string, data map[string][]byte) ([]byte, error) {
	names := make([]string, 0, len(files)+len(data))
	dirs := map[string]bool{}
	for _, n := range append(slices.Collect(maps.Keys(files)), slices.Collect(maps.Keys(data))...) {
		if _, both := files[n]; both && data[n] != nil {
			return nil, fmt.Errorf("%s: given twice", n)
		}
		names = append(names, n)
		for d := path.Dir(n); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sort.Strings(names)
	dirNames := make([]string, 0, len(dirs))
	for d := range dirs {
		dirNames = append(dirNames, d)
	}
	sort.Strings(dirNames)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirNames {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		content, mode := data[n], int64(0o644)
		if src, ok := files[n]; ok {
			var err error
			if content, err = os.ReadFile(src); err != nil {
				return nil, fmt.Errorf("%w (run make build)", err)
			}
			mode = 0o755
		}
		if strings.HasPrefix(n, "/") {
			return nil, fmt.Errorf("%s: paths in the image are relative", n)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(content)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
