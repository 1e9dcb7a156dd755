package controllers_test

import (
	"fmt"
	"runtime"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Run with: make bench-reconcile (Ginkgo label "benchmark"; skipped by
// make test). It prints figures rather than asserting times.
var _ = Describe("Reconciling many triads", Label("benchmark"), func() {
	It("brings 200 triads to all their child objects", func() {
		const n = 200
		ns := newNamespace()
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		start := time.Now()
		for i := range n {
			name := fmt.Sprintf("t%03d", i)
			Expect(k8sClient.Create(ctx, licenseSecret(ns, name+"-licenses"))).To(Succeed())
			Expect(k8sClient.Create(ctx, validTriad(ns, name))).To(Succeed())
		}
		created := time.Since(start)

		count := func(list client.ObjectList) int {
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			return itemCount(list)
		}
		Eventually(func(g Gomega) {
			g.Expect(count(&corev1.PodList{})).To(Equal(3 * n))
			g.Expect(count(&corev1.ServiceList{})).To(Equal(2 * n))
			g.Expect(count(&coordinationv1.LeaseList{})).To(Equal(n))
			// state, config (and the kube-root-ca.crt of the namespace when a
			// controller-manager runs; envtest has none)
			g.Expect(count(&corev1.ConfigMapList{})).To(BeNumerically(">=", 2*n))
		}, 10*time.Minute, time.Second).Should(Succeed())
		done := time.Since(start)

		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		report := fmt.Sprintf("%d triads: created in %s, all child objects (%d pods, %d Services, %d Leases, %d ConfigMaps) after %s; "+
			"heap in use by the operator and the test client: %.1f MiB (%.1f MiB before)",
			n, created.Round(time.Millisecond), 3*n, 2*n, n, 2*n, done.Round(time.Millisecond),
			float64(after.HeapInuse)/(1<<20), float64(before.HeapInuse)/(1<<20))
		AddReportEntry("reconcile-200", report)
		fmt.Fprintln(GinkgoWriter, report)
	})
})

func itemCount(list client.ObjectList) int {
	switch l := list.(type) {
	case *corev1.PodList:
		return len(l.Items)
	case *corev1.ServiceList:
		return len(l.Items)
	case *coordinationv1.LeaseList:
		return len(l.Items)
	case *corev1.ConfigMapList:
		return len(l.Items)
	}
	return 0
}
