package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	root    = "../.."
	version = "v0.2.0-rc.1"
)

// standIns writes a tiny file per platform where the cross-compiled plugin
// would be; the test never builds the plugin.
func standIns(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range Platforms {
		path := p.BinaryPath(dir)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("plugin for "+p.OS+"/"+p.Arch), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func options(buildDir, out string) Options {
	return Options{
		Version: version, Out: out, KustomizeDir: root + "/config/default", ChartDir: root + "/charts/licenseha",
		License: root + "/LICENSE", BuildDir: buildDir, SkipBuild: true,
	}
}

func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

type member struct {
	mode    int64
	content string
}

func readTarGz(t *testing.T, path string) map[string]member {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]member{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(epoch) || h.Typeflag != tar.TypeReg {
			t.Errorf("%s: %s: owner %d:%d (%q:%q), time %v, type %c; want a regular file of 0:0 at %v",
				path, h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, h.Typeflag, epoch)
		}
		data, _ := io.ReadAll(tr)
		out[h.Name] = member{mode: h.Mode, content: string(data)}
	}
}

func readZip(t *testing.T, path string) map[string]member {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string]member{}
	for _, f := range zr.File {
		if !f.Modified.Equal(epoch) {
			t.Errorf("%s: %s: time %v, want %v", path, f.Name, f.Modified, epoch)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = member{mode: int64(f.Mode().Perm()), content: string(data)}
	}
	return out
}

func TestRelease(t *testing.T) {
	buildDir := standIns(t)
	out := filepath.Join(t.TempDir(), "dist")
	if err := Release(options(buildDir, out)); err != nil {
		t.Fatal(err)
	}
	license, err := os.ReadFile(root + "/LICENSE")
	if err != nil {
		t.Fatal(err)
	}

	// The archives: the plugin and LICENSE at the root, nothing else.
	for _, p := range Platforms {
		path := filepath.Join(out, p.Archive(version))
		var got map[string]member
		if p.OS == "windows" {
			got = readZip(t, path)
		} else {
			got = readTarGz(t, path)
		}
		want := map[string]member{
			p.Binary(): {0o755, "plugin for " + p.OS + "/" + p.Arch},
			"LICENSE":  {0o644, string(license)},
		}
		if len(got) != len(want) {
			t.Errorf("%s holds %d files, want %d", path, len(got), len(want))
		}
		for name, w := range want {
			if g, ok := got[name]; !ok || g != w {
				t.Errorf("%s: %s = mode %o, %d bytes; want mode %o, %d bytes", path, name, g.mode, len(g.content), w.mode, len(w.content))
			}
		}
	}

	// The krew manifest: one entry per archive, its URL and checksum.
	data, err := os.ReadFile(filepath.Join(out, KrewManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m KrewPlugin
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainers.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "licenseha" ||
		m.Spec.Version != version || m.Spec.ShortDescription == "" || len(m.Spec.Platforms) != len(Platforms) {
		t.Fatalf("krew manifest:\n%s", data)
	}
	for i, p := range Platforms {
		kp := m.Spec.Platforms[i]
		archive := p.Archive(version)
		content, err := os.ReadFile(filepath.Join(out, archive))
		if err != nil {
			t.Fatal(err)
		}
		if want := "https://github.com/licenseha/licenseha/releases/download/" + version + "/" + archive; kp.URI != want {
			t.Errorf("platform %d: uri %s, want %s", i, kp.URI, want)
		}
		if kp.Sha256 != sha256Hex(content) {
			t.Errorf("%s: sha256 %s in the manifest, %s on disk", archive, kp.Sha256, sha256Hex(content))
		}
		if kp.Selector.MatchLabels["os"] != p.OS || kp.Selector.MatchLabels["arch"] != p.Arch || kp.Bin != p.Binary() {
			t.Errorf("%s: selector %v, bin %s", archive, kp.Selector.MatchLabels, kp.Bin)
		}
	}

	// checksums.txt: every other file, as sha256sum writes it.
	sums, err := os.ReadFile(filepath.Join(out, ChecksumsFile))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(sums), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("checksums.txt line %q", line)
		}
		listed[name] = sum
	}
	entries, _ := os.ReadDir(out)
	var files []string
	for _, e := range entries {
		if e.Name() == ChecksumsFile {
			continue
		}
		files = append(files, e.Name())
		content, _ := os.ReadFile(filepath.Join(out, e.Name()))
		if listed[e.Name()] != sha256Hex(content) {
			t.Errorf("checksums.txt: %s %q, want %s", e.Name(), listed[e.Name()], sha256Hex(content))
		}
	}
	if len(listed) != len(files) || len(files) != len(Platforms)+2 {
		t.Errorf("checksums.txt lists %d files, dist holds %v; want the archives, %s and %s", len(listed), files, InstallFile, KrewManifestFile)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "--check", "--strict", ChecksumsFile)
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum --check: %v\n%s", err, b)
		}
	}

	// install.yaml: the CRDs, the namespace, RBAC and the operator running
	// the release's image.
	manifests, err := os.ReadFile(filepath.Join(out, InstallFile))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]string{}
	var deploy appsv1.Deployment
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var u unstructured.Unstructured
		if err := d.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		kinds[u.GetKind()] = append(kinds[u.GetKind()], u.GetName())
		if u.GetKind() == "Deployment" {
			raw, _ := yaml.Marshal(u.Object)
			if err := yaml.Unmarshal(raw, &deploy); err != nil {
				t.Fatal(err)
			}
		}
	}
	crds := kinds["CustomResourceDefinition"]
	sort.Strings(crds)
	if strings.Join(crds, ",") != "licensebackuppairs.licenseha.io,licensetriads.licenseha.io" {
		t.Errorf("CRDs %v", crds)
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if len(kinds[k]) == 0 {
			t.Errorf("install.yaml has no %s", k)
		}
	}
	if deploy.Name != "licenseha-operator" || deploy.Namespace != "licenseha-system" ||
		deploy.Spec.Template.Spec.Containers[0].Image != "ghcr.io/licenseha/licenseha:"+version ||
		deploy.Labels["app.kubernetes.io/version"] != version {
		t.Errorf("Deployment %s/%s: image %s, labels %v; want the release's image and version label", deploy.Namespace, deploy.Name,
			deploy.Spec.Template.Spec.Containers[0].Image, deploy.Labels)
	}

	// The same inputs give the same bytes.
	again := filepath.Join(t.TempDir(), "dist")
	if err := Release(options(buildDir, again)); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, ChecksumsFile) {
		a, _ := os.ReadFile(filepath.Join(out, f))
		b, _ := os.ReadFile(filepath.Join(again, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs", f)
		}
	}

	// A release never mixes with an earlier one's files: it refuses a full
	// folder, or with Replace empties it first, unless it holds a folder.
	if err := Release(options(buildDir, out)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("release into a full folder = %v, want a refusal", err)
	}
	o := options(buildDir, out)
	o.Replace = true
	if err := os.WriteFile(filepath.Join(out, "kubectl-licenseha_v0.1.0_linux_amd64.tar.gz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Release(o); err != nil {
		t.Fatalf("release replacing an earlier one: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "kubectl-licenseha_v0.1.0_linux_amd64.tar.gz")); err == nil {
		t.Error("an earlier release's file survived Replace")
	}
	if err := os.Mkdir(filepath.Join(out, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Release(o); err == nil || !strings.Contains(err.Error(), "no release file") {
		t.Errorf("Replace on a folder holding a folder = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(out, InstallFile)); err != nil {
		t.Errorf("the refused Replace removed files: %v", err)
	}
}

func TestReleaseRefusesBadVersions(t *testing.T) {
	buildDir := standIns(t)
	for _, v := range []string{"", "dev", "0.2.0", "v0.2", "v0.2.0+build.1", "v01.2.3", "v0.2.0-"} {
		out := filepath.Join(t.TempDir(), "dist")
		o := options(buildDir, out)
		o.Version = v
		if err := Release(o); err == nil {
			t.Errorf("version %q accepted", v)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("version %q: %s written", v, out)
		}
	}
}

func TestReleaseNeedsEveryBinary(t *testing.T) {
	buildDir := standIns(t)
	if err := os.Remove(Platforms[len(Platforms)-1].BinaryPath(buildDir)); err != nil {
		t.Fatal(err)
	}
	if err := Release(options(buildDir, filepath.Join(t.TempDir(), "dist"))); err == nil {
		t.Error("release without the Windows binary succeeded")
	}
}

// TestChart packages the chart with the pinned helm (make helm; HELM names
// another) and checks the stamped versions and that the bytes repeat.
func TestChart(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		helm = root + "/bin/helm"
	}
	if _, err := os.Stat(helm); err != nil {
		t.Skipf("no helm at %s (make helm, or set HELM)", helm)
	}
	var sums []string
	for range 2 {
		out := t.TempDir()
		o := options("", out)
		o.Helm = helm
		if err := packageChart(o); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(out, "licenseha-0.2.0-rc.1.tgz")
		if err := CheckChart(path, version); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sha256Hex(data))
	}
	if sums[0] != sums[1] {
		t.Errorf("two packagings of the chart differ: %v", sums)
	}
}
