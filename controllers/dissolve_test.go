package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// dissolvedEvent returns the note of the Dissolved event of a group.
func dissolvedEvent(ns, kind, name string) func() string {
	return func() string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == licensehav1.ReasonDissolved {
				return e.Note
			}
		}
		return ""
	}
}

// ownerUIDs lists the owner UIDs of an object, re-read.
func ownerUIDs(obj client.Object) []types.UID {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	var out []types.UID
	for _, r := range obj.GetOwnerReferences() {
		out = append(out, r.UID)
	}
	return out
}

// forceDelete deletes obj and clears its finalizers (no controller-manager
// runs under envtest to release pvc-protection), as the garbage collector
// would once the group is gone.
func forceDelete(obj client.Object) {
	GinkgoHelper()
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); apierrors.IsNotFound(err) {
		return
	}
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed())
	Eventually(func() bool {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); apierrors.IsNotFound(err) {
			return true
		}
		obj.SetFinalizers(nil)
		_ = k8sClient.Update(ctx, obj)
		return false
	}, timeout, interval).Should(BeTrue())
}

var _ = Describe("Dissolving with dissolvePolicy KeepOnActive and MoveTo", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	pvc := func(name string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}

	It("triad KeepOnActive: keeps the active member's volume claim, the state and the licence Secret, and a group of the same name adopts them", func() {
		secret := licenseSecret(ns, "keep-licenses")
		secret.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
		t := validTriad(ns, "keep")
		t.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
		t.Spec.Storage = &licensehav1.StorageSpec{}
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		for _, m := range []string{"a", "b", "c"} {
			Eventually(podUID(ns, "keep-"+m), timeout, interval).ShouldNot(BeEmpty())
		}

		By("member b serves: it reports Active and holds the Lease")
		runMember(ns, "keep-a", group.StateStandby, "standby", "b", "c")
		runMember(ns, "keep-b", group.StateActive, "active", "a", "c")
		runMember(ns, "keep-c", group.StateWitness, "witness", "a", "b")
		holdLease(ns, "keep", "keep-b", 2)
		Eventually(func() string { return getTriadStatus(t).ActiveMember }, timeout, interval).Should(Equal("b"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), t)).To(Succeed())
		oldUID := t.UID
		keptClaim := pvc(group.PVCName("keep", "b"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(keptClaim), keptClaim)).To(Succeed())
		keptUID := keptClaim.UID

		deleteAndWait(t)

		By("b's claim is detached and marked; a's and c's stay the triad's, for the garbage collector")
		Expect(ownerUIDs(keptClaim)).To(BeEmpty())
		Expect(keptClaim.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationDissolveKeptOn, "b"))
		Expect(keptClaim.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationDissolvePolicy, "KeepOnActive LicenseTriad/keep"))
		for _, m := range []string{"a", "c"} {
			Expect(ownerUIDs(pvc(group.PVCName("keep", m)))).To(ConsistOf(oldUID), m)
		}
		state := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keep-state"}}
		Expect(ownerUIDs(state)).To(BeEmpty())
		Expect(state.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationDissolveKeptOn, "b"))
		Expect(ownerUIDs(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keep-active"}})).To(BeEmpty())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{})).To(Succeed(),
			"the members share the licence Secret: it stays with the kept member even though it opts in to deletion")
		Eventually(dissolvedEvent(ns, "LicenseTriad", "keep"), timeout, interval).Should(And(
			ContainSubstring("dissolvePolicy KeepOnActive"), ContainSubstring("kept on b (the active member)"),
			ContainSubstring("PersistentVolumeClaim keep-b-data"), ContainSubstring("licence Secret keep-licenses")))

		By("the garbage collector removes a's and c's claims; a new triad of the same name adopts b's")
		forceDelete(pvc(group.PVCName("keep", "a")))
		forceDelete(pvc(group.PVCName("keep", "c")))
		again := validTriad(ns, "keep")
		again.Spec.Storage = &licensehav1.StorageSpec{}
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		Eventually(func() []types.UID { return ownerUIDs(pvc(group.PVCName("keep", "b"))) }, timeout, interval).
			Should(ConsistOf(again.UID))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(keptClaim), keptClaim)).To(Succeed())
		Expect(keptClaim.UID).To(Equal(keptUID), "the same claim, with b's data")
	})

	It("triad KeepOnActive with no member serving keeps the primary's claim", func() {
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "idle-licenses"))).To(Succeed())
		t := validTriad(ns, "idle")
		t.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
		t.Spec.Storage = &licensehav1.StorageSpec{}
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PVCName("idle", "a")}, &corev1.PersistentVolumeClaim{})
		}, timeout, interval).Should(Succeed())
		deleteAndWait(t)
		primary := pvc(group.PVCName("idle", "a"))
		Expect(ownerUIDs(primary)).To(BeEmpty())
		Expect(primary.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationDissolveKeptOn, "a"))
		Expect(ownerUIDs(pvc(group.PVCName("idle", "b")))).NotTo(BeEmpty())
		Eventually(dissolvedEvent(ns, "LicenseTriad", "idle"), timeout, interval).Should(ContainSubstring("kept on a (no member served, so the primary)"))
	})

	It("triad MoveTo keeps the named member's claim", func() {
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "move-licenses"))).To(Succeed())
		t := validTriad(ns, "move")
		t.Spec.DissolvePolicy = licensehav1.DissolveMoveTo
		t.Spec.DissolveMoveTo = "c"
		t.Spec.Storage = &licensehav1.StorageSpec{}
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PVCName("move", "c")}, &corev1.PersistentVolumeClaim{})
		}, timeout, interval).Should(Succeed())
		deleteAndWait(t)
		named := pvc(group.PVCName("move", "c"))
		Expect(ownerUIDs(named)).To(BeEmpty())
		Expect(named.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationDissolvePolicy, "MoveTo LicenseTriad/move"))
		for _, m := range []string{"a", "b"} {
			Expect(ownerUIDs(pvc(group.PVCName("move", m)))).NotTo(BeEmpty(), m)
		}
		Eventually(dissolvedEvent(ns, "LicenseTriad", "move"), timeout, interval).Should(ContainSubstring("kept on c (named by spec.dissolveMoveTo)"))
	})

	It("pair MoveTo backup: deletes the main's licence Secret that opts in, keeps the backup's", func() {
		for _, side := range []string{"main", "backup"} {
			s := pairSecret(ns, "mv-"+side, "mv", "LIC-"+side, licensing.EditionEnterprise)
			s.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
		}
		p := validPair(ns, "mv")
		p.Spec.DissolvePolicy = licensehav1.DissolveMoveTo
		p.Spec.DissolveMoveTo = licensehav1.SideBackup
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(finalizers(p), timeout, interval).Should(ContainElement(licensehav1.Finalizer))
		deleteAndWait(p)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mv-main"}, &corev1.Secret{}))
		}, timeout, interval).Should(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mv-backup"}, &corev1.Secret{})).To(Succeed())
		state := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mv-state"}}
		Expect(ownerUIDs(state)).To(BeEmpty())
		Expect(state.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationDissolveKeptOn, "backup"))
		Eventually(dissolvedEvent(ns, "LicenseBackupPair", "mv"), timeout, interval).Should(And(
			ContainSubstring("kept on backup"), ContainSubstring("licence Secret mv-backup"), ContainSubstring("deleted: Secret mv-main")))
	})

	It("pair KeepOnActive: a licence Secret that does not opt in survives", func() {
		Expect(k8sClient.Create(ctx, pairSecret(ns, "ka-main", "ka", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "ka-backup", "ka", "LIC-B", licensing.EditionEnterprise))).To(Succeed())
		p := validPair(ns, "ka")
		p.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(finalizers(p), timeout, interval).Should(ContainElement(licensehav1.Finalizer))
		deleteAndWait(p)
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ka-backup"}, &corev1.Secret{})
		}, "2s", interval).Should(Succeed(), "the backup's licence Secret is not the pair's and does not opt in")
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ka-main"}, &corev1.Secret{})).To(Succeed())
		Eventually(dissolvedEvent(ns, "LicenseBackupPair", "ka"), timeout, interval).Should(And(
			ContainSubstring("kept on main (neither side served, so the main)"),
			ContainSubstring("Secret ka-backup (no licenseha.io/delete-with-group label)"), ContainSubstring("deleted: none")))
	})
})

var _ = Describe("Validation of dissolveMoveTo", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("refuses MoveTo without a member, a member not in the triad, and dissolveMoveTo with another policy", func() {
		t := validTriad(ns, "v1")
		t.Spec.DissolvePolicy = licensehav1.DissolveMoveTo
		expectRejected(t, "spec.dissolveMoveTo must name one of spec.members[].name")
		t = validTriad(ns, "v2")
		t.Spec.DissolvePolicy, t.Spec.DissolveMoveTo = licensehav1.DissolveMoveTo, "zz"
		expectRejected(t, "spec.dissolveMoveTo must name one of spec.members[].name")
		t = validTriad(ns, "v3")
		t.Spec.DissolveMoveTo = "a"
		expectRejected(t, "spec.dissolveMoveTo may only be set when spec.dissolvePolicy is MoveTo", "KeepOnActive")
		p := validPair(ns, "v4")
		p.Spec.DissolvePolicy = licensehav1.DissolveMoveTo
		expectRejected(p, "spec.dissolveMoveTo must be main or backup")
		p = validPair(ns, "v5")
		p.Spec.DissolvePolicy, p.Spec.DissolveMoveTo = licensehav1.DissolveMoveTo, "side"
		expectRejected(p, "spec.dissolveMoveTo", `supported values: "main", "backup"`)
		t = validTriad(ns, "v6")
		t.Spec.DissolvePolicy = "Deactivate"
		expectRejected(t, "spec.dissolvePolicy", `"KeepOnActive", "MoveTo"`)
	})

	It("accepts MoveTo naming a member, and KeepOnActive alone", func() {
		t := validTriad(ns, "ok1")
		t.Spec.DissolvePolicy, t.Spec.DissolveMoveTo = licensehav1.DissolveMoveTo, "b"
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		k := validTriad(ns, "ok2")
		k.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
	})
})
