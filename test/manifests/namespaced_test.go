package manifests_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/controllers"
	"github.com/licenseha/licenseha/internal/testenv"
	"github.com/licenseha/licenseha/internal/testfixtures"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// syncBuffer collects the operator's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNamespacedOperator installs the chart's RBAC for an operator watching
// two namespaces (watchNamespaces), then runs the operator with the
// ServiceAccount's identity and the chart's --watch-namespaces: a triad in a
// watched namespace comes up, one elsewhere is left alone, and the operator
// is refused nothing (it would log "forbidden"). Without the ClusterRole any
// cluster-wide list or watch would be refused.
func TestNamespacedOperator(t *testing.T) {
	helmBin(t)
	env := testenv.ForTest(t, testenv.Options{})
	cfg, scheme, c := env.Config, env.Scheme, env.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ns := range []string{namespace, "team-a", "team-b", "team-c"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}

	var namespaces []string
	for _, u := range renderChart(t, "licenseha", namespace, "--set", "watchNamespaces={team-a,team-b}", "--set", "crds.enabled=false") {
		switch u.GetKind() {
		case "ClusterRole", "ClusterRoleBinding":
			t.Errorf("%s: the namespaced operator needs no cluster-wide permission", key(u))
			continue
		case "Deployment":
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, "--watch-namespaces="); ok {
					namespaces = strings.Split(v, ",")
				}
			}
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("licenseha-test")); err != nil {
			t.Fatalf("applying %s: %v", key(u), err)
		}
	}
	if strings.Join(namespaces, ",") != "team-a,team-b" {
		t.Fatalf("the Deployment passes --watch-namespaces=%s, want team-a,team-b", strings.Join(namespaces, ","))
	}

	logs := &syncBuffer{}
	logger := zap.New(zap.WriteTo(logs), zap.UseDevMode(true))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	opCfg := rest.CopyConfig(cfg)
	opCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + namespace + ":licenseha-operator"}
	priv, keys := testfixtures.SigningKey(t)
	mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(namespaces...),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              "licenseha-operator.licenseha.io",
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	mgrCtx, stop := context.WithCancel(ctx)
	if err := controllers.Setup(mgrCtx, mgr, controllers.Config{Image: "ghcr.io/licenseha/licenseha:test", TrustedKeys: keys}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	}()

	for _, ns := range []string{"team-a", "team-c"} {
		lic, err := testfixtures.Licence(priv, "LIC-"+ns, ns+"/plant", licensing.EditionEnterprise)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, testfixtures.LicenceSecret(ns, testfixtures.TriadLicenseSecret("plant"), lic)); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, testfixtures.Triad(ns, "plant")); err != nil {
			t.Fatal(err)
		}
	}

	// The watched triad gets its members (the agents' RBAC included, which
	// the operator may only grant because its Role holds the same rights).
	var lastErr error
	for {
		lastErr = nil
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace("team-a")); err != nil {
			t.Fatal(err)
		} else if len(pods.Items) != 3 {
			lastErr = fmt.Errorf("%d member pods in team-a, want 3", len(pods.Items))
		}
		tr := &licensehav1.LicenseTriad{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "plant"}, tr); err != nil {
			t.Fatal(err)
		} else if tr.Status.ObservedGeneration != tr.Generation {
			lastErr = fmt.Errorf("team-a/plant: status not observed yet")
		}
		if lastErr == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("%v\noperator log:\n%s", lastErr, logs.String())
	}

	// The triad outside the watched namespaces stays untouched.
	other := &licensehav1.LicenseTriad{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-c", Name: "plant"}, other); err != nil {
		t.Fatal(err)
	}
	if len(other.Finalizers) > 0 || other.Status.ObservedGeneration != 0 {
		t.Errorf("team-c/plant was reconciled (finalizers %v, observedGeneration %d), but team-c is not watched",
			other.Finalizers, other.Status.ObservedGeneration)
	}
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace("team-c")); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 {
		t.Errorf("%d pods in team-c, which is not watched", len(pods.Items))
	}
	if l := logs.String(); strings.Contains(l, "forbidden") {
		t.Errorf("the operator was refused something:\n%s", l)
	}
}
