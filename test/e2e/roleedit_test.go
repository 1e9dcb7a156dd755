package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/test/probe"
)

// roleEditBound is the generous bound for service to return after an edit
// of the members' roles or names (a planned switchover takes well under a
// second; a handover that falls back on the peer timeout a few seconds).
const roleEditBound = 20 * time.Second

// Edits of spec.members that move the active role away from the serving
// member, or take the Lease holder out of the spec: service must come back
// on a member allowed to serve, never on two at once, and the status and
// the Lease must follow.
var _ = Describe("LicenseTriad role and membership edits", Label("e2e"), func() {
	It("serves again when the active member is demoted to Tertiary", func(ctx SpecContext) {
		r := startTriad(ctx, "demote", nil)
		time.Sleep(time.Second)

		By("editing a (Primary, active) to Tertiary and c to Primary; b stays Secondary")
		edited := time.Now()
		r.setRoles(ctx, map[string]licensehav1.MemberRole{"a": licensehav1.RoleTertiary, "c": licensehav1.RolePrimary})
		who, at := r.serviceReturns(ctx, edited, roleEditBound, "b", "c")
		figure("active demoted to Tertiary → a member serves", at.Sub(edited))
		GinkgoWriter.Printf("after the demotion %s serves\n", who)
		r.invariants()

		By("a never serves again while Tertiary")
		// Long enough for a failback (failbackDelaySeconds) to the new primary.
		time.Sleep(failbackDelay + 3*time.Second)
		r.settled(ctx, "b", "c")
		gap := r.load.LongestGapSince(edited)
		figure("active demoted to Tertiary → client gap", gap)
		Expect(gap).To(BeNumerically("<", roleEditBound))
		r.neverServedAsTertiary("a", edited)
		r.invariants()
	})

	// b is made the active member first: a paused, b takes over, a resumed
	// (failbackDelaySeconds is long, so a does not take the role back).
	// Then the tertiary c is promoted while b serves.
	DescribeTable("serves on when the tertiary is promoted while the secondary is active",
		func(ctx SpecContext, roles map[string]licensehav1.MemberRole) {
			r := startTriad(ctx, "promote", func(t *licensehav1.LicenseTriad) { t.Spec.Failover.FailbackDelaySeconds = 600 })
			DeferCleanup(func(ctx SpecContext) { _ = env.Fault(ctx, "resume", r.pod("a")) })

			By("making the secondary b the active member")
			r.fault(ctx, "pause", "a")
			r.waitServing(ctx, serviceBound, "b")
			r.fault(ctx, "resume", "a")
			_, err := env.WaitTriad(ctx, r.ns, r.name, 90*time.Second, func(t *licensehav1.LicenseTriad) bool {
				return formed(t) && t.Status.ActiveMember == "b"
			})
			Expect(err).NotTo(HaveOccurred(), r.describe(ctx))
			Expect(r.watcher.Serving()).To(Equal([]string{"b"}), r.history())
			time.Sleep(2 * time.Second) // let the client settle on b
			r.invariants()

			By(fmt.Sprintf("promoting the tertiary c: %v", roles))
			edited := time.Now()
			r.setRoles(ctx, roles)
			allowed := mayServe(roles)
			who, at := r.serviceReturns(ctx, edited, roleEditBound, allowed...)
			if who == "b" {
				// b served on: the time without service, if any.
				_, at, _ = r.outage(ctx, edited, roleEditBound)
			}
			figure("tertiary promoted, secondary active → a member serves", at.Sub(edited))
			GinkgoWriter.Printf("after the promotion %s serves\n", who)
			r.invariants()

			time.Sleep(failbackDelay + 3*time.Second)
			r.settled(ctx, allowed...)
			gap := r.load.LongestGapSince(edited)
			figure("tertiary promoted, secondary active → client gap", gap)
			Expect(gap).To(BeNumerically("<", roleEditBound))
			for m, role := range roles {
				if role == licensehav1.RoleTertiary {
					r.neverServedAsTertiary(m, edited)
				}
			}
			r.invariants()
		},
		Entry("c Secondary, the active b Tertiary, a stays Primary",
			map[string]licensehav1.MemberRole{"b": licensehav1.RoleTertiary, "c": licensehav1.RoleSecondary}),
		Entry("c Primary, the active b stays Secondary, a Tertiary",
			map[string]licensehav1.MemberRole{"a": licensehav1.RoleTertiary, "c": licensehav1.RolePrimary}),
		Entry("c Secondary, the active b Primary, a Tertiary",
			map[string]licensehav1.MemberRole{"a": licensehav1.RoleTertiary, "b": licensehav1.RolePrimary, "c": licensehav1.RoleSecondary}),
	)

	// The active member a is renamed a2 (still Primary): its pod goes and
	// a new one comes. Frozen, it cannot hand the role over, and the Lease
	// keeps naming a member that left the spec.
	DescribeTable("serves again when the active member is renamed",
		func(ctx SpecContext, frozen bool) {
			what := map[bool]string{false: "serving", true: "frozen"}[frozen]
			r := startTriad(ctx, "rename-active", nil)
			// The renamed member's pod is new (new address); the old one is
			// watched until it is gone, so an overlap with it would be seen.
			r.followPods("a", "a2", "b", "c")
			// The member Load knows the old addresses only: a client of the
			// triad's Service follows the active member to the new pod.
			svc := r.serviceLoad(ctx)
			time.Sleep(time.Second)

			if frozen {
				By("freezing the active member a")
				DeferCleanup(func(ctx SpecContext) { _ = env.Fault(ctx, "resume", r.pod("a")) })
				r.fault(ctx, "pause", "a")
			}
			By("renaming the active member a to a2 (still Primary)")
			edited := time.Now()
			r.update(ctx, func(t *licensehav1.LicenseTriad) {
				for i := range t.Spec.Members {
					if t.Spec.Members[i].Name == "a" {
						t.Spec.Members[i].Name = "a2"
					}
				}
			})
			who, at := r.serviceReturns(ctx, edited, roleEditBound, "a2", "b")
			figure("active renamed ("+what+") → a member serves", at.Sub(edited))
			GinkgoWriter.Printf("after the rename %s serves\n", who)
			r.invariants()

			By("the old pod goes and the new one comes")
			if frozen {
				// A frozen container cannot be killed on cgroup v1 (a frozen
				// task handles SIGKILL only once thawed), so on real nodes
				// the pod stays Terminating while frozen, as after `docker
				// pause` on such a node. The group served again without it;
				// the freeze ends now.
				_ = env.Fault(ctx, "resume", r.pod("a"))
			}
			Eventually(func() bool { return exists(ctx, &corev1.Pod{}, r.ns, group.PodName(r.name, "a")) }).
				WithTimeout(60*time.Second).Should(BeFalse(), "the pod of the renamed member stays")
			Eventually(func() bool {
				p := &corev1.Pod{}
				return exists(ctx, p, r.ns, group.PodName(r.name, "a2")) && p.Status.PodIP != ""
			}).WithTimeout(60*time.Second).Should(BeTrue(), "no pod for a2")
			time.Sleep(failbackDelay + 3*time.Second)
			r.settled(ctx, "a2", "b")
			Expect(r.servedSince("c", edited)).To(BeFalse(), "the tertiary served: %s", r.history())
			gap := svc.LongestGapSince(edited)
			figure("active renamed ("+what+") → client gap (through the Service)", gap)
			figure("active renamed ("+what+") → client gap (members' old addresses)", r.load.LongestGapSince(edited))
			Expect(gap).To(BeNumerically("<", roleEditBound))
			Expect(svc.Lost()).To(BeZero(), "seats lost through the Service")
			r.invariants()
		},
		Entry("while it serves", false),
		Entry("while it is frozen", true),
	)
})

// setRoles sets the roles of the named members, leaving the others.
func (r *triadRun) setRoles(ctx context.Context, roles map[string]licensehav1.MemberRole) {
	GinkgoHelper()
	r.update(ctx, func(t *licensehav1.LicenseTriad) {
		for i, m := range t.Spec.Members {
			if role, ok := roles[m.Name]; ok {
				t.Spec.Members[i].Role = role
			}
		}
	})
}

// mayServe lists the members that are Primary or Secondary once roles
// (applied to the suite's a Primary, b Secondary, c Tertiary) are in place.
func mayServe(roles map[string]licensehav1.MemberRole) []string {
	all := map[string]licensehav1.MemberRole{"a": licensehav1.RolePrimary, "b": licensehav1.RoleSecondary, "c": licensehav1.RoleTertiary}
	for m, role := range roles {
		all[m] = role
	}
	var out []string
	for _, m := range triadMembers {
		if all[m] != licensehav1.RoleTertiary {
			out = append(out, m)
		}
	}
	return out
}

// servedAt reports whether member served at t.
func (r *triadRun) servedAt(member string, t time.Time) bool {
	var serving []string
	for _, c := range r.watcher.History() {
		if c.At.After(t) {
			break
		}
		serving = c.Serving
	}
	return slices.Contains(serving, member)
}

// neverServedAsTertiary checks that member, Tertiary since the edit at t,
// did not serve after the edit, or, when it served then, not once it had
// stopped (it may serve until it hands the role over).
func (r *triadRun) neverServedAsTertiary(member string, t time.Time) {
	GinkgoHelper()
	from := t
	if r.servedAt(member, t) {
		stopped, ok := r.stoppedServing(member, t)
		Expect(ok).To(BeTrue(), "%s, now Tertiary, never stopped serving: %s", member, r.history())
		from = stopped
	}
	Expect(r.servedSince(member, from)).To(BeFalse(), "%s served again as Tertiary: %s", member, r.history())
}

// serviceReturns waits until one of want serves alone after t and returns
// it and when it was first seen; on failure it reports the triad's status
// and the Lease besides the serving history.
func (r *triadRun) serviceReturns(ctx context.Context, t time.Time, timeout time.Duration, want ...string) (string, time.Time) {
	GinkgoHelper()
	deadline := t.Add(timeout)
	for time.Now().Before(deadline) {
		if s := r.watcher.Serving(); len(s) == 1 && slices.Contains(want, s[0]) {
			if at, err := r.watcher.WaitFor(ctx, s[0], time.Second); err == nil {
				return s[0], at
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	Fail(fmt.Sprintf("none of %v served alone within %s of the edit; %s\nserving history:%s", want, timeout, r.describe(ctx), r.history()))
	return "", time.Time{}
}

// settled waits until the triad is Active 3/3 and Ready, its status names
// the member that serves (one of want), and the Lease names it too.
func (r *triadRun) settled(ctx context.Context, want ...string) {
	GinkgoHelper()
	Eventually(func() error {
		t := &licensehav1.LicenseTriad{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: r.name}, t); err != nil {
			return err
		}
		s := r.watcher.Serving()
		switch {
		case len(s) != 1 || !slices.Contains(want, s[0]):
			return fmt.Errorf("serving %v, want one of %v", s, want)
		case !formed(t):
			return fmt.Errorf("not Active 3/3 Ready")
		case t.Status.ActiveMember != s[0]:
			return fmt.Errorf("status names %q as active, %s serves", t.Status.ActiveMember, s[0])
		case r.leaseHolder(ctx) != s[0]:
			return fmt.Errorf("the Lease names %q, %s serves", r.leaseHolder(ctx), s[0])
		}
		return nil
	}).WithTimeout(roleEditBound).WithPolling(200*time.Millisecond).Should(Succeed(), func() string { return r.describe(ctx) + r.history() })
}

// describe summarises the triad's status and the Lease for failure messages.
func (r *triadRun) describe(ctx context.Context) string {
	t := &licensehav1.LicenseTriad{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: r.name}, t); err != nil {
		return "triad: " + err.Error()
	}
	var roles, members []string
	for _, m := range t.Spec.Members {
		roles = append(roles, m.Name+"="+string(m.Role))
	}
	for _, m := range t.Status.Members {
		members = append(members, fmt.Sprintf("%s:%s ready=%t", m.Name, m.State, m.Ready))
	}
	ready := "Unknown"
	if c := meta.FindStatusCondition(t.Status.Conditions, licensehav1.ConditionReady); c != nil {
		ready = string(c.Status) + " (" + c.Reason + ")"
	}
	return fmt.Sprintf("triad: roles [%s], phase %s, Ready %s, active %q, quorum %s, members [%s]; Lease holder %q",
		strings.Join(roles, " "), t.Status.Phase, ready, t.Status.ActiveMember, t.Status.Quorum, strings.Join(members, ", "),
		r.leaseHolder(ctx))
}

// followPods keeps the watcher's targets at the named members' pods,
// including terminating ones (which may still serve), as long as they have
// an address.
func (r *triadRun) followPods(members ...string) {
	go func() {
		for r.ctx.Err() == nil {
			var ts []probe.Target
			seen := map[string]bool{}
			for _, m := range members {
				p := &corev1.Pod{}
				if err := env.Client.Get(r.ctx, client.ObjectKey{Namespace: r.ns, Name: group.PodName(r.name, m)}, p); err != nil || p.Status.PodIP == "" {
					continue
				}
				url := "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)
				if !seen[url] { // an address is never watched twice
					seen[url] = true
					ts = append(ts, probe.Target{Name: m, URL: url})
				}
			}
			r.watcher.SetTargets(ts)
			time.Sleep(200 * time.Millisecond)
		}
	}()
}
