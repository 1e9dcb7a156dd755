package controllers_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// groupObjectsExist waits until the operator created a triad's admin token,
// synced state and configuration: by then it has read and written every kind
// of Secret and ConfigMap it handles.
func groupObjectsExist(ns, name string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, s := range []string{name + "-admin", name + "-state"} {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: s}, &corev1.Secret{})).To(Succeed())
		}
		for _, cm := range []string{name + "-state", name + "-config"} {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: cm}, &corev1.ConfigMap{})).To(Succeed())
		}
	}, timeout, interval).Should(Succeed())
}

var _ = Describe("The operator's cache", func() {
	It("holds no Secret or ConfigMap contents, only their identity", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "cached-licenses"))).To(Succeed())
		t := validTriad(ns, "cached")
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		groupObjectsExist(ns, "cached")
		Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonLicensesPresent))

		By("starting no typed Secret or ConfigMap informer, only metadata ones")
		started := informers.started()
		Expect(started).To(ContainElements("*v1.PartialObjectMetadata Secret", "*v1.PartialObjectMetadata ConfigMap"))
		Expect(started).NotTo(ContainElement(HavePrefix("*v1.Secret")), "a typed informer caches every Secret with its data")
		Expect(started).NotTo(ContainElement(HavePrefix("*v1.ConfigMap")))

		By("keeping neither annotations nor managed fields of a watched Secret")
		// A client-side `kubectl apply` stores the whole object, data
		// included, in this annotation.
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "applied", Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"aHVudGVyMg=="}}`}},
			Data: map[string][]byte{"password": []byte("hunter2")}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
			g.Expect(operatorCache.Get(ctx, client.ObjectKeyFromObject(s), m)).To(Succeed())
			g.Expect(m.UID).To(Equal(s.UID))
			g.Expect(m.Annotations).To(BeEmpty())
			g.Expect(m.ManagedFields).To(BeEmpty())
		}, timeout, interval).Should(Succeed())
	})
})

// Run with: make bench-cache (Ginkgo label "benchmark"; skipped by make
// test). It prints the operator's heap with 10,000 Secrets in the cluster
// that no group references.
var _ = Describe("A cluster with many unrelated Secrets", Label("benchmark"), func() {
	It("does not grow the operator's heap with their contents", func() {
		const n, size = 10000, 256
		heap := func() float64 {
			var m runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&m)
			return float64(m.HeapAlloc) / (1 << 20)
		}
		ns := newNamespace()
		before := heap()

		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				defer GinkgoRecover()
				payload := make([]byte, size)
				for i := next.Add(1); i <= n; i = next.Add(1) {
					s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("unrelated-%05d", i)},
						Data: map[string][]byte{"key": payload}}
					Expect(k8sClient.Create(ctx, s)).To(Succeed())
				}
			})
		}
		wg.Wait()
		created := time.Since(start)

		By("reconciling a triad, so every read and watch of the operator has happened")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "bench-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, validTriad(ns, "bench"))).To(Succeed())
		groupObjectsExist(ns, "bench")
		Eventually(func(g Gomega) {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
			g.Expect(operatorCache.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			g.Expect(len(list.Items)).To(BeNumerically(">=", n))
		}, 5*time.Minute, time.Second).Should(Succeed())
		time.Sleep(2 * time.Second)
		after := heap()

		report := fmt.Sprintf("%d Secrets of %d bytes created in %s; heap of the operator (and the test client): "+
			"%.1f MiB with them, %.1f MiB before (+%.1f MiB); informers: %v",
			n, size, created.Round(time.Millisecond), after, before, after-before, informers.started())
		AddReportEntry("cache-10000-secrets", report)
		fmt.Fprintln(GinkgoWriter, report)
	})
})
