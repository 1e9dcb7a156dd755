package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// reportPair plays a pair member's agent.
func reportPair(ns, pod string, r group.MemberState) {
	runMember(ns, pod, r.State, map[bool]string{true: "active", false: "standby"}[r.State == group.StateActive], r.Peers...)
	editReport(ns, pod, func(report *group.MemberState) { *report = r })
}

func pairSecret(ns, name, pair, id string, edition licensing.Edition) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data: map[string][]byte{id + ".lic": licenceFile(id, ns+"/"+pair, edition)}}
}

func getPair(key client.ObjectKey) *licensehav1.LicenseBackupPair {
	p := &licensehav1.LicenseBackupPair{}
	Expect(k8sClient.Get(ctx, key, p)).To(Succeed())
	return p
}

var _ = Describe("LicenseBackupPair members", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	startPair := func(name string, mutate func(p *licensehav1.LicenseBackupPair)) client.ObjectKey {
		Expect(k8sClient.Create(ctx, pairSecret(ns, name+"-main", name, "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, name+"-backup", name, "LIC-B", licensing.EditionProfessional))).To(Succeed())
		p := validPair(ns, name)
		if mutate != nil {
			mutate(p)
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		return client.ObjectKeyFromObject(p)
	}

	It("runs main and backup with a Service each and one for whichever serves", func() {
		key := startPair("plant", nil)
		for _, side := range []string{"main", "backup"} {
			Eventually(podUID(ns, "plant-"+side), timeout, interval).ShouldNot(BeEmpty())
			pod := getPod(ns, "plant-"+side)
			Expect(pod.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "plant-"+side)),
				"each server mounts its own licences")
			svc := &corev1.Service{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-" + side}, svc)).To(Succeed())
			Expect(svc.Spec.Selector).To(HaveKeyWithValue(licensehav1.LabelMember, side))
		}
		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant"}, svc)).To(Succeed())
		Expect(svc.Spec.Selector).To(HaveKeyWithValue(licensehav1.LabelRole, "active"))

		By("listing licences no mapping covers")
		Eventually(func() []string { return getPair(key).Status.UnmappedLicenses }, timeout, interval).
			Should(Equal([]string{"LIC-B", "LIC-M"}))
	})

	It("reports the four sync states from the members", func() {
		key := startPair("sync", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-M", Backup: "LIC-B"}}
		})
		Eventually(podUID(ns, "sync-backup"), timeout, interval).ShouldNot(BeEmpty())
		expect := func(state licensehav1.SyncState) {
			Eventually(func() licensehav1.SyncState { return getPair(key).Status.SyncState }, timeout, interval).Should(Equal(state))
		}
		reportPair(ns, "sync-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 5, ServerVersion: "1.0"})
		reportPair(ns, "sync-backup", group.MemberState{State: group.StateActive, Peers: []string{"main"}, Revision: 5, ServerVersion: "1.0"})
		expect(licensehav1.ConnectedSynchronized)
		p := getPair(key)
		Expect(p.Status.Phase).To(Equal(licensehav1.PairActive))
		Expect(p.Status.LastSyncTime).NotTo(BeNil())
		Expect(p.Status.UnmappedLicenses).To(BeEmpty())
		Expect(meta.IsStatusConditionTrue(p.Status.Conditions, licensehav1.ConditionConnected)).To(BeTrue())

		reportPair(ns, "sync-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 6, ServerVersion: "1.0"})
		expect(licensehav1.ConnectedNotSynchronized)
		reportPair(ns, "sync-main", group.MemberState{State: group.StateActive, Revision: 6, ServerVersion: "1.0"})
		expect(licensehav1.DisconnectedNotSynchronized)
		reportPair(ns, "sync-backup", group.MemberState{State: group.StateActive, Revision: 6, ServerVersion: "1.0"})
		expect(licensehav1.DisconnectedSynchronized)
		Expect(meta.FindStatusCondition(getPair(key).Status.Conditions, licensehav1.ConditionConnected)).
			To(haveReason(metav1.ConditionFalse, licensehav1.ReasonPeersDisconnected))

		By("a version mismatch degrades the pair with its own reason")
		reportPair(ns, "sync-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 6, ServerVersion: "1.0"})
		reportPair(ns, "sync-backup", group.MemberState{State: group.StateActive, Peers: []string{"main"}, Revision: 6, ServerVersion: "1.1"})
		Eventually(func() *metav1.Condition {
			return meta.FindStatusCondition(getPair(key).Status.Conditions, licensehav1.ConditionDegraded)
		}, timeout, interval).Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonVersionMismatch))
	})

	It("runs only the local side of a disconnected pair, and stops the other side when a pair becomes disconnected", func() {
		key := startPair("site", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: licensehav1.SideBackup}
		})
		Eventually(podUID(ns, "site-backup"), timeout, interval).ShouldNot(BeEmpty())
		Consistently(podUID(ns, "site-main"), "1s", interval).Should(BeEmpty(), "the main runs in the other cluster")
		reportPair(ns, "site-backup", group.MemberState{State: group.StateActive, ServerVersion: "1.0"})
		Eventually(pairCondition(key, licensehav1.ConditionDegraded), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonDisconnected), "serving, no bundle imported yet")
		p := getPair(key)
		Expect(p.Status.Main.Remote).To(BeTrue())
		Expect(p.Status.Main.Pod).To(BeEmpty())
		Expect(p.Status.Backup.Serving).To(BeTrue())
		Expect(p.Status.SyncState).To(Equal(licensehav1.DisconnectedNotSynchronized))
		Expect(meta.FindStatusCondition(p.Status.Conditions, licensehav1.ConditionConnected)).
			To(haveReason(metav1.ConditionFalse, licensehav1.ReasonDisconnected))

		By("declaring a running pair disconnected")
		key = startPair("later", nil)
		Eventually(podUID(ns, "later-backup"), timeout, interval).ShouldNot(BeEmpty())
		Expect(update(getPair(key), func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: licensehav1.SideMain}
		})).To(Succeed())
		Eventually(podUID(ns, "later-backup"), timeout, interval).Should(BeEmpty())
		Expect(podUID(ns, "later-main")()).NotTo(BeEmpty())
		Eventually(func() bool { return getPair(key).Status.Backup.Remote }, timeout, interval).Should(BeTrue())
	})

	It("needs an Enterprise licence on one side and mapped licences that exist", func() {
		Expect(k8sClient.Create(ctx, pairSecret(ns, "std-main", "std", "LIC-M", licensing.EditionStandard))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "std-backup", "std", "LIC-B", licensing.EditionProfessional))).To(Succeed())
		p := validPair(ns, "std")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(pairCondition(client.ObjectKeyFromObject(p), licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionFalse, licensehav1.ReasonEditionNotAllowed))

		key := startPair("mapped", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-M", Backup: "LIC-NOPE"}}
		})
		Eventually(pairCondition(key, licensehav1.ConditionLicenseValid), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonLicenseInvalid),
				HaveField("Message", ContainSubstring("backup LIC-NOPE"))))
	})
})

var _ = Describe("LicenseBackupPair side stopped on purpose", func() {
	It("removes the side's pod, keeps it away and says so, and starts it again on resume", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, pairSecret(ns, "stop-main", "stop", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "stop-backup", "stop", "LIC-B", licensing.EditionEnterprise))).To(Succeed())
		p := validPair(ns, "stop")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		key := client.ObjectKeyFromObject(p)
		Eventually(podUID(ns, "stop-main"), timeout, interval).ShouldNot(BeEmpty())
		Eventually(podUID(ns, "stop-backup"), timeout, interval).ShouldNot(BeEmpty())

		setStopped := func(stopped bool) {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur := getPair(key)
				cur.Spec.Backup.Stopped = stopped
				return k8sClient.Update(ctx, cur)
			})).To(Succeed())
		}
		backupGone := func() bool {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stop-backup"}, &corev1.Pod{})
			return apierrors.IsNotFound(err)
		}

		By("stopping the backup")
		setStopped(true)
		Eventually(backupGone, timeout, interval).Should(BeTrue())
		Consistently(backupGone, 2*time.Second, interval).Should(BeTrue(), "a stopped side's pod must not come back")
		Expect(podUID(ns, "stop-main")()).NotTo(BeEmpty(), "the other side runs on")
		reportPair(ns, "stop-main", group.MemberState{State: group.StateActive})
		Eventually(func(g Gomega) {
			st := getPair(key).Status
			g.Expect(st.Backup.Stopped).To(BeTrue())
			g.Expect(st.Backup.Pod).To(BeEmpty())
			g.Expect(st.Main.Stopped).To(BeFalse())
			c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(licensehav1.ReasonSideStopped))
			g.Expect(c.Message).To(ContainSubstring("spec.backup.stopped"))
		}, timeout, interval).Should(Succeed())

		By("resuming it")
		setStopped(false)
		Eventually(podUID(ns, "stop-backup"), timeout, interval).ShouldNot(BeEmpty())
		Eventually(func() bool { return getPair(key).Status.Backup.Stopped }, timeout, interval).Should(BeFalse())
	})
})
