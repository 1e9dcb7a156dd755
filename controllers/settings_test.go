package controllers_test

import (
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/settings"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

// reportSettingsHash sets the settings hash of a member's report, as its
// agent does after reading its server's settings.
func reportSettingsHash(ns, pod, hash string) {
	editReport(ns, pod, func(r *group.MemberState) { r.SettingsHash = hash })
}

// groupConfig reads the configuration the operator hands to the agents.
func groupConfig(ns, name string) func() group.Config {
	return func() group.Config {
		cm := &corev1.ConfigMap{}
		var cfg group.Config
		if k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.ConfigName(name)}, cm) == nil {
			_ = json.Unmarshal([]byte(cm.Data[group.ConfigKey]), &cfg)
		}
		return cfg
	}
}

func mustParse(doc string) server.Settings {
	s, err := settings.Parse([]byte(doc))
	Expect(err).NotTo(HaveOccurred())
	return s
}

func setSettingsDoc(ns, name, key, doc string) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
			return err
		}
		cm.Data = map[string]string{key: doc}
		return k8sClient.Update(ctx, cm)
	})).To(Succeed())
}

var _ = Describe("Settings of spec.settingsRef", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	const goodDoc = "access:\n  allowAddresses: [10.0.0.0/8]\nallowedPrinters: [\"zebra-*\"]\n"

	It("validates them, hands the valid ones to the members, keeps them through a bad edit, and shows who runs them", func() {
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant-settings"},
			Data: map[string]string{settings.KeyYAML: goodDoc}})).To(Succeed())
		t := validTriad(ns, "plant")
		t.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "plant-settings"}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		key := client.ObjectKeyFromObject(t)
		good := server.SettingsHash(mustParse(goodDoc))

		Eventually(triadCondition(key, licensehav1.ConditionSettingsValid), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonSettingsAccepted))
		Eventually(groupConfig(ns, "plant"), timeout, interval).Should(And(
			HaveField("SettingsHash", good),
			HaveField("Settings.AllowedPrinters", ConsistOf("zebra-*")),
			HaveField("Settings.Access.AllowAddresses", ConsistOf("10.0.0.0/8"))))

		By("the members report the settings their servers run")
		for _, m := range []string{"a", "b", "c"} {
			Eventually(podUID(ns, "plant-"+m), timeout, interval).ShouldNot(BeEmpty())
		}
		runSteadyMembers(ns, "plant")
		holdLease(ns, "plant", "plant-a", 1)
		reportSettingsHash(ns, "plant-a", good)
		reportSettingsHash(ns, "plant-b", good)
		reportSettingsHash(ns, "plant-c", "0ld")
		triad := func() *licensehav1.LicenseTriad {
			got := &licensehav1.LicenseTriad{}
			Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
			return got
		}
		// c's report may reach the operator a reconcile after a's and b's: until
		// then c shows no hash and is not applied either, so both are awaited.
		Eventually(func() licensehav1.LicenseTriadStatus { return triad().Status }, timeout, interval).Should(And(
			HaveField("Settings", And(HaveField("ConfigMap", "plant-settings"), HaveField("Hash", good),
				HaveField("AppliedMembers", Equal([]string{"a", "b"})), HaveField("Synchronized", false))),
			HaveField("Members", ContainElement(And(HaveField("Name", "c"), HaveField("SettingsHash", "0ld"))))))
		reportSettingsHash(ns, "plant-c", good)
		Eventually(func() *licensehav1.SettingsStatus { return triad().Status.Settings }, timeout, interval).Should(And(
			HaveField("AppliedMembers", Equal([]string{"a", "b", "c"})), HaveField("Synchronized", true)))

		By("a bad value is refused, naming the field and what is allowed; the last good settings stay")
		setSettingsDoc(ns, "plant-settings", settings.KeyYAML, "access:\n  allowAddresses: [10.0.0.300/8]\n")
		Eventually(triadCondition(key, licensehav1.ConditionSettingsValid), timeout, interval).Should(And(
			haveReason(metav1.ConditionFalse, licensehav1.ReasonInvalidSettings),
			HaveField("Message", And(ContainSubstring("settings.access.allowAddresses"), ContainSubstring("not an address or CIDR"),
				ContainSubstring("keep the last valid settings")))))
		Consistently(groupConfig(ns, "plant"), "1s", interval).Should(HaveField("SettingsHash", good))
		Expect(triad().Status.Settings.Hash).To(Equal(good))
		Expect(triadCondition(key, licensehav1.ConditionLicenseValid)()).To(HaveField("Status", metav1.ConditionTrue),
			"bad settings do not stop the triad")

		By("a valid edit replaces them")
		const nextDoc = `{"allowedPrinters": ["zebra-2*"]}`
		setSettingsDoc(ns, "plant-settings", settings.KeyJSON, nextDoc)
		next := server.SettingsHash(mustParse(nextDoc))
		Eventually(groupConfig(ns, "plant"), timeout, interval).Should(HaveField("SettingsHash", next))
		Eventually(func() *licensehav1.SettingsStatus { return triad().Status.Settings }, timeout, interval).Should(And(
			HaveField("Hash", next), HaveField("AppliedMembers", BeEmpty()), HaveField("Synchronized", false)))
		Expect(triadCondition(key, licensehav1.ConditionSettingsValid)()).To(HaveField("Status", metav1.ConditionTrue))

		By("removing settingsRef leaves the servers' settings alone")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got := triad()
			got.Spec.SettingsRef = nil
			return k8sClient.Update(ctx, got)
		})).To(Succeed())
		Eventually(groupConfig(ns, "plant"), timeout, interval).Should(HaveField("Settings", BeNil()))
		Eventually(func() *licensehav1.SettingsStatus { return triad().Status.Settings }, timeout, interval).Should(BeNil())
		Expect(triadCondition(key, licensehav1.ConditionSettingsValid)()).To(BeNil())
	})

	It("shows a pair's servers' settings and is not synchronized while the backup runs others", func() {
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pair-settings"},
			Data: map[string]string{settings.KeyYAML: goodDoc}})).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "plant-main", "plant", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "plant-backup", "plant", "LIC-B", licensing.EditionProfessional))).To(Succeed())
		p := validPair(ns, "plant")
		p.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "pair-settings"}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		key := client.ObjectKeyFromObject(p)
		good := server.SettingsHash(mustParse(goodDoc))
		Eventually(groupConfig(ns, "plant"), timeout, interval).Should(HaveField("SettingsHash", good))
		for _, side := range []string{"main", "backup"} {
			Eventually(podUID(ns, "plant-"+side), timeout, interval).ShouldNot(BeEmpty())
		}
		reportPair(ns, "plant-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 5, SettingsHash: good})
		reportPair(ns, "plant-backup", group.MemberState{State: group.StateStandby, Peers: []string{"main"}, Revision: 5, SettingsHash: "changed-on-backup"})
		Eventually(func() licensehav1.LicenseBackupPairStatus { return getPair(key).Status }, timeout, interval).Should(And(
			HaveField("Main.SettingsHash", good), HaveField("Backup.SettingsHash", "changed-on-backup"),
			HaveField("Synchronized", false),
			HaveField("Settings.AppliedMembers", Equal([]string{"main"})), HaveField("Settings.Synchronized", false)))
		reportPair(ns, "plant-backup", group.MemberState{State: group.StateStandby, Peers: []string{"main"}, Revision: 5, SettingsHash: good})
		Eventually(func() licensehav1.LicenseBackupPairStatus { return getPair(key).Status }, timeout, interval).Should(And(
			HaveField("Synchronized", true), HaveField("Settings.Synchronized", true),
			HaveField("Settings.AppliedMembers", Equal([]string{"backup", "main"}))))
	})
})
