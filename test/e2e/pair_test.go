package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/probe"
)

const (
	mainLicence   = "LIC-MAIN"
	backupLicence = "LIC-BACKUP"
)

// createPair creates two licence Secrets (main and backup, mapped
// main→backup) and a backup pair.
func createPair(ctx context.Context, ns, name string, mode licensehav1.PairMode, roles licensehav1.PairRoles) *licensehav1.LicenseBackupPair {
	GinkgoHelper()
	return createPairWith(ctx, ns, name, mode, func(p *licensehav1.LicenseBackupPair) {
		if mode == licensehav1.ActivePassive {
			p.Spec.Roles = roles
		}
	})
}

// pairTargets waits until both pods have IPs.
func pairTargets(ctx context.Context, ns, name string) []probe.Target {
	GinkgoHelper()
	var ts []probe.Target
	Eventually(func() error {
		var err error
		ts, err = env.Targets(ctx, ns, name, "main", "backup")
		return err
	}).WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	return ts
}

func waitServingSet(ctx context.Context, w *probe.Watcher, timeout time.Duration, want ...string) time.Time {
	GinkgoHelper()
	Eventually(w.Serving).WithTimeout(timeout).WithPolling(50 * time.Millisecond).Should(ConsistOf(want))
	h := w.History()
	return h[len(h)-1].At
}

func pauseResumeCleanup(ns, pod string) {
	DeferCleanup(func(ctx SpecContext) { _ = env.Fault(ctx, "resume", ns+"/"+pod) })
}

var _ = Describe("LicenseBackupPair", Label("e2e"), func() {
	It("ActiveActive: both serve; a client moves to the backup with the mapped licence and comes home", func(ctx SpecContext) {
		ns := specNamespace(ctx, "pair-aa")
		createPair(ctx, ns, "pair", licensehav1.ActiveActive, "")
		ts := pairTargets(ctx, ns, "pair")
		bctx, _ := bg()
		w := probe.NewWatcher(ts, 50*time.Millisecond)
		go w.Run(bctx)
		waitServingSet(ctx, w, 90*time.Second, "main", "backup")
		urls := map[string]string{ts[0].Name: ts[0].URL, ts[1].Name: ts[1].URL}
		// The backup answers for the main's licence once it has the aliases.
		Eventually(func() error {
			c, err := lhclient.New(lhclient.Config{Endpoints: []string{urls["backup"]}, ClientID: "e2e-alias", HeartbeatInterval: -1, Logger: clientLogger()})
			if err != nil {
				return err
			}
			defer c.Close()
			co, err := c.Checkout(ctx, "alias-check", mainLicence)
			if err != nil {
				return err
			}
			return c.Release(ctx, co.ID)
		}).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())

		load, err := probe.StartLoad(ctx, lhclient.Config{Endpoints: []string{urls["main"], urls["backup"]}, Home: urls["main"],
			ClientID: "e2e-pair", HomeCheckInterval: time.Second, Logger: clientLogger()}, mainLicence, seats, 50*time.Millisecond)
		Expect(err).NotTo(HaveOccurred())
		pauseResumeCleanup(ns, group.PodName("pair", "main"))

		paused := time.Now()
		Expect(env.Fault(ctx, "pause", ns+"/"+group.PodName("pair", "main"))).To(Succeed())
		Eventually(load.Client.Endpoint).WithTimeout(serviceBound).Should(Equal(urls["backup"]))
		Eventually(func() bool { return load.LastSuccess().After(paused.Add(time.Second)) }).WithTimeout(serviceBound).Should(BeTrue())
		figure("pair AA: main paused → client served by backup", load.LastSuccess().Sub(paused))
		time.Sleep(3 * time.Second)
		Expect(load.Lost()).To(BeZero())
		for _, c := range load.Client.Checkouts() {
			GinkgoWriter.Printf("on the backup: checkout %s licence %s\n", c.ID, c.License)
		}

		resumed := time.Now()
		Expect(env.Fault(ctx, "resume", ns+"/"+group.PodName("pair", "main"))).To(Succeed())
		Eventually(load.Client.Endpoint).WithTimeout(30 * time.Second).Should(Equal(urls["main"]))
		figure("pair AA: main resumed → client home", time.Since(resumed))
		time.Sleep(2 * time.Second)
		Expect(load.Lost()).To(BeZero())
		Expect(load.LongestGapSince(paused)).To(BeNumerically("<", serviceBound))
		figure("pair AA: longest client gap", load.LongestGapSince(paused))
	})

	It("ActivePassive Fixed: one serves; the backup covers a paused main", func(ctx SpecContext) {
		ns, w := startFixedActivePassive(ctx, "pair-ap")

		paused := time.Now()
		Expect(env.Fault(ctx, "pause", ns+"/"+group.PodName("pair", "main"))).To(Succeed())
		at := waitServingSet(ctx, w, 60*time.Second, "backup")
		figure("pair AP: main paused → backup serves", at.Sub(paused))
		Expect(w.MaxServing()).To(BeNumerically("<=", 1))

		time.Sleep(2 * time.Second)
		Expect(w.MaxServing()).To(BeNumerically("<=", 1), "both served: %v", w.History())
		Expect(w.Overlap()).To(BeZero())
	})

	It("ActivePassive Fixed: a resumed main takes the role back without both serving", func(ctx SpecContext) {
		ns, w := startFixedActivePassive(ctx, "pair-apr")
		Expect(env.Fault(ctx, "pause", ns+"/"+group.PodName("pair", "main"))).To(Succeed())
		waitServingSet(ctx, w, 60*time.Second, "backup")
		resumed := time.Now()
		Expect(env.Fault(ctx, "resume", ns+"/"+group.PodName("pair", "main"))).To(Succeed())
		at := waitServingSet(ctx, w, 60*time.Second, "main")
		figure("pair AP: main resumed → main serves", at.Sub(resumed))
		time.Sleep(2 * time.Second)
		Expect(w.MaxServing()).To(BeNumerically("<=", 1), "both served: %v", w.History())
		Expect(w.Overlap()).To(BeZero())
	})

	It("ActivePassive Fixed: a planned switchover and a stopped main move the role without both serving", func(ctx SpecContext) {
		ns, w := startFixedActivePassive(ctx, "pair-ops")
		key := client.ObjectKey{Namespace: ns, Name: "pair"}

		By("switching over to the backup (spec.preferredSide)")
		at := time.Now()
		editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) { p.Spec.PreferredSide = licensehav1.SideBackup })
		served := waitServingSet(ctx, w, 60*time.Second, "backup")
		figure("pair AP: switchover edit → backup serves", served.Sub(at))
		time.Sleep(3 * time.Second)
		Expect(w.Serving()).To(ConsistOf("backup"), "with roles Fixed the role stays on the preferred side")

		By("switching back")
		at = time.Now()
		editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) { p.Spec.PreferredSide = licensehav1.SideMain })
		served = waitServingSet(ctx, w, 60*time.Second, "main")
		figure("pair AP: switchover edit → main serves", served.Sub(at))

		By("stopping the main on purpose (spec.main.stopped)")
		at = time.Now()
		editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) { p.Spec.Main.Stopped = true })
		served = waitServingSet(ctx, w, 60*time.Second, "backup")
		figure("pair AP: main stopped → backup serves", served.Sub(at))
		Eventually(func(g Gomega) {
			p := &licensehav1.LicenseBackupPair{}
			g.Expect(env.Client.Get(ctx, key, p)).To(Succeed())
			g.Expect(p.Status.Main.Stopped).To(BeTrue())
			g.Expect(p.Status.ActiveServer).To(Equal(licensehav1.SideBackup))
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName("pair", "main")}, &corev1.Pod{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the stopped main's pod is gone")
		}).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())

		By("resuming it: the main takes the role back")
		at = time.Now()
		editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) { p.Spec.Main.Stopped = false })
		Eventually(func() error {
			ts, err := env.Targets(ctx, ns, "pair", "main", "backup")
			if err == nil {
				w.SetTargets(ts)
			}
			return err
		}).WithTimeout(90 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
		served = waitServingSet(ctx, w, 90*time.Second, "main")
		figure("pair AP: main resumed (new pod) → main serves", served.Sub(at))
		time.Sleep(2 * time.Second)
		Expect(w.MaxServing()).To(BeNumerically("<=", 1), "both served: %v", w.History())
		Expect(w.Overlap()).To(BeZero())
	})

	It("ActivePassive: started at once, never both serve (Fixed and Symmetric, three rounds each)", func(ctx SpecContext) {
		for i := range 6 {
			roles := licensehav1.RolesFixed
			if i%2 == 1 {
				roles = licensehav1.RolesSymmetric
			}
			ns := specNamespace(ctx, fmt.Sprintf("pair-start%d", i))
			p := createPair(ctx, ns, "pair", licensehav1.ActivePassive, roles)
			ts := pairTargets(ctx, ns, "pair")
			wctx, cancel := context.WithCancel(ctx)
			w := probe.NewWatcher(ts, 50*time.Millisecond)
			go w.Run(wctx)
			if roles == licensehav1.RolesFixed {
				waitServingSet(ctx, w, 60*time.Second, "main")
			} else {
				// Symmetric: whichever came up first serves.
				Eventually(func() int { return len(w.Serving()) }, 60*time.Second, 50*time.Millisecond).Should(Equal(1))
			}
			time.Sleep(5 * time.Second)
			cancel()
			Expect(w.MaxServing()).To(BeNumerically("<=", 1), "both served at start (round %d, %s): %v", i, roles, w.History())
			Expect(w.Overlap()).To(BeZero())
			Expect(env.Client.Delete(ctx, p)).To(Succeed())
			Expect(env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metaName(ns)})).To(Succeed())
		}
	})
})

// startFixedActivePassive creates an ActivePassive pair with fixed roles,
// watches its members and waits until the main serves; the main is resumed
// when the spec ends.
func startFixedActivePassive(ctx context.Context, prefix string) (string, *probe.Watcher) {
	GinkgoHelper()
	ns := specNamespace(ctx, prefix)
	createPair(ctx, ns, "pair", licensehav1.ActivePassive, licensehav1.RolesFixed)
	bctx, _ := bg()
	w := probe.NewWatcher(pairTargets(ctx, ns, "pair"), 50*time.Millisecond)
	go w.Run(bctx)
	waitServingSet(ctx, w, 90*time.Second, "main")
	pauseResumeCleanup(ns, group.PodName("pair", "main"))
	return ns, w
}
