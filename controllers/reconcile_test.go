package controllers_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/testfixtures"
	"github.com/licenseha/licenseha/pkg/licensing"
)

const (
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)

// licenceFile issues a licence signed by the key the operator trusts.
func licenceFile(id, groupKey string, edition licensing.Edition) []byte {
	data, err := testfixtures.Licence(signingKey, id, groupKey, edition)
	Expect(err).NotTo(HaveOccurred())
	return data
}

// licenseSecret holds an Enterprise licence for the group the Secret is
// named after ("<group>-licenses", "<pair>-main", ...).
func licenseSecret(ns, name string) *corev1.Secret {
	groupName := name[:strings.LastIndex(name, "-")]
	return testfixtures.LicenceSecret(ns, name, licenceFile("LIC-"+strings.ToUpper(name), ns+"/"+groupName,
		licensing.EditionEnterprise))
}

// groupCondition returns the named condition of the group at key, re-read
// from the API into newObj(); triadCondition and pairCondition name the kind.
func groupCondition[T client.Object](key client.ObjectKey, condType string, newObj func() T, conds func(T) []metav1.Condition) func() *metav1.Condition {
	return func() *metav1.Condition {
		obj := newObj()
		if err := k8sClient.Get(ctx, key, obj); err != nil {
			return nil
		}
		return meta.FindStatusCondition(conds(obj), condType)
	}
}

func triadCondition(key client.ObjectKey, condType string) func() *metav1.Condition {
	return groupCondition(key, condType, func() *licensehav1.LicenseTriad { return &licensehav1.LicenseTriad{} },
		func(t *licensehav1.LicenseTriad) []metav1.Condition { return t.Status.Conditions })
}

func pairCondition(key client.ObjectKey, condType string) func() *metav1.Condition {
	return groupCondition(key, condType, func() *licensehav1.LicenseBackupPair { return &licensehav1.LicenseBackupPair{} },
		func(p *licensehav1.LicenseBackupPair) []metav1.Condition { return p.Status.Conditions })
}

// eventuallyNotReady waits until the triad t reports Ready False for
// reason, with a message holding msg.
func eventuallyNotReady(t *licensehav1.LicenseTriad, reason, msg string) {
	GinkgoHelper()
	Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionReady), timeout, interval).
		Should(And(haveReason(metav1.ConditionFalse, reason), HaveField("Message", ContainSubstring(msg))))
}

// createDeletingTriad creates testfixtures' triad ns/name with
// dissolvePolicy Delete and its licence Secret, which opts in to go with it.
func createDeletingTriad(ns, name string) *licensehav1.LicenseTriad {
	GinkgoHelper()
	t := validTriad(ns, name)
	t.Spec.DissolvePolicy = licensehav1.DissolveDelete
	s := licenseSecret(ns, name+"-licenses")
	s.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	Expect(k8sClient.Create(ctx, t)).To(Succeed())
	return t
}

// createTriad creates testfixtures' triad ns/name with its licence Secret.
func createTriad(ns, name string) *licensehav1.LicenseTriad {
	GinkgoHelper()
	t := validTriad(ns, name)
	Expect(k8sClient.Create(ctx, licenseSecret(ns, name+"-licenses"))).To(Succeed())
	Expect(k8sClient.Create(ctx, t)).To(Succeed())
	return t
}

func haveReason(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()),
		HaveField("Status", status),
		HaveField("Reason", reason))
}

var _ = Describe("LicenseTriad reconciler", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("adds its finalizer, reports Forming and observes the generation", func() {
		t := createTriad(ns, "plant")

		Eventually(func(g Gomega) {
			got := &licensehav1.LicenseTriad{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			g.Expect(got.Finalizers).To(ContainElement(licensehav1.Finalizer))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Phase).To(Equal(licensehav1.TriadForming))
			g.Expect(got.Status.Quorum).To(Equal("0/3"))
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, licensehav1.ConditionLicenseValid)).
				To(haveReason(metav1.ConditionTrue, licensehav1.ReasonLicensesPresent))
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, licensehav1.ConditionReady)).
				To(haveReason(metav1.ConditionFalse, licensehav1.ReasonNotServing))
		}, timeout, interval).Should(Succeed())

		By("moving observedGeneration with every spec change")
		Expect(update(t, func(t *licensehav1.LicenseTriad) { t.Spec.Sync.IntervalSeconds = 20 })).To(Succeed())
		Eventually(func(g Gomega) {
			got := &licensehav1.LicenseTriad{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			g.Expect(got.Generation).To(BeEquivalentTo(2))
			g.Expect(got.Status.ObservedGeneration).To(BeEquivalentTo(2))
		}, timeout, interval).Should(Succeed())
	})

	It("reports a missing licence Secret and recovers when it appears, without polling", func() {
		t := validTriad(ns, "nosecret")
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		key := client.ObjectKeyFromObject(t)

		Eventually(triadCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound),
				HaveField("Message", ContainSubstring(`Secret "nosecret-licenses" named by spec.licenseSecretRef does not exist`))))
		Expect(triadCondition(key, licensehav1.ConditionReady)()).
			To(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound))
		Expect(triadCondition(key, licensehav1.ConditionDegraded)()).
			To(haveReason(metav1.ConditionTrue, licensehav1.ReasonNoActiveMember), "nobody serves")

		By("a Secret without licence files is not enough")
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nosecret-licenses"},
			Data: map[string][]byte{"readme.txt": []byte("no licence here")}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionFalse, licensehav1.ReasonNoLicenseFiles))

		By("adding a licence file makes it valid: the Secret watch re-reconciles")
		s.Data["plant.lic"] = licenceFile("LIC-1", ns+"/nosecret", licensing.EditionEnterprise)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonLicensesPresent))
	})

	It("reports a missing settings ConfigMap and recovers when it appears", func() {
		t := validTriad(ns, "settings")
		t.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "plant-settings"}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "settings-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		key := client.ObjectKeyFromObject(t)

		Eventually(triadCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonSettingsNotFound),
				HaveField("Message", ContainSubstring("spec.settingsRef"))))

		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant-settings"},
			Data: map[string]string{"settings.json": "{}"}}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonLicensesPresent))
	})

	It("writes nothing when nothing changed", func() {
		t := createTriad(ns, "steady")
		key := client.ObjectKeyFromObject(t)
		Eventually(triadCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonLicensesPresent))
		// The reconciles the triad's own children trigger (pods, Services,
		// the Lease being created) may still write status after the licence
		// is valid: wait until a second has passed without a write.
		var rv string
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, t)).To(Succeed())
			before := t.ResourceVersion
			time.Sleep(time.Second)
			g.Expect(k8sClient.Get(ctx, key, t)).To(Succeed())
			g.Expect(t.ResourceVersion).To(Equal(before))
			rv = before
		}, timeout, interval).Should(Succeed())

		By("triggering reconciles through the referenced Secret")
		for i := range 3 {
			s := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "steady-licenses"}, s)).To(Succeed())
			s.Labels = map[string]string{"touch": string(rune('a' + i))}
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
		}
		Consistently(func() string {
			got := &licensehav1.LicenseTriad{}
			Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
			return got.ResourceVersion
		}, 2*time.Second, 200*time.Millisecond).Should(Equal(rv))
	})

	DescribeTable("refuses licences the triad may not use, naming the reason",
		func(data func(ns string) []byte, reason, fragment string, verifies bool) {
			t := validTriad(ns, "lic")
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lic-licenses"},
				Data: map[string][]byte{"site.lic": data(ns)}}
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
			Expect(k8sClient.Create(ctx, t)).To(Succeed())
			Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionLicenseValid), timeout, interval).
				Should(And(haveReason(metav1.ConditionFalse, reason), HaveField("Message", ContainSubstring(fragment))))
			got := &licensehav1.LicenseTriad{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			Expect(got.Status.Licenses).To(ConsistOf(HaveField("Valid", verifies)))
		},
		Entry("bound to another group", func(ns string) []byte {
			return licenceFile("LIC-X", ns+"/other", licensing.EditionEnterprise)
		}, licensehav1.ReasonWrongGroup, "bound to another group", false),
		Entry("not Enterprise", func(ns string) []byte {
			return licenceFile("LIC-P", ns+"/lic", licensing.EditionProfessional)
		}, licensehav1.ReasonEditionNotAllowed, "needs an Enterprise licence", true),
		Entry("tampered", func(ns string) []byte {
			f := licenceFile("LIC-T", ns+"/lic", licensing.EditionEnterprise)
			return []byte(strings.Replace(string(f), `"printers": 10`, `"printers": 99`, 1))
		}, licensehav1.ReasonLicenseInvalid, "site.lic", false),
	)

	Describe("dissolving", func() {
		// stateObjects waits for the synced-state objects the operator
		// creates for a triad, owned by it.
		stateObjects := func(t *licensehav1.LicenseTriad) (*corev1.ConfigMap, *corev1.Secret) {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), t)).To(Succeed())
			cm := &corev1.ConfigMap{}
			s := &corev1.Secret{}
			key := client.ObjectKey{Namespace: t.Namespace, Name: t.Name + "-state"}
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key, cm)).To(Succeed())
				g.Expect(k8sClient.Get(ctx, key, s)).To(Succeed())
			}, timeout, interval).Should(Succeed())
			Expect(cm.OwnerReferences).To(ConsistOf(HaveField("UID", t.UID)))
			Expect(s.OwnerReferences).To(ConsistOf(HaveField("UID", t.UID)))
			return cm, s
		}
		waitGone := func(obj client.Object) {
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj))
			}, timeout, interval).Should(BeTrue())
		}

		It("Retain keeps the licences and the synced state, detached from the triad", func() {
			t := createTriad(ns, "retain")
			Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionLicenseValid), timeout, interval).ShouldNot(BeNil())
			cm, s := stateObjects(t)

			Expect(k8sClient.Delete(ctx, t)).To(Succeed())
			waitGone(t)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
			Expect(cm.OwnerReferences).To(BeEmpty(), "the garbage collector must not take the retained state")
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
			Expect(s.OwnerReferences).To(BeEmpty())
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "retain-licenses"}, &corev1.Secret{})).To(Succeed())
			lease := &coordinationv1.Lease{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "retain-active"}, lease)).To(Succeed())
			Expect(lease.OwnerReferences).To(BeEmpty(), "the Lease keeps the fencing epoch for a group of the same name")
		})

		It("Delete removes the synced state, and the licence Secret that opts in", func() {
			t := createDeletingTriad(ns, "drop")
			Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionLicenseValid), timeout, interval).ShouldNot(BeNil())
			cm, s := stateObjects(t)

			Expect(k8sClient.Delete(ctx, t)).To(Succeed())
			waitGone(t)
			waitGone(cm)
			waitGone(s)
			waitGone(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drop-licenses"}})
		})
	})
})

var _ = Describe("LicenseBackupPair reconciler", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("names the side whose licence Secret is missing, and recovers", func() {
		p := validPair(ns, "pair")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "pair-main"))).To(Succeed())
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		key := client.ObjectKeyFromObject(p)

		Eventually(pairCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound),
				HaveField("Message", ContainSubstring("spec.backup.licenseSecretRef"))))
		got := &licensehav1.LicenseBackupPair{}
		Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
		Expect(got.Finalizers).To(BeEmpty(), "the finalizer comes with the first object the pair may create")
		Expect(got.Status.Phase).To(Equal(licensehav1.PairForming))
		Expect(got.Status.SyncState).To(Equal(licensehav1.DisconnectedNotSynchronized))
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))

		Expect(k8sClient.Create(ctx, licenseSecret(ns, "pair-backup"))).To(Succeed())
		Eventually(pairCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonLicensesPresent))
		Eventually(finalizers(got), timeout, interval).Should(ContainElement(licensehav1.Finalizer))
	})

	It("dissolves with Delete: both licence Secrets go when they opt in", func() {
		p := validPair(ns, "gone")
		p.Spec.DissolvePolicy = licensehav1.DissolveDelete
		for _, name := range []string{"gone-main", "gone-backup"} {
			s := licenseSecret(ns, name)
			s.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(finalizers(p), timeout, interval).Should(ContainElement(licensehav1.Finalizer))

		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		for _, name := range []string{"gone", "gone-main", "gone-backup"} {
			Eventually(func() bool {
				err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
				if name == "gone" {
					err = k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &licensehav1.LicenseBackupPair{})
				}
				return apierrors.IsNotFound(err)
			}, timeout, interval).Should(BeTrue(), name)
		}
	})
})
