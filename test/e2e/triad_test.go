package e2e

import (
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/probe"
)

var _ = Describe("LicenseTriad", Label("e2e"), func() {
	It("forms, fails over on a crash and a freeze, fences a resumed member and fails back after the delay", func(ctx SpecContext) {
		r := startTriad(ctx, "failover", nil)
		t := r.triad(ctx)
		Expect(t.Status.ActiveMember).To(Equal("a"))
		Expect(t.Status.Phase).To(Equal(licensehav1.TriadActive))
		Expect(meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionReady)).To(BeTrue())

		By("killing the active member")
		killed := r.fault(ctx, "kill", "a")
		_, back, who := r.outage(ctx, killed, serviceBound)
		figure("kill of active → someone serves", back.Sub(killed))
		time.Sleep(time.Second)
		figure("kill of active → client gap", r.load.LongestGapSince(killed))
		GinkgoWriter.Printf("after the kill %s serves\n", who)
		r.invariants()
		r.backToNormal(ctx)
		r.invariants()

		By("freezing the active member")
		paused := r.fault(ctx, "pause", "a")
		_, at := r.waitServing(ctx, serviceBound, "b")
		figure("pause of active → secondary serves", at.Sub(paused))
		figure("pause of active → client gap", r.load.LongestGapSince(paused))
		r.invariants()
		time.Sleep(2 * time.Second) // let the client settle on b

		By("resuming it: it serves only once it holds the Lease again")
		resumed := r.fault(ctx, "resume", "a")
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			serving := r.watcher.Serving()
			if slices.Contains(serving, "a") {
				// The Lease is taken before the server serves, so a
				// serving a must hold it (read after the sample).
				Expect(r.leaseHolder(ctx)).To(Equal("a"), "a serves without holding the Lease")
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		failback, _ := r.waitServing(ctx, time.Second, "a")
		Expect(failback).To(Equal("a"))
		backAt := r.lastStart("a")
		figure("resume → failback", backAt.Sub(resumed))
		Expect(backAt.Sub(resumed)).To(BeNumerically(">=", failbackDelay), "failback before failbackDelaySeconds")
		figure("failback → client gap", r.load.LongestGapSince(backAt.Add(-2*time.Second)))
		r.backToNormal(ctx)
		time.Sleep(time.Second)
		r.invariants()
	})

	It("stops serving when primary and secondary are down; the tertiary never serves", func(ctx SpecContext) {
		r := startTriad(ctx, "twodown", nil)
		DeferCleanup(func(ctx SpecContext) {
			_ = env.Fault(ctx, "resume", r.pod("a"))
			_ = env.Fault(ctx, "resume", r.pod("b"))
		})
		start := time.Now()
		paused := r.fault(ctx, "pause", "a")
		r.fault(ctx, "pause", "b")
		_, err := r.watcher.WaitFor(ctx, "", serviceBound)
		Expect(err).NotTo(HaveOccurred())
		time.Sleep(6 * time.Second)
		Expect(r.watcher.Serving()).To(BeEmpty())
		Expect(r.servedSince("c", start)).To(BeFalse(), "the tertiary served")
		r.invariants()

		By("resuming the secondary, which can reach the tertiary")
		resumed := r.fault(ctx, "resume", "b")
		_, at := r.waitServing(ctx, serviceBound, "b")
		figure("two down, secondary resumed → it serves", at.Sub(resumed))
		GinkgoWriter.Printf("nobody served for %s\n", at.Sub(paused))
		r.fault(ctx, "resume", "a")
		r.backToNormal(ctx)
		Expect(r.servedSince("c", start)).To(BeFalse(), "the tertiary served")
		r.invariants()
	})

	It("fences an active cut off from both peers, and keeps serving when it only loses the API server", func(ctx SpecContext) {
		r := startTriad(ctx, "partition", nil)
		DeferCleanup(func(ctx SpecContext) { _ = env.Fault(ctx, "heal") })

		By("partitioning the active from both peers")
		cut := r.fault(ctx, "partition", "a", "b")
		r.fault(ctx, "partition", "a", "c")
		_, at := r.waitServing(ctx, serviceBound, "b")
		stopped, ok := r.stoppedServing("a", cut)
		Expect(ok).To(BeTrue())
		figure("partitioned active stops serving", stopped.Sub(cut))
		figure("partition → secondary serves", at.Sub(cut))
		Expect(stopped.Sub(cut)).To(BeNumerically("<=", peerTimeout+3*time.Second))
		r.invariants()

		By("healing")
		r.fault(ctx, "heal", "a")
		r.backToNormal(ctx)
		r.invariants()

		By("cutting the active from the API server only")
		time.Sleep(2 * time.Second)
		isolated := r.fault(ctx, "isolate-apiserver", "a")
		for time.Since(isolated) < 20*time.Second {
			Expect(r.watcher.Serving()).To(Equal([]string{"a"}), "the active stopped serving without the API server: %s", r.history())
			time.Sleep(100 * time.Millisecond)
		}
		gap := r.load.LongestGapSince(isolated)
		figure("API server isolation → client gap", gap)
		Expect(gap).To(BeNumerically("<", 2*time.Second))
		r.fault(ctx, "heal", "a")
		r.backToNormal(ctx)
		r.invariants()
	})

	It("switches over when the roles are swapped", func(ctx SpecContext) {
		r := startTriad(ctx, "roles", nil)
		time.Sleep(time.Second)
		edited := time.Now()
		r.update(ctx, func(t *licensehav1.LicenseTriad) {
			t.Spec.Members[0].Role, t.Spec.Members[1].Role = licensehav1.RoleSecondary, licensehav1.RolePrimary
		})
		_, at := r.waitServing(ctx, 60*time.Second, "b")
		figure("role swap → new primary serves", at.Sub(edited))
		gap := r.load.LongestGapSince(edited)
		figure("switchover → client gap", gap)
		Expect(gap).To(BeNumerically("<", 2*time.Second))
		_, err := env.WaitTriad(ctx, r.ns, r.name, 60*time.Second, func(t *licensehav1.LicenseTriad) bool {
			return formed(t) && t.Status.ActiveMember == "b"
		})
		Expect(err).NotTo(HaveOccurred())
		time.Sleep(3 * time.Second)
		Expect(r.watcher.Serving()).To(Equal([]string{"b"}))
		r.invariants()
	})

	// Deleting the active pod (a drain, an eviction, a rolling node update)
	// hands over: the fenced server keeps answering "not active, ask b" for
	// a moment, so a client learns where to go from its answer instead of
	// waiting out a timeout on an address that is gone.
	It("hands over when the active pod is deleted; its clients are sent on, none waits out a timeout", func(ctx SpecContext) {
		r := startTriad(ctx, "graceful", nil)
		var mu sync.Mutex
		var moves []lhclient.Move
		load, err := probe.StartLoad(r.ctx, lhclient.Config{Endpoints: []string{r.urls["a"], r.urls["b"], r.urls["c"]}, Home: r.urls["a"],
			Members: r.urls, ClientID: "e2e-graceful-moves", Logger: clientLogger(), OnMove: func(m lhclient.Move) {
				mu.Lock()
				moves = append(moves, m)
				mu.Unlock()
			}}, r.licence, 1, 50*time.Millisecond)
		Expect(err).NotTo(HaveOccurred())
		deleted := time.Now()
		Expect(env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns,
			Name: group.PodName(r.name, "a")}})).To(Succeed())
		_, at := r.waitServing(ctx, 60*time.Second, "b")
		figure("active pod deleted → secondary serves", at.Sub(deleted))
		time.Sleep(3 * time.Second)
		figure("active pod deleted → client gap", r.load.LongestGapSince(deleted))
		mu.Lock()
		defer mu.Unlock()
		Expect(moves).NotTo(BeEmpty(), "the client never left a")
		Expect(moves[0].Reason).To(Equal("not active"), "moves: %+v", moves)
		Expect(moves[0].To).To(Equal(r.urls["b"]), "a's answer names the member taking over: %+v", moves)
		Expect(load.Lost()).To(BeZero())
		Expect(r.load.Lost()).To(BeZero())
		r.invariants()
	})

	It("replaces a member by name without relicensing", func(ctx SpecContext) {
		r := startTriad(ctx, "replace", nil)
		members := []string{"a", "b", "c"}
		var mu = make(chan struct{}, 1)
		mu <- struct{}{}
		r.dynamicTargets(func() []string { <-mu; defer func() { mu <- struct{}{} }(); return slices.Clone(members) })
		licences := &corev1.Secret{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: r.triad(ctx).Spec.LicenseSecretRef.Name}, licences)).To(Succeed())
		before := r.triad(ctx).Status.Licenses

		edited := time.Now()
		r.update(ctx, func(t *licensehav1.LicenseTriad) { t.Spec.Members[1].Name = "b2" })
		<-mu
		members = []string{"a", "b2", "c"}
		mu <- struct{}{}
		Eventually(func() bool { return exists(ctx, &corev1.Pod{}, r.ns, group.PodName(r.name, "b")) }).
			WithTimeout(60 * time.Second).Should(BeFalse())
		Eventually(func() bool {
			p := &corev1.Pod{}
			return exists(ctx, p, r.ns, group.PodName(r.name, "b2")) && p.Status.PodIP != ""
		}).WithTimeout(60 * time.Second).Should(BeTrue())
		t, err := env.WaitTriad(ctx, r.ns, r.name, 90*time.Second, func(t *licensehav1.LicenseTriad) bool {
			return formed(t) && t.Status.ActiveMember == "a" && slices.ContainsFunc(t.Status.Members, func(m licensehav1.TriadMemberStatus) bool {
				return m.Name == "b2" && m.Ready
			})
		})
		Expect(err).NotTo(HaveOccurred())
		figure("member replacement → 3/3 again", time.Since(edited))
		after := &corev1.Secret{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: licences.Name}, after)).To(Succeed())
		Expect(after.UID).To(Equal(licences.UID))
		Expect(after.Data).To(Equal(licences.Data), "the licence Secret changed")
		Expect(t.Spec.LicenseSecretRef.Name).To(Equal(licences.Name))
		Expect(len(t.Status.Licenses)).To(Equal(len(before)))
		for i := range before {
			Expect(t.Status.Licenses[i].ID).To(Equal(before[i].ID))
		}
		r.invariants()
		figure("member replacement → client gap", r.load.LongestGapSince(edited))
	})

	It("replaces a standby without interrupting the active", func(ctx SpecContext) {
		r := startTriad(ctx, "replace-gap", nil)
		edited := time.Now()
		r.update(ctx, func(t *licensehav1.LicenseTriad) { t.Spec.Members[1].Name = "b2" })
		_, err := env.WaitTriad(ctx, r.ns, r.name, 90*time.Second, func(t *licensehav1.LicenseTriad) bool {
			return formed(t) && slices.ContainsFunc(t.Status.Members, func(m licensehav1.TriadMemberStatus) bool { return m.Name == "b2" && m.Ready })
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(r.load.LongestGapSince(edited)).To(BeNumerically("<", time.Second))
		_, stopped := r.stoppedServing("a", edited)
		Expect(stopped).To(BeFalse(), "the active stopped serving: %s", r.history())
	})

	It("rolls a template change one member at a time, the active last", func(ctx SpecContext) {
		r := startTriad(ctx, "roll", nil)
		r.dynamicTargets(func() []string { return triadMembers })
		uids := map[string]string{}
		for _, m := range triadMembers {
			p := &corev1.Pod{}
			Expect(exists(ctx, p, r.ns, group.PodName(r.name, m))).To(BeTrue())
			uids[m] = string(p.UID)
		}
		// Rolled pods get new addresses, which the member Load does not
		// learn: a second Load goes through the triad's Service.
		svc := r.serviceLoad(ctx)
		edited := time.Now()
		r.update(ctx, func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Env = append(t.Spec.Server.Env, corev1.EnvVar{Name: "E2E_ROLL", Value: "1"})
		})
		var order []string
		deadline := time.Now().Add(4 * time.Minute)
		for len(order) < 3 && time.Now().Before(deadline) {
			for _, m := range triadMembers {
				if slices.Contains(order, m) {
					continue
				}
				p := &corev1.Pod{}
				if !exists(ctx, p, r.ns, group.PodName(r.name, m)) || string(p.UID) != uids[m] || p.DeletionTimestamp != nil {
					order = append(order, m)
					GinkgoWriter.Printf("%s: %s rolled (active then: %v)\n", time.Since(edited).Round(time.Millisecond), m, r.watcher.Serving())
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		Expect(order).To(HaveLen(3), "not every member was rolled")
		Expect(order[0]).To(Equal("c"), "the witness rolls first")
		Expect(order[2]).To(Equal("a"), "the active rolls last")
		_, err := env.WaitTriad(ctx, r.ns, r.name, 2*time.Minute, formed)
		Expect(err).NotTo(HaveOccurred())
		r.waitServing(ctx, 90*time.Second, "a")
		figure("rolling update → done", time.Since(edited))
		time.Sleep(2 * time.Second)
		outage := r.longestOutageSince(edited)
		figure("rolling update → longest time nobody served", outage)
		Expect(outage).To(BeNumerically("<", 5*time.Second))
		n, lastErr := svc.Failures()
		GinkgoWriter.Printf("Service client: %d failed requests, last: %v\n", n, lastErr)
		// Asserted in the spec below, which watches only the Service.
		figure("rolling update → longest client gap (through the Service)", svc.LongestGapSince(edited))
		Expect(svc.Lost()).To(BeZero())
		r.invariants()
	})

	// A client that knows only the triad's Service: during the roll the
	// Service moves from member to member, and the client must follow on new
	// connections (an established one stays with its pod).
	It("keeps a client of the triad's Service served through a rolling update", func(ctx SpecContext) {
		r := startTriad(ctx, "roll-svc", nil)
		r.dynamicTargets(func() []string { return triadMembers })
		svc := r.serviceLoad(ctx)
		edited := time.Now()
		r.update(ctx, func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Env = append(t.Spec.Server.Env, corev1.EnvVar{Name: "E2E_ROLL", Value: "1"})
		})
		_, err := env.WaitTriad(ctx, r.ns, r.name, 2*time.Minute, func(t *licensehav1.LicenseTriad) bool {
			return formed(t) && t.Status.ObservedGeneration == t.Generation
		})
		Expect(err).NotTo(HaveOccurred())
		time.Sleep(15 * time.Second)
		r.waitServing(ctx, 90*time.Second, "a")
		time.Sleep(3 * time.Second)
		gap := svc.LongestGapSince(edited)
		n, lastErr := svc.Failures()
		GinkgoWriter.Printf("Service client: %d failed requests, last: %v\n", n, lastErr)
		figure("rolling update → longest client gap (through the Service)", gap)
		// Each handover changes the Service's endpoints two or three times
		// within a few hundred milliseconds (the departing member leaves,
		// the new active joins); kube-proxy applies the first change at once
		// and the rest after its minSyncPeriod (1 s, the upstream default).
		// On a machine busy with the rest of the suite the handover itself
		// takes a few hundred milliseconds more.
		Expect(gap).To(BeNumerically("<", serviceHandoverBound))
		Expect(svc.Lost()).To(BeZero())
	})

	DescribeTable("dissolves according to dissolvePolicy",
		func(ctx SpecContext, policy licensehav1.DissolvePolicy, kept bool) {
			ns := specNamespace(ctx, "dissolve")
			_, err := env.CreateTriad(ctx, ns, "lic", func(t *licensehav1.LicenseTriad) { t.Spec.DissolvePolicy = policy })
			Expect(err).NotTo(HaveOccurred())
			t, err := env.WaitTriad(ctx, ns, "lic", 90*time.Second, formed)
			Expect(err).NotTo(HaveOccurred())
			rememberTriadSecrets(ctx, ns, "lic", t)
			if policy == licensehav1.DissolveDelete {
				// A licence Secret is deleted with its group only when it opts in.
				s := &corev1.Secret{}
				Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: t.Spec.LicenseSecretRef.Name}, s)).To(Succeed())
				base := s.DeepCopy()
				s.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
				Expect(env.Client.Patch(ctx, s, client.MergeFrom(base))).To(Succeed())
			}
			Eventually(func() bool { return exists(ctx, &corev1.ConfigMap{}, ns, group.StateName("lic")) }).
				WithTimeout(30 * time.Second).Should(BeTrue())
			Expect(env.Client.Delete(ctx, t)).To(Succeed())
			Eventually(func() bool { return exists(ctx, &licensehav1.LicenseTriad{}, ns, "lic") }).
				WithTimeout(60 * time.Second).Should(BeFalse())
			check := func() bool {
				return exists(ctx, &corev1.ConfigMap{}, ns, group.StateName("lic")) &&
					exists(ctx, &corev1.Secret{}, ns, t.Spec.LicenseSecretRef.Name)
			}
			gone := func() bool {
				return !exists(ctx, &corev1.ConfigMap{}, ns, group.StateName("lic")) &&
					!exists(ctx, &corev1.Secret{}, ns, t.Spec.LicenseSecretRef.Name)
			}
			if kept {
				Consistently(check).WithTimeout(10 * time.Second).Should(BeTrue())
			} else {
				Eventually(gone).WithTimeout(30 * time.Second).Should(BeTrue())
			}
		},
		Entry("Retain keeps the state and the licences", licensehav1.DissolveRetain, true),
		Entry("Delete removes them", licensehav1.DissolveDelete, false),
	)
})

// longestOutageSince is the longest time after t the watcher saw nobody
// serving (including one still open).
func (r *triadRun) longestOutageSince(t time.Time) time.Duration {
	var longest time.Duration
	h := r.watcher.History()
	for i, c := range h {
		if len(c.Serving) != 0 || c.At.Before(t) {
			continue
		}
		end := time.Now()
		if i+1 < len(h) {
			end = h[i+1].At
		}
		longest = max(longest, end.Sub(c.At))
	}
	return longest
}

// lastStart is when member last started serving alone.
func (r *triadRun) lastStart(member string) time.Time {
	h := r.watcher.History()
	for i := len(h) - 1; i >= 0; i-- {
		if len(h[i].Serving) == 1 && h[i].Serving[0] == member && (i == 0 || !slices.Contains(h[i-1].Serving, member)) {
			return h[i].At
		}
	}
	return time.Time{}
}
