// Package guide runs docs/getting-started.md: every ```sh block of the
// guide, in order and unchanged, as one shell script against a fresh local
// cluster (real nodes, the image imported, no CRDs and no operator), as a
// user would type them from a checkout. Run with `make test-guide` (root).
package guide

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/test/harness"
)

// shellBlocks returns the ```sh blocks of a Markdown document, in order.
// Other blocks (```shell: alternatives for other clusters, yaml, tables)
// are not run.
func shellBlocks(doc string) []string {
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

func TestShellBlocks(t *testing.T) {
	doc := "text\n```sh\na\nb\n```\n```shell\nnot run\n```\n```yaml\nx: 1\n```\n```sh\nc <<'EOF'\n  y\nEOF\n```\n"
	got := shellBlocks(doc)
	want := []string{"a\nb\n", "c <<'EOF'\n  y\nEOF\n"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func TestGettingStartedGuide(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the local cluster needs root")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "getting-started.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(doc))
	if len(blocks) < 5 {
		t.Fatalf("docs/getting-started.md has %d sh blocks; want the install, triad, client, NetworkPolicy and uninstall steps", len(blocks))
	}
	for _, b := range []string{"kubectl-licenseha", "helm"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			t.Fatalf("bin/%s is missing: run make build helm", b)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	instance := 4
	if v := os.Getenv("LICENSEHA_GUIDE_INSTANCE"); v != "" {
		if instance, err = strconv.Atoi(v); err != nil {
			t.Fatalf("LICENSEHA_GUIDE_INSTANCE: %v", err)
		}
	}
	env, err := harness.Start(ctx, harness.Options{Instance: instance, Log: t.Logf, NoOperator: true, NoCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Stop()
		if err := env.CheckClean(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	// The user's working directory: a checkout (charts/, bin/) where the
	// guide's files (keys, licence, logs) land.
	work := t.TempDir()
	for _, d := range []string{"charts", "bin"} {
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(work, d)); err != nil {
			t.Fatal(err)
		}
	}
	script := "set -euxo pipefail\n" + strings.Join(blocks, "\n")
	if err := os.WriteFile(filepath.Join(work, "guide.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", "guide.sh")
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+env.Kubeconfig,
		// kubectl, helm and the plugin (found by kubectl on the PATH).
		"PATH="+env.K8sBin+":"+filepath.Join(root, "bin")+":"+os.Getenv("PATH"),
		"HOME="+work,
		"HELM_CACHE_HOME="+filepath.Join(work, ".helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(work, ".helm", "config"),
		"HELM_DATA_HOME="+filepath.Join(work, ".helm", "data"))
	began := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("the guide's commands (%s):\n%s", time.Since(began).Round(time.Second), out)
	if err != nil {
		events, _ := env.Kubectl(context.Background(), "get", "pods,events", "-A")
		t.Fatalf("the guide failed: %v\n%s", err, events)
	}

	// What the user was promised along the way.
	for _, want := range []string{
		"licensetriad.licenseha.io/plant-a condition met", // step 3: Ready
		"on licence LIC-0001",                             // step 4: a seat taken
		"networkpolicy",                                   // step 5: the policy shown
	} {
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(want)) {
			t.Errorf("the guide's output lacks %q", want)
		}
	}
	// The support bundle holds the members' logs from the kubelet, and
	// neither the licence nor the admin token (the guide's own files hold
	// the licence; the token was never shown to the user).
	checkReport(t, filepath.Join(work, "plant-a-report.zip"), filepath.Join(work, "LIC-0001.lic"))
	// Step 6 leaves nothing of the guide in the cluster.
	for _, check := range [][]string{
		{"get", "namespace", "printing", "licenseha-system", "--ignore-not-found", "-o", "name"},
		{"get", "crd", "-o", "name"},
		{"get", "clusterroles,clusterrolebindings,validatingadmissionpolicies", "-l", "app.kubernetes.io/name=licenseha", "-o", "name"},
	} {
		left, err := env.Kubectl(ctx, check...)
		if err != nil {
			t.Errorf("kubectl %v: %v", check, err)
		} else if strings.Contains(left, "licenseha") || strings.Contains(left, "printing") {
			t.Errorf("left after the uninstall (kubectl %s):\n%s", strings.Join(check, " "), left)
		}
	}
}

// checkReport opens the guide's support bundle: it must hold a log of every
// member and not the licence's signature (a licence file is a Secret's
// value: the report redacts it everywhere).
func checkReport(t *testing.T, file, licence string) {
	t.Helper()
	data, err := os.ReadFile(licence)
	if err != nil {
		t.Fatal(err)
	}
	var lic struct {
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(data, &lic); err != nil || len(lic.Signature) < 16 {
		t.Fatalf("%s: no signature (%v)", licence, err)
	}
	r, err := zip.OpenReader(file)
	if err != nil {
		t.Fatalf("the support bundle: %v", err)
	}
	defer r.Close()
	logs := map[string]bool{}
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"plant-a-a", "plant-a-b", "plant-a-c"} {
			if strings.Contains(f.Name, "logs/"+m+"/") && len(content) > 0 {
				logs[m] = true
			}
		}
		if bytes.Contains(content, []byte(lic.Signature)) {
			t.Errorf("the support bundle's %s contains the licence's signature", f.Name)
		}
	}
	if len(logs) != 3 {
		t.Errorf("the support bundle has logs of %d members (%v), want all three", len(logs), logs)
	}
}
