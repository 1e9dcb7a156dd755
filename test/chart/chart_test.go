// Package chart installs the Helm chart into a local cluster and brings a
// triad up through the operator it deploys, in namespaces that enforce the
// "restricted" Pod Security Standard, then upgrades the release from the
// previous chart to this one while the triad serves. Run with
// `make test-chart-e2e` (root).
package chart

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/test/harness"
)

func restrictedNamespace(t *testing.T, ctx context.Context, env *harness.Env, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
}

func TestChartBringsUpATriadUnderRestrictedPodSecurity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the local cluster needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var err error
	instance := 5
	if v := os.Getenv("LICENSEHA_CHART_E2E_INSTANCE"); v != "" {
		if instance, err = strconv.Atoi(v); err != nil {
			t.Fatalf("LICENSEHA_CHART_E2E_INSTANCE: %v", err)
		}
	}
	// On the real-node cluster, from the image (make image).
	env, err := harness.Start(ctx, harness.Options{Instance: instance, Log: t.Logf, NoOperator: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Stop()
		if err := env.CheckClean(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	// The chart's operator runs as a pod in the cluster, from the image
	// every node imported.

	restrictedNamespace(t, ctx, env, "licenseha-system")
	keys, err := os.ReadFile(env.TrustedKeysFile())
	if err != nil {
		t.Fatal(err)
	}
	repo, tag, _ := strings.Cut(harness.Image, ":")
	values := []string{"-n", "licenseha-system", "--set", "crds.enabled=false",
		"--set", "image.repository=" + repo, "--set", "image.tag=" + tag, "--set", "image.pullPolicy=Never",
		"--set-string", "trustedKeys.pem=" + string(keys), "--wait", "--timeout", "3m"}
	chart := filepath.Join(env.Root, "charts", "licenseha")
	// The release starts from the previous chart when there is one, and is
	// upgraded to this one once the triad serves.
	previous, from := previousChart(t, env.Root)
	first := chart
	if previous != "" {
		first = previous
		t.Logf("installing the chart of %s, then upgrading to this one", from)
	}
	out, err := env.Helm(ctx, append([]string{"install", "licenseha", first}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out)

	restrictedNamespace(t, ctx, env, "printing")
	if _, err := env.CreateTriad(ctx, "printing", "plant", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tr, err := env.WaitTriad(ctx, "printing", "plant", 3*time.Minute, func(t *licensehav1.LicenseTriad) bool {
		return t.Status.Phase == licensehav1.TriadActive && t.Status.ActiveMember == "a"
	})
	if err != nil {
		out, _ := env.Kubectl(ctx, "get", "pods,events", "-A")
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("triad Active through the chart's operator after %s: active %s, quorum %s", time.Since(start).Round(time.Millisecond),
		tr.Status.ActiveMember, tr.Status.Quorum)

	if previous != "" {
		// Upgrade to this chart: the operator rolls, the triad keeps
		// serving from the same member, with no failover.
		failovers := tr.Status.Failovers
		out, err := env.Helm(ctx, append([]string{"upgrade", "licenseha", chart}, values...)...)
		if err != nil {
			t.Fatalf("upgrading from the chart of %s: %v", from, err)
		}
		t.Log(out)
		tr, err = env.WaitTriad(ctx, "printing", "plant", time.Minute, func(t *licensehav1.LicenseTriad) bool {
			return t.Status.ObservedGeneration == t.Generation && t.Status.Phase == licensehav1.TriadActive
		})
		if err != nil {
			t.Fatalf("after the upgrade: %v", err)
		}
		if tr.Status.ActiveMember != "a" || tr.Status.Failovers != failovers {
			t.Errorf("after the upgrade: active %q, failovers %d; want a, %d", tr.Status.ActiveMember, tr.Status.Failovers, failovers)
		}
	}

	// The operator and the member pods were admitted under "restricted".
	pods := &corev1.PodList{}
	if err := env.Client.List(ctx, pods, client.InNamespace("licenseha-system")); err != nil || len(pods.Items) == 0 {
		t.Fatalf("operator pods: %v (%d)", err, len(pods.Items))
	}

	// No admin token or licence file in any log.
	admin := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "printing", Name: group.AdminSecretName("plant")}, admin); err != nil {
		t.Fatal(err)
	}
	lic := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "printing", Name: "plant-licenses"}, lic); err != nil {
		t.Fatal(err)
	}
	secrets := []string{string(admin.Data[group.AdminTokenKey])}
	for _, v := range lic.Data {
		secrets = append(secrets, string(v))
	}
	logFiles := 0
	for _, logs := range env.PodLogDirs() {
		err = filepath.WalkDir(logs, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			logFiles++
			for _, s := range secrets {
				if s != "" && strings.Contains(string(data), s) {
					t.Errorf("%s contains a secret value", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if logFiles == 0 {
		t.Fatalf("no pod logs found in %v", env.PodLogDirs())
	}

	// Uninstalling keeps the users' triads.
	if _, err := env.Helm(ctx, "uninstall", "licenseha", "-n", "licenseha-system", "--wait"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "printing", Name: "plant"}, &licensehav1.LicenseTriad{}); err != nil {
		t.Fatalf("the triad is gone after helm uninstall: %v", err)
	}
}

// previousChart extracts the chart this one upgrades from into a temporary
// folder: the chart of LICENSEHA_CHART_FROM (a git revision) when set, else
// of the newest v* tag, else of the commit before the last change to
// charts/licenseha on the first-parent history. It returns "" when the
// checkout has no git history (a source archive) or no earlier chart.
func previousChart(t *testing.T, root string) (dir, rev string) {
	t.Helper()
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	rev = os.Getenv("LICENSEHA_CHART_FROM")
	if rev == "" {
		rev, _ = git("describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
	}
	if rev == "" {
		last, err := git("log", "--first-parent", "-1", "--format=%H", "--", "charts/licenseha")
		if err != nil || last == "" {
			t.Logf("no git history: installing this chart only (%v)", err)
			return "", ""
		}
		rev = last + "^"
	}
	if _, err := git("cat-file", "-e", rev+":charts/licenseha/Chart.yaml"); err != nil {
		t.Logf("no chart at %s: installing this chart only", rev)
		return "", ""
	}
	dir = t.TempDir()
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev, "charts/licenseha")
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", rev, err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("extracting the chart of %s: %v", rev, err)
	}
	short, _ := git("rev-parse", "--short", rev)
	return filepath.Join(dir, "charts", "licenseha"), fmt.Sprintf("%s (%s)", rev, short)
}
