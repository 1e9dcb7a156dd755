package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	// DefaultImageRepo is where image-push puts release images, and the
	// image config/manager names (with the tag dev).
	DefaultImageRepo = "ghcr.io/licenseha/licenseha"
	// DefaultDownloadURL is where the release's files are published.
	DefaultDownloadURL = "https://github.com/licenseha/licenseha/releases/download"
	homepage           = "https://github.com/licenseha/licenseha"

	pluginName   = "licenseha"
	pluginBinary = "kubectl-licenseha"
	pluginPkg    = "./cmd/kubectl-licenseha"
	operatorName = "licenseha-operator"
	versionLabel = "app.kubernetes.io/version"

	InstallFile      = "install.yaml"
	KrewManifestFile = pluginName + ".yaml"
	ChecksumsFile    = "checksums.txt"
)

// epoch is the time of every file in the archives and the chart, as in
// hack/image: a fixed date, so the same inputs give the same bytes.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// versionRE is a semantic version (semver.org) with a leading v and without
// build metadata, which an image tag cannot hold ("+").
var versionRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?$`)

// Platform is one target of the plugin.
type Platform struct{ OS, Arch string }

// Platforms are the plugin's targets, each one archive and one entry of
// the krew manifest.
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"},
}

// Binary is the plugin's file name on p.
func (p Platform) Binary() string {
	if p.OS == "windows" {
		return pluginBinary + ".exe"
	}
	return pluginBinary
}

// Archive is the name of p's archive in release version.
func (p Platform) Archive(version string) string {
	ext := "tar.gz"
	if p.OS == "windows" {
		ext = "zip"
	}
	return fmt.Sprintf("%s_%s_%s_%s.%s", pluginBinary, version, p.OS, p.Arch, ext)
}

// BinaryPath is where p's binary is built under dir.
func (p Platform) BinaryPath(dir string) string {
	return filepath.Join(dir, p.OS+"_"+p.Arch, p.Binary())
}

// Options say what to build from where; main's flags explain each.
type Options struct {
	Version      string
	Out          string
	KustomizeDir string
	ImageRepo    string
	ChartDir     string
	Helm         string
	License      string
	BuildDir     string
	SkipBuild    bool
	Replace      bool
	Go           string
	LDFlags      string
	DownloadURL  string
}

// ChartVersion is the chart's version for release version: without the v.
func ChartVersion(version string) string { return strings.TrimPrefix(version, "v") }

// ChartFile is the name of the packaged chart.
func ChartFile(version string) string {
	return fmt.Sprintf("%s-%s.tgz", pluginName, ChartVersion(version))
}

// Release writes every artefact into o.Out.
func Release(o Options) error {
	if !versionRE.MatchString(o.Version) {
		return fmt.Errorf("version %q: want a semantic version with a leading v and no build metadata, e.g. v0.2.0 or v0.2.0-rc.1 (make release VERSION=v0.2.0)", o.Version)
	}
	if o.ImageRepo == "" {
		o.ImageRepo = DefaultImageRepo
	}
	if o.DownloadURL == "" {
		o.DownloadURL = DefaultDownloadURL
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Replace {
		if err := removeRelease(o.Out); err != nil {
			return err
		}
	}
	if entries, err := os.ReadDir(o.Out); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty: remove it first", o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	if !o.SkipBuild {
		if err := buildPlugins(o); err != nil {
			return err
		}
	}
	if err := writeInstallYAML(o); err != nil {
		return err
	}
	if o.Helm != "" {
		if err := packageChart(o); err != nil {
			return err
		}
	}
	if err := writeArchives(o); err != nil {
		return err
	}
	if err := writeKrewManifest(o); err != nil {
		return err
	}
	return writeChecksums(o.Out)
}

// removeRelease removes the files of an earlier release from dir; a folder
// in it says dir is something else, and nothing is removed.
func removeRelease(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s holds %s, which is no release file: remove it yourself or choose another folder", dir, e.Name())
		}
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// buildPlugins cross-compiles the plugin for every platform: static
// (CGO_ENABLED=0), -trimpath, the baseline of each architecture.
func buildPlugins(o Options) error {
	var env []string
	for _, e := range os.Environ() {
		switch strings.SplitN(e, "=", 2)[0] {
		case "GOOS", "GOARCH", "CGO_ENABLED", "GOAMD64", "GOARM64":
		default:
			env = append(env, e)
		}
	}
	for _, p := range Platforms {
		start := time.Now()
		out := p.BinaryPath(o.BuildDir)
		cmd := exec.Command(o.Go, "build", "-trimpath", "-ldflags", o.LDFlags, "-o", out, pluginPkg)
		cmd.Env = append(env, "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s for %s/%s: %w", pluginBinary, p.OS, p.Arch, err)
		}
		log.Printf("Built %s in %s", out, time.Since(start).Round(time.Second))
	}
	return nil
}

// writeInstallYAML builds o.KustomizeDir through an overlay that sets the
// image and the version label, like `kustomize edit set image` would.
func writeInstallYAML(o Options) error {
	data, err := installYAML(o.KustomizeDir, o.ImageRepo, o.Version)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.Out, InstallFile), data, 0o644)
}

func installYAML(kustomizeDir, imageRepo, version string) ([]byte, error) {
	base, err := filepath.Abs(kustomizeDir)
	if err != nil {
		return nil, err
	}
	overlay, err := os.MkdirTemp("", "licenseha-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(overlay)
	// kustomize takes no absolute paths.
	rel, err := filepath.Rel(overlay, base)
	if err != nil {
		return nil, err
	}
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{filepath.ToSlash(rel)},
		Images:    []types.Image{{Name: DefaultImageRepo, NewName: imageRepo, NewTag: version}},
		Patches: []types.Patch{{
			Target: operatorSelector(),
			Patch:  fmt.Sprintf(`[{"op": "add", "path": "/metadata/labels/%s", "value": %q}]`, strings.ReplaceAll(versionLabel, "/", "~1"), version),
		}},
	}
	kdata, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), kdata, 0o644); err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy // as kubectl kustomize: namespaces and CRDs first
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", kustomizeDir, err)
	}
	body, err := m.AsYaml()
	if err != nil {
		return nil, err
	}
	image := imageRepo + ":" + version
	if err := CheckInstallYAML(body, image, version); err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", kustomizeDir, err)
	}
	header := fmt.Sprintf("# licenseha %s: the CRDs, the namespace licenseha-system, RBAC, the member agents'\n"+
		"# admission policy and the operator (%s).\n"+
		"# kubectl apply --server-side -f %s\n", version, image, InstallFile)
	return append([]byte(header), body...), nil
}

// operatorSelector selects the operator's Deployment in a kustomization.
func operatorSelector() *types.Selector {
	s := &types.Selector{}
	s.Kind, s.Name = "Deployment", operatorName
	return s
}

// CheckInstallYAML requires manifests to hold the operator's Deployment
// running image, labelled with version, and the CRDs.
func CheckInstallYAML(manifests []byte, image, version string) error {
	var deploy *appsv1.Deployment
	crds := 0
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var raw map[string]any
		if err := d.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		switch raw["kind"] {
		case "CustomResourceDefinition":
			crds++
		case "Deployment":
			data, _ := yaml.Marshal(raw)
			var dep appsv1.Deployment
			if err := yaml.Unmarshal(data, &dep); err != nil {
				return fmt.Errorf("the Deployment: %w", err)
			}
			if dep.Name == operatorName {
				deploy = &dep
			}
		}
	}
	if crds == 0 {
		return errors.New("no CustomResourceDefinition")
	}
	if deploy == nil {
		return fmt.Errorf("no Deployment %s", operatorName)
	}
	for _, c := range deploy.Spec.Template.Spec.Containers {
		if c.Name == "manager" && c.Image != image {
			return fmt.Errorf("the operator's image is %s, want %s (does the kustomization still name %s?)", c.Image, image, DefaultImageRepo)
		}
	}
	if got := deploy.Labels[versionLabel]; got != version {
		return fmt.Errorf("the operator's label %s is %q, want %q", versionLabel, got, version)
	}
	return nil
}

// packageChart packages a copy of the chart whose files carry epoch (Helm
// takes the archive's times from the files), version and appVersion
// stamped: the image tag defaults to appVersion, the release.
func packageChart(o Options) error {
	tmp, err := os.MkdirTemp("", "licenseha-chart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	chart := filepath.Join(tmp, filepath.Base(o.ChartDir))
	if err := copyTree(o.ChartDir, chart); err != nil {
		return err
	}
	cmd := exec.Command(o.Helm, "package", chart, "--version", ChartVersion(o.Version), "--app-version", o.Version, "--destination", o.Out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm package: %w", err)
	}
	return CheckChart(filepath.Join(o.Out, ChartFile(o.Version)), o.Version)
}

// CheckChart requires the packaged chart's Chart.yaml to carry the release.
func CheckChart(path, version string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("%s: no Chart.yaml: %w", path, err)
		}
		if h.Name != pluginName+"/Chart.yaml" {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		var meta struct {
			Version    string `json:"version"`
			AppVersion string `json:"appVersion"`
		}
		if err := yaml.Unmarshal(data, &meta); err != nil {
			return err
		}
		if meta.Version != ChartVersion(version) || meta.AppVersion != version {
			return fmt.Errorf("%s: version %q, appVersion %q; want %q and %q", path, meta.Version, meta.AppVersion, ChartVersion(version), version)
		}
		return nil
	}
}

func copyTree(src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				return err
			}
			return os.Chtimes(target, epoch, epoch)
		default:
			return fmt.Errorf("%s: not a regular file", path)
		}
	})
	if err != nil {
		return err
	}
	// Directories last: writing their files changed their times.
	return filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chtimes(path, epoch, epoch)
	})
}

// archiveFile is one member of a plugin archive.
type archiveFile struct {
	name, path string
	mode       int64
}

func writeArchives(o Options) error {
	for _, p := range Platforms {
		files := []archiveFile{
			{name: p.Binary(), path: p.BinaryPath(o.BuildDir), mode: 0o755},
			{name: "LICENSE", path: o.License, mode: 0o644},
		}
		out := filepath.Join(o.Out, p.Archive(o.Version))
		write := writeTarGz
		if strings.HasSuffix(out, ".zip") {
			write = writeZip
		}
		if err := write(out, files); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
	}
	return nil
}

// createFile creates out, lets fill write it and reports the first error,
// the file's close included.
func createFile(out string, fill func(io.Writer) error) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return fill(f)
}

// writeTarGz writes files into a gzipped tar at the archive's root, owned by
// 0:0 with epoch as their time.
func writeTarGz(out string, files []archiveFile) error {
	return createFile(out, func(f io.Writer) error {
		zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		for _, af := range files {
			data, err := os.ReadFile(af.path)
			if err != nil {
				return err
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: af.name, Mode: af.mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	})
}

// writeZip writes files into a zip at the archive's root, with epoch as
// their time.
func writeZip(out string, files []archiveFile) error {
	return createFile(out, func(f io.Writer) error {
		zw := zip.NewWriter(f)
		for _, af := range files {
			data, err := os.ReadFile(af.path)
			if err != nil {
				return err
			}
			h := &zip.FileHeader{Name: af.name, Method: zip.Deflate, Modified: epoch}
			h.SetMode(fs.FileMode(af.mode))
			w, err := zw.CreateHeader(h)
			if err != nil {
				return err
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		return zw.Close()
	})
}

// KrewPlugin is a krew plugin manifest (krew.googlecontainers.com/v1alpha2).
type KrewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec KrewSpec `json:"spec"`
}

// KrewSpec is the spec of a krew plugin manifest.
type KrewSpec struct {
	Version          string         `json:"version"`
	Homepage         string         `json:"homepage"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description"`
	Platforms        []KrewPlatform `json:"platforms"`
}

// KrewPlatform is one archive of a krew plugin manifest.
type KrewPlatform struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	URI    string     `json:"uri"`
	Sha256 string     `json:"sha256"`
	Bin    string     `json:"bin"`
	Files  []KrewFile `json:"files"`
}

// KrewFile is a file krew copies out of the archive.
type KrewFile struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func writeKrewManifest(o Options) error {
	var m KrewPlugin
	m.APIVersion, m.Kind, m.Metadata.Name = "krew.googlecontainers.com/v1alpha2", "Plugin", pluginName
	m.Spec = KrewSpec{
		Version:          o.Version,
		Homepage:         homepage,
		ShortDescription: "Manage licenseha license server groups",
		Description: "Shows and operates the redundant license server groups of the licenseha operator\n" +
			"(LicenseTriad, LicenseBackupPair): status, switchover, member replacement, settings,\n" +
			"usage statistics, settings bundles for backup pairs and licence files.\n",
	}
	for _, p := range Platforms {
		archive := p.Archive(o.Version)
		sum, err := fileSHA256(filepath.Join(o.Out, archive))
		if err != nil {
			return err
		}
		kp := KrewPlatform{
			URI:    fmt.Sprintf("%s/%s/%s", strings.TrimSuffix(o.DownloadURL, "/"), o.Version, archive),
			Sha256: sum,
			Bin:    p.Binary(),
			Files:  []KrewFile{{From: p.Binary(), To: "."}, {From: "LICENSE", To: "."}},
		}
		kp.Selector.MatchLabels = map[string]string{"os": p.OS, "arch": p.Arch}
		m.Spec.Platforms = append(m.Spec.Platforms, kp)
	}
	data, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.Out, KrewManifestFile), data, 0o644)
}

// writeChecksums lists the SHA-256 of every other file of dir, by name, as
// sha256sum prints them (sha256sum -c checksums.txt verifies them).
func writeChecksums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	names := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != ChecksumsFile {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	return os.WriteFile(filepath.Join(dir, ChecksumsFile), []byte(b.String()), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
