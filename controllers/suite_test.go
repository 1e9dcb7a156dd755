package controllers_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/controllers"
	"github.com/licenseha/licenseha/internal/testenv"
	"github.com/licenseha/licenseha/internal/testfixtures"
	"github.com/licenseha/licenseha/pkg/notify"
)

const testImage = "ghcr.io/licenseha/licenseha:test"

// The suite runs the reconcilers against a real kube-apiserver and etcd built
// by `make envtest-assets`, started by internal/testenv.
var (
	testEnv   *testenv.Env
	cfg       *rest.Config
	k8sClient client.Client
	scheme    *runtime.Scheme
	ctx       context.Context
	cancel    context.CancelFunc

	// signingKey signs the licences of the tests; trustedKeys is the PEM
	// public key the operator under test trusts.
	signingKey  ed25519.PrivateKey
	trustedKeys []byte

	// operatorCache is the cache of the operator under test; informers
	// records every informer it starts.
	operatorCache cache.Cache
	informers     = &informerLog{}
)

// informerLog records the informers the operator's cache starts, by Go type
// and GroupVersionKind: a typed *v1.Secret informer holds every Secret of the
// cluster with its data, a *v1.PartialObjectMetadata one only metadata.
type informerLog struct {
	mu    sync.Mutex
	types []string
}

func (l *informerLog) record(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
	name := fmt.Sprintf("%T", obj)
	if gvk := obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		name += " " + gvk.Kind
	}
	l.mu.Lock()
	l.types = append(l.types, name)
	l.mu.Unlock()
	return toolscache.NewSharedIndexInformer(lw, obj, resync, idx)
}

func (l *informerLog) started() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.types...)
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers suite (envtest)")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	signingKey, trustedKeys = testfixtures.SigningKey(GinkgoT())

	var err error
	testEnv, err = testenv.Start(testenv.Options{
		// envtest's default Service range is a /24: 254 ClusterIPs, fewer
		// than the Services of the scale benchmark's triads.
		APIServerArgs: map[string]string{"service-cluster-ip-range": "10.96.0.0/16"},
	})
	Expect(err).NotTo(HaveOccurred())
	cfg, scheme, k8sClient = testEnv.Config, testEnv.Scheme, testEnv.Client

	cacheOpts := controllers.CacheOptions()
	cacheOpts.NewInformer = informers.record
	mgr, err := ctrl.NewManager(operatorConfig(), ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	operatorCache = mgr.GetCache()
	// The webhook receivers of the tests listen on loopback, over http.
	notifyPolicy := notify.Policy{AllowInternal: true, AllowHTTPCredentials: true}
	Expect(controllers.Setup(ctx, mgr, controllers.Config{Image: testImage, TrustedKeys: trustedKeys, Notify: notifyPolicy, MaxConcurrentReconciles: 4})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// operatorConfig returns the REST config the operator under test runs with:
// the identity of the ServiceAccount licenseha-system/licenseha-operator,
// bound to the ClusterRole of config/rbac/role.yaml (generated from the RBAC
// markers), so that every spec also checks that the operator needs no
// permission it is not given.
func operatorConfig() *rest.Config {
	const ns, sa = "licenseha-system", "licenseha-operator"
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})).To(Succeed())
	data, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.UnmarshalStrict(data, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	})).To(Succeed())
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	return c
}

// newNamespace creates a namespace of its own for one test.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}
