// Package chart installs the Helm chart into a local cluster and brings a
// triad up through the operator it deploys, in namespaces that enforce the
// "restricted" Pod Security Standard. Run with `make test-chart-e2e` (root).
package chart

import (
	"context"
	"os"
	"path/filepath"
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := harness.Start(ctx, harness.Options{Instance: 5, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	// The chart's operator replaces the one the harness runs beside the
	// cluster; it runs as a pod in the cluster (the local cluster maps the
	// licenseha image to bin/).
	env.StopOperator()

	restrictedNamespace(t, ctx, env, "licenseha-system")
	keys, err := os.ReadFile(env.TrustedKeysFile())
	if err != nil {
		t.Fatal(err)
	}
	out, err := env.Helm(ctx, "install", "licenseha", filepath.Join(env.Root, "charts", "licenseha"),
		"-n", "licenseha-system", "--set", "crds.enabled=false", "--set", "image.tag=e2e",
		"--set-string", "trustedKeys.pem="+string(keys), "--wait", "--timeout", "3m")
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
	logs := filepath.Join(env.StateDir, "logs", "pods")
	err = filepath.WalkDir(logs, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
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

	// Uninstalling keeps the users' triads.
	if _, err := env.Helm(ctx, "uninstall", "licenseha", "-n", "licenseha-system", "--wait"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "printing", Name: "plant"}, &licensehav1.LicenseTriad{}); err != nil {
		t.Fatalf("the triad is gone after helm uninstall: %v", err)
	}
}
