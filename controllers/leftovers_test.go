package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// The suite runs no garbage collector (no kube-controller-manager), so what a
// deleted group owned stays until the operator deletes it: exactly the state
// a group re-created at once meets before the garbage collector got to it.

// rebornTimeout bounds how long a re-created group may take to clear its
// predecessor's objects and form.
const rebornTimeout = 60 * time.Second

// controllerUID is the UID of obj's controller, or "" when obj is gone or
// has none.
func controllerUID(obj client.Object) func() types.UID {
	return func() types.UID {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return ""
		}
		if ref := metav1.GetControllerOf(obj); ref != nil {
			return ref.UID
		}
		return ""
	}
}

// groupChildren are the objects of a group other than its pods, the Lease
// and the synced state, by name.
func groupChildren(ns, name string, services ...string) []client.Object {
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.AdminSecretName(name)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.ConfigName(name)}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-agent"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-agent"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-agent"}},
	}
	for _, s := range services {
		objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s}})
	}
	return objs
}

// deleteAndWait deletes a group and waits until it is gone: the operator
// dissolved it and released its finalizer.
func deleteAndWait(obj client.Object) {
	GinkgoHelper()
	Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	}, timeout, interval).Should(BeTrue())
}

var _ = Describe("A group re-created under the same name", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("backup pair: deletes its predecessor's objects, keeps what Retain kept, and serves in its new mode", func() {
		key := client.ObjectKey{Namespace: ns, Name: "reborn"}
		Expect(k8sClient.Create(ctx, pairSecret(ns, "reborn-main", "reborn", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "reborn-backup", "reborn", "LIC-B", licensing.EditionProfessional))).To(Succeed())
		first := validPair(ns, "reborn")
		first.Spec.Mode = licensehav1.ActiveActive
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		for _, side := range []string{"main", "backup"} {
			Eventually(podUID(ns, "reborn-"+side), timeout, interval).ShouldNot(BeEmpty())
		}
		reportPair(ns, "reborn-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 3, ServerVersion: "1.0"})
		reportPair(ns, "reborn-backup", group.MemberState{State: group.StateActive, Peers: []string{"main"}, Revision: 3, ServerVersion: "1.0"})
		Eventually(func() licensehav1.PairPhase { return getPair(key).Status.Phase }, timeout, interval).Should(Equal(licensehav1.PairActive))
		oldPair := getPair(key).UID
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reborn-active"}}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lease), lease)).To(Succeed())
		leaseUID := lease.UID
		state := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reborn-state"}}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(state), state)).To(Succeed())

		By("deleting the pair (dissolvePolicy Retain): its pods and the rest stay, as no garbage collector runs")
		deleteAndWait(first)
		children := groupChildren(ns, "reborn", "reborn", "reborn-main", "reborn-backup")
		for _, obj := range append(children, getPod(ns, "reborn-main"), getPod(ns, "reborn-backup")) {
			Expect(controllerUID(obj)()).To(Equal(oldPair), "%T %s", obj, obj.GetName())
		}

		By("creating it again at once, in the other mode")
		second := validPair(ns, "reborn")
		second.Spec.Mode = licensehav1.ActivePassive
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Expect(second.UID).NotTo(Equal(oldPair))

		By("the pair gets pods and objects of its own, and does not report its name's pods as another group's")
		Eventually(func(g Gomega) {
			for _, side := range []string{"main", "backup"} {
				p := getPod(ns, "reborn-"+side)
				g.Expect(p).NotTo(BeNil())
				g.Expect(metav1.GetControllerOf(p)).To(HaveField("UID", second.UID))
			}
		}, rebornTimeout, interval).Should(Succeed())
		for _, obj := range children {
			Eventually(controllerUID(obj), timeout, interval).Should(Equal(second.UID), "%T %s", obj, obj.GetName())
		}
		Expect(meta.FindStatusCondition(getPair(key).Status.Conditions, licensehav1.ConditionReady)).
			NotTo(HaveField("Reason", licensehav1.ReasonMemberInOtherGroup))

		By("what Retain kept is the same Lease and state, now the new pair's: epochs continue")
		Eventually(controllerUID(lease), timeout, interval).Should(Equal(second.UID))
		Expect(lease.UID).To(Equal(leaseUID), "the retained Lease is adopted, not replaced")
		gotState := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(state), gotState)).To(Succeed())
		Expect(gotState.UID).To(Equal(state.UID), "the retained synced state is adopted, not replaced")

		By("the new pair serves")
		holdLease(ns, "reborn", "reborn-main", 2)
		reportPair(ns, "reborn-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 3, ServerVersion: "1.0"})
		reportPair(ns, "reborn-backup", group.MemberState{State: group.StateStandby, Peers: []string{"main"}, Revision: 3, ServerVersion: "1.0"})
		Eventually(func(g Gomega) {
			p := getPair(key)
			g.Expect(p.Status.Phase).To(Equal(licensehav1.PairActive))
			g.Expect(p.Status.ActiveServer).To(Equal(licensehav1.SideMain))
			g.Expect(meta.FindStatusCondition(p.Status.Conditions, licensehav1.ConditionReady)).
				To(haveReason(metav1.ConditionTrue, licensehav1.ReasonServing))
		}, timeout, interval).Should(Succeed())
	})

	It("triad: deletes its predecessor's objects, the Lease too after dissolvePolicy Delete, and forms", func() {
		first := createDeletingTriad(ns, "again")
		for _, m := range []string{"a", "b", "c"} {
			Eventually(podUID(ns, "again-"+m), timeout, interval).ShouldNot(BeEmpty())
		}
		holdLease(ns, "again", "again-a", 4)
		runSteadyMembers(ns, "again")
		Eventually(func() licensehav1.TriadPhase { return getTriadStatus(first).Phase }, timeout, interval).
			Should(Equal(licensehav1.TriadActive))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		oldTriad := first.UID
		oldLease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "again-active"}}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(oldLease), oldLease)).To(Succeed())

		By("deleting the triad (dissolvePolicy Delete): the licence Secret (opted in) goes, its pods and Lease stay")
		deleteAndWait(first)
		children := groupChildren(ns, "again", "again", "again-members")
		for _, obj := range append(children, getPod(ns, "again-a"), getPod(ns, "again-b"), getPod(ns, "again-c"),
			&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "again-active"}}) {
			Expect(controllerUID(obj)()).To(Equal(oldTriad), "%T %s", obj, obj.GetName())
		}

		By("creating it again at once, with a new licence Secret")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "again-licenses"))).To(Succeed())
		second := validTriad(ns, "again")
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			for _, m := range []string{"a", "b", "c"} {
				p := getPod(ns, "again-"+m)
				g.Expect(p).NotTo(BeNil())
				g.Expect(metav1.GetControllerOf(p)).To(HaveField("UID", second.UID))
			}
		}, rebornTimeout, interval).Should(Succeed())
		for _, obj := range children {
			Eventually(controllerUID(obj), timeout, interval).Should(Equal(second.UID), "%T %s", obj, obj.GetName())
		}
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "again-active"}}
		Eventually(controllerUID(lease), timeout, interval).Should(Equal(second.UID))
		Expect(lease.UID).NotTo(Equal(oldLease.UID), "a Lease the predecessor did not retain goes with it")

		By("the new triad serves")
		holdLease(ns, "again", "again-a", 1)
		runSteadyMembers(ns, "again")
		Eventually(func(g Gomega) {
			st := getTriadStatus(second)
			g.Expect(st.Phase).To(Equal(licensehav1.TriadActive))
			g.Expect(meta.FindStatusCondition(st.Conditions, licensehav1.ConditionReady)).
				To(haveReason(metav1.ConditionTrue, licensehav1.ReasonServing))
		}, timeout, interval).Should(Succeed())
	})

	It("still refuses, and keeps, pods of another kind or another name", func() {
		foreign := func(name, kind, owner string) *corev1.Pod {
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
					Labels: map[string]string{licensehav1.LabelGroup: "guard", licensehav1.LabelGroupKind: "triad"},
					OwnerReferences: []metav1.OwnerReference{{APIVersion: licensehav1.GroupVersion.String(), Kind: kind,
						Name: owner, UID: uuid.NewUUID(), Controller: ptr.To(true)}}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "busybox"}}},
			}
		}
		pairs := foreign("guard-b", "LicenseBackupPair", "guard")
		other := foreign("guard-c", "LicenseTriad", "another")
		for _, p := range []*corev1.Pod{pairs, other} {
			Expect(k8sClient.Create(ctx, p)).To(Succeed())
		}
		t := createTriad(ns, "guard")
		Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonMemberInOtherGroup),
				HaveField("Message", And(ContainSubstring("guard-b"), ContainSubstring("guard-c")))))
		Expect(getTriadStatus(t).Phase).To(Equal(licensehav1.TriadFailed))
		Consistently(func() []types.UID { return []types.UID{podUID(ns, "guard-b")(), podUID(ns, "guard-c")()} },
			"2s", interval).Should(Equal([]types.UID{pairs.UID, other.UID}), "neither pod is deleted")
	})
})
