package controllers_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Run with: make bench-reconcile [TRIADS=n] (Ginkgo label "benchmark";
// skipped by make test). It prints figures rather than asserting times.
var _ = Describe("Reconciling many triads", Label("benchmark"), func() {
	It("brings many triads to all their child objects", func() {
		n := 200
		if v, err := strconv.Atoi(os.Getenv("SCALE_TRIADS")); err == nil && v > 0 {
			n = v
		}
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
		}, max(10*time.Minute, time.Duration(n)*1500*time.Millisecond), time.Second).Should(Succeed())
		done := time.Since(start)

		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		report := fmt.Sprintf("%d triads: created in %s, all child objects (%d pods, %d Services, %d Leases, %d ConfigMaps) after %s; "+
			"heap in use by the operator and the test client: %.1f MiB (%.1f MiB before)",
			n, created.Round(time.Millisecond), 3*n, 2*n, n, 2*n, done.Round(time.Millisecond),
			float64(after.HeapInuse)/(1<<20), float64(before.HeapInuse)/(1<<20))
		AddReportEntry("reconcile", report)
		fmt.Fprintln(GinkgoWriter, report)

		// At rest: nothing changes for a minute; what does the operator
		// (with the test client, in this process) spend?
		cpu := func() time.Duration {
			var ru syscall.Rusage
			Expect(syscall.Getrusage(syscall.RUSAGE_SELF, &ru)).To(Succeed())
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		const rest = time.Minute
		c0 := cpu()
		time.Sleep(rest)
		idle := fmt.Sprintf("%d triads at rest: %.1f%% of one core (%s of CPU in %s)", n,
			100*float64(cpu()-c0)/float64(rest), (cpu() - c0).Round(time.Millisecond), rest)
		AddReportEntry("rest", idle)
		fmt.Fprintln(GinkgoWriter, idle)
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
