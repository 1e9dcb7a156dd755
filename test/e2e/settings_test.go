package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/settings"
	"github.com/licenseha/licenseha/pkg/server"
)

// settingsBound is the generous bound for a settings change to reach every
// member (operator reconcile, config watch, apply on the active member,
// publish, import).
const settingsBound = 30 * time.Second

var _ = Describe("Settings of spec.settingsRef", Label("e2e"), func() {
	It("reach every member of a triad, survive a bad edit, and win over a change through the admin API", func(ctx SpecContext) {
		// The load's client and printers stay allowed by every document.
		const doc1 = "access:\n  denyUsers: [\"e2e-denied-*\"]\nprinterGroups:\n  floor1: [\"P1-*\"]\n"
		const doc2 = "access:\n  denyUsers: [\"e2e-denied-*\", \"e2e-other-*\"]\nprinterGroups:\n  floor1: [\"P1-*\", \"P2-*\"]\n"
		hash := func(doc string) string {
			s, err := settings.Parse([]byte(doc))
			Expect(err).NotTo(HaveOccurred())
			return server.SettingsHash(s)
		}
		r := startTriad(ctx, "settings", func(t *licensehav1.LicenseTriad) {
			Expect(env.Client.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: "lic-settings"},
				Data:       map[string]string{settings.KeyYAML: doc1}})).To(Succeed())
			t.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "lic-settings"}
		})
		admins := map[string]*server.AdminClient{}
		for _, m := range triadMembers {
			admins[m] = adminClient(ctx, r.ns, r.name, m)
		}
		running := func(m string) func() (string, error) {
			return func() (string, error) {
				s, err := admins[m].Settings(ctx)
				if err != nil {
					return "", err
				}
				return server.SettingsHash(*s), nil
			}
		}
		allRun := func(want string, what string) {
			GinkgoHelper()
			start := time.Now()
			for _, m := range triadMembers {
				Eventually(running(m)).WithTimeout(settingsBound).WithPolling(100*time.Millisecond).
					Should(Equal(want), "member %s runs the spec's settings", m)
			}
			figure(what, time.Since(start))
		}
		allRun(hash(doc1), "settings: spec → every member (at creation)")
		Eventually(func() *licensehav1.SettingsStatus { return r.triad(ctx).Status.Settings }).WithTimeout(settingsBound).
			Should(And(HaveField("Hash", hash(doc1)), HaveField("Synchronized", true),
				HaveField("AppliedMembers", ConsistOf("a", "b", "c"))))

		By("a change through the active member's admin API is undone")
		active := r.triad(ctx).Status.ActiveMember
		Expect(active).NotTo(BeEmpty())
		Expect(admins[active].SetSettings(ctx, server.Settings{AllowedPrinters: []string{"P9-*"}})).To(Succeed())
		undo := time.Now()
		Eventually(running(active)).WithTimeout(settingsBound).WithPolling(100 * time.Millisecond).Should(Equal(hash(doc1)))
		figure("settings: admin API change undone on the active member", time.Since(undo))
		allRun(hash(doc1), "settings: every member back on the spec's")

		By("a bad edit is refused and changes nothing")
		edit := func(doc string) {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cm := &corev1.ConfigMap{}
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: "lic-settings"}, cm); err != nil {
					return err
				}
				cm.Data = map[string]string{settings.KeyYAML: doc}
				return env.Client.Update(ctx, cm)
			})).To(Succeed())
		}
		edit("access:\n  allowAddresses: [10.0.0.300/8]\n")
		Eventually(func() *metav1.Condition {
			return meta.FindStatusCondition(r.triad(ctx).Status.Conditions, licensehav1.ConditionSettingsValid)
		}).WithTimeout(settingsBound).Should(And(HaveField("Status", metav1.ConditionFalse),
			HaveField("Message", ContainSubstring("settings.access.allowAddresses"))))
		for _, m := range triadMembers {
			Consistently(running(m)).WithTimeout(3*time.Second).WithPolling(500*time.Millisecond).Should(Equal(hash(doc1)),
				"member %s keeps the last valid settings", m)
		}

		By("a valid edit reaches every member")
		edit(doc2)
		allRun(hash(doc2), "settings: spec edit → every member")
		r.invariants()
	})
})
