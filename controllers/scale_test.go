package controllers_test

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
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
		lastProgress := time.Now()
		Eventually(func(g Gomega) {
			if time.Since(lastProgress) > 15*time.Second {
				lastProgress = time.Now()
				fmt.Fprintf(GinkgoWriter, "after %s: %d pods, %d Services, %d Leases; triads by Ready reason: %v\n",
					time.Since(start).Round(time.Second), count(&corev1.PodList{}), count(&corev1.ServiceList{}),
					count(&coordinationv1.LeaseList{}), readyReasons(ns))
			}
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

		// Settled: the work queues are empty and no triad changed for ten
		// seconds.
		versions := func() map[string]string {
			triads := &licensehav1.LicenseTriadList{}
			Expect(k8sClient.List(ctx, triads, client.InNamespace(ns))).To(Succeed())
			out := map[string]string{}
			for _, t := range triads.Items {
				out[t.Name] = t.ResourceVersion
			}
			return out
		}
		last, stableSince := versions(), time.Now()
		for time.Since(stableSince) < 10*time.Second && time.Since(start) < done+10*time.Minute {
			time.Sleep(time.Second)
			if now := versions(); !maps.Equal(now, last) || queued() > 0 {
				last, stableSince = now, time.Now()
			}
		}
		settled := fmt.Sprintf("%d triads: statuses settled after %s", n, stableSince.Sub(start).Round(time.Second))
		AddReportEntry("settled", settled)
		fmt.Fprintln(GinkgoWriter, settled)

		// At rest: nothing changes for a minute; what does the operator
		// (with the test client, in this process) spend?
		cpu := func() time.Duration {
			var ru syscall.Rusage
			Expect(syscall.Getrusage(syscall.RUSAGE_SELF, &ru)).To(Succeed())
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		const rest = time.Minute
		// SCALE_CPUPROFILE=file profiles the minute at rest.
		if file := os.Getenv("SCALE_CPUPROFILE"); file != "" {
			f, err := os.Create(file)
			Expect(err).NotTo(HaveOccurred())
			Expect(pprof.StartCPUProfile(f)).To(Succeed())
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
		c0, r0 := cpu(), reconciles()
		time.Sleep(rest)
		idle := fmt.Sprintf("%d triads at rest: %.1f%% of one core (%s of CPU in %s), %.0f reconciles", n,
			100*float64(cpu()-c0)/float64(rest), (cpu() - c0).Round(time.Millisecond), rest, reconciles()-r0)
		AddReportEntry("rest", idle)
		fmt.Fprintln(GinkgoWriter, idle)
	})
})

// reconciles is the operator's reconcile count so far, from
// controller-runtime's metrics.
func reconciles() float64 { return metricSum("controller_runtime_reconcile_total") }

// queued is how many groups wait in the reconcilers' work queues.
func queued() float64 { return metricSum("workqueue_depth") }

func metricSum(name string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return total
}

// readyReasons counts the triads of ns by the reason of their Ready
// condition, to show where a slow run stands.
func readyReasons(ns string) map[string]int {
	triads := &licensehav1.LicenseTriadList{}
	Expect(k8sClient.List(ctx, triads, client.InNamespace(ns))).To(Succeed())
	reasons := map[string]int{}
	for _, t := range triads.Items {
		reason := "none"
		if c := meta.FindStatusCondition(t.Status.Conditions, licensehav1.ConditionReady); c != nil {
			reason = c.Reason
		}
		reasons[reason]++
	}
	return reasons
}

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
