package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// blockedBound is the generous bound for the operator to report an object
// it does not own (it looks again every 5 s).
const blockedBound = 60 * time.Second

// Objects a user owns whose names a group would use: the
// operator reports them and waits, changes none of them, and deletes on
// dissolve only what the group owns.
var _ = Describe("Foreign objects", Label("e2e"), func() {
	It("are reported and left alone; the group waits for them, and dissolve deletes only what it owns", func(ctx SpecContext) {
		ns := specNamespace(ctx, "foreign")
		const name = "plant"

		By("creating the user's objects under names the triad would use")
		web := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.ServiceName(name), Labels: map[string]string{"app": "web"}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		config := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.ConfigName(name), Labels: map[string]string{"app": "web"}},
			Data:       map[string]string{"nginx.conf": "server { listen 8080; }\n"},
		}
		stateSecret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.StateName(name), Labels: map[string]string{"app": "web"}},
			Data:       map[string][]byte{"password": []byte("e2e-foreign-db-password-7f3a")},
		}
		rememberSecret(ns+"/"+stateSecret.Name+"/password", "e2e-foreign-db-password-7f3a")
		notes := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-notes"},
			Data:       map[string]string{"note": "not the operator's"},
		}
		foreign := []client.Object{web, config, stateSecret}
		for _, obj := range append(slices.Clone(foreign), notes) {
			Expect(env.Client.Create(ctx, obj)).To(Succeed())
		}
		snapshots := map[string]objectSnapshot{}
		for _, obj := range foreign {
			snapshots[kindName(obj)] = snapshotOf(ctx, obj)
		}

		By("creating the triad (dissolvePolicy Delete, licence Secret without the opt-in label) and a second one whose licence opts in")
		created := time.Now()
		t, err := env.CreateTriad(ctx, ns, name, func(t *licensehav1.LicenseTriad) { t.Spec.DissolvePolicy = licensehav1.DissolveDelete })
		Expect(err).NotTo(HaveOccurred())
		licences := t.Spec.LicenseSecretRef.Name
		rememberLicenceSecret(ctx, ns, licences)
		opted, err := env.CreateTriad(ctx, ns, "opted", func(t *licensehav1.LicenseTriad) { t.Spec.DissolvePolicy = licensehav1.DissolveDelete })
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { deleteTriad(ctx, ns, name); deleteTriad(ctx, ns, "opted") })
		optedLicences := &corev1.Secret{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: opted.Spec.LicenseSecretRef.Name}, optedLicences)).To(Succeed())
		rememberLicenceSecret(ctx, ns, optedLicences.Name)
		base := optedLicences.DeepCopy()
		optedLicences.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
		Expect(env.Client.Patch(ctx, optedLicences, client.MergeFrom(base))).To(Succeed())

		By("the triad reports every foreign object and waits")
		unchanged := func() {
			for _, obj := range foreign {
				if now := snapshotOf(ctx, obj); !equality.Semantic.DeepEqual(now, snapshots[kindName(obj)]) {
					StopTrying(fmt.Sprintf("%s changed: %+v, was %+v", kindName(obj), now, snapshots[kindName(obj)])).Now()
				}
			}
		}
		blocked := waitReadyGuarded(ctx, ns, name, blockedBound, unchanged, []string{licensehav1.ReasonObjectNotOwned},
			"Service plant exists and is not owned by this LicenseTriad",
			"ConfigMap plant-config exists and is not owned by this LicenseTriad",
			"Secret plant-state exists and is not owned by this LicenseTriad")
		figure("foreign object → ObjectNotOwned reported", time.Since(created))
		GinkgoWriter.Printf("Ready: %s\n", blocked)
		// Long enough for a few of the operator's looks (every 5 s).
		Consistently(func(g Gomega) {
			for _, obj := range foreign {
				g.Expect(snapshotOf(ctx, obj)).To(Equal(snapshots[kindName(obj)]), "%s changed", kindName(obj))
			}
			nothingWritten(ctx, g, ns, name, memberPods(name)...)
		}).WithTimeout(15 * time.Second).WithPolling(time.Second).Should(Succeed())
		_, err = env.WaitTriad(ctx, ns, "opted", 120*time.Second, formed)
		Expect(err).NotTo(HaveOccurred(), "the other triad of the namespace forms meanwhile")

		By("removing the ConfigMap and the Secret: the Service still blocks the triad")
		Expect(env.Client.Delete(ctx, config)).To(Succeed())
		Expect(env.Client.Delete(ctx, stateSecret)).To(Succeed())
		Eventually(func(g Gomega) {
			tr := &licensehav1.LicenseTriad{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, tr)).To(Succeed())
			c := meta.FindStatusCondition(tr.Status.Conditions, licensehav1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(licensehav1.ReasonObjectNotOwned))
			g.Expect(c.Message).To(ContainSubstring("Service plant "))
			g.Expect(c.Message).NotTo(ContainSubstring("plant-config"))
			g.Expect(c.Message).NotTo(ContainSubstring("Secret plant-state"))
		}).WithTimeout(blockedBound).WithPolling(time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(snapshotOf(ctx, web)).To(Equal(snapshots[kindName(web)]), "the Service changed")
			nothingWritten(ctx, g, ns, name, memberPods(name)...)
		}).WithTimeout(10 * time.Second).WithPolling(time.Second).Should(Succeed())

		By("removing the Service: the triad comes up")
		removed := time.Now()
		Expect(env.Client.Delete(ctx, web)).To(Succeed())
		t, err = env.WaitTriad(ctx, ns, name, 180*time.Second, formed)
		Expect(err).NotTo(HaveOccurred())
		figure("foreign object removed → triad Active 3/3 Ready", time.Since(removed))
		svc := &corev1.Service{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc)).To(Succeed())
		Expect(metav1.IsControlledBy(svc, t)).To(BeTrue(), "the triad's own Service %s", name)
		Expect(svc.Spec.Selector).NotTo(HaveKeyWithValue("app", "web"))
		Expect(controllerutil.ContainsFinalizer(t, licensehav1.Finalizer)).To(BeTrue())

		By("deleting both triads: only the opted-in licence Secret goes with its group")
		for _, n := range []string{name, "opted"} {
			Expect(env.Client.Delete(ctx, &licensehav1.LicenseTriad{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})).To(Succeed())
		}
		for _, n := range []string{name, "opted"} {
			Eventually(func() bool { return exists(ctx, &licensehav1.LicenseTriad{}, ns, n) }).
				WithTimeout(90*time.Second).Should(BeFalse(), "triad %s is not gone", n)
		}
		Eventually(func() bool { return exists(ctx, &corev1.Secret{}, ns, optedLicences.Name) }).
			WithTimeout(30*time.Second).Should(BeFalse(), "the opted-in licence Secret stays")
		for _, n := range []string{name, "opted"} {
			Eventually(func() bool { return exists(ctx, &corev1.ConfigMap{}, ns, group.StateName(n)) }).
				WithTimeout(30*time.Second).Should(BeFalse(), "the synced state of %s stays (dissolvePolicy Delete)", n)
		}
		Consistently(func(g Gomega) {
			g.Expect(exists(ctx, &corev1.Secret{}, ns, licences)).To(BeTrue(), "the licence Secret without the opt-in label was deleted")
			g.Expect(exists(ctx, &corev1.ConfigMap{}, ns, notes.Name)).To(BeTrue(), "the user's ConfigMap was deleted")
		}).WithTimeout(10 * time.Second).WithPolling(time.Second).Should(Succeed())
	})

	// Triad "web" with member "a-b" and triad "web-a" with member "b" both
	// need the pod "web-a-b". The group created first has the name, even
	// before it creates the pod (its licence Secret comes later here): the
	// other one reports NameConflict, then, once the pod exists,
	// MemberInAnotherGroup, writes nothing and waits until the name is free.
	It("two groups needing the same pod name: the later one reports the conflict and waits", func(ctx SpecContext) {
		ns := specNamespace(ctx, "collide")
		const laterLicences = "web-licences-later"
		first, err := env.CreateTriad(ctx, ns, "web", func(t *licensehav1.LicenseTriad) {
			t.Spec.Members[0].Name = "a-b"
			t.Spec.LicenseSecretRef.Name = laterLicences
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { deleteTriad(ctx, ns, "web"); deleteTriad(ctx, ns, "web-a") })
		// Creation times count in seconds: make the order unambiguous.
		time.Sleep(1100 * time.Millisecond)
		_, err = env.CreateTriad(ctx, ns, "web-a", nil)
		Expect(err).NotTo(HaveOccurred())
		shared := group.PodName("web", "a-b")
		Expect(group.PodName("web-a", "b")).To(Equal(shared))

		By("the first group has no licence yet: the second reports NameConflict and writes nothing")
		ready := waitReadyGuarded(ctx, ns, "web-a", blockedBound, nil, []string{licensehav1.ReasonNameConflict},
			"Pod "+shared+" is also a name of LicenseTriad web, created earlier")
		GinkgoWriter.Printf("web-a Ready: %s\n", ready)
		Consistently(func(g Gomega) {
			nothingWritten(ctx, g, ns, "web-a", memberPods("web-a")...)
			g.Expect(exists(ctx, &corev1.Pod{}, ns, shared)).To(BeFalse(), "pod %s created", shared)
		}).WithTimeout(10 * time.Second).WithPolling(time.Second).Should(Succeed())

		By("the first group gets its licence and forms; the second keeps waiting")
		s, err := env.LicenceSecret(ns, laterLicences, "web", "LIC-WEB", 100)
		Expect(err).NotTo(HaveOccurred())
		Expect(env.Client.Create(ctx, s)).To(Succeed())
		rememberLicenceSecret(ctx, ns, laterLicences)
		first, err = env.WaitTriad(ctx, ns, "web", 120*time.Second, formed)
		Expect(err).NotTo(HaveOccurred())
		ready = waitReadyGuarded(ctx, ns, "web-a", blockedBound, nil,
			[]string{licensehav1.ReasonNameConflict, licensehav1.ReasonMemberInOtherGroup}, shared)
		GinkgoWriter.Printf("web-a Ready: %s\n", ready)
		Consistently(func(g Gomega) {
			p := &corev1.Pod{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: shared}, p)).To(Succeed())
			g.Expect(metav1.IsControlledBy(p, first)).To(BeTrue(), "pod %s changed hands", shared)
			g.Expect(p.Labels).To(HaveKeyWithValue(licensehav1.LabelMember, "a-b"))
			nothingWritten(ctx, g, ns, "web-a", group.PodName("web-a", "a"), group.PodName("web-a", "c"))
			tr := &licensehav1.LicenseTriad{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-a"}, tr)).To(Succeed())
			c := meta.FindStatusCondition(tr.Status.Conditions, licensehav1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Message).To(ContainSubstring(shared))
		}).WithTimeout(15 * time.Second).WithPolling(time.Second).Should(Succeed())

		By("deleting the first group: the second one comes up with the name")
		Expect(env.Client.Delete(ctx, first)).To(Succeed())
		second, err := env.WaitTriad(ctx, ns, "web-a", 180*time.Second, formed)
		Expect(err).NotTo(HaveOccurred())
		p := &corev1.Pod{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: shared}, p)).To(Succeed())
		Expect(metav1.IsControlledBy(p, second)).To(BeTrue())
		Expect(p.Labels).To(HaveKeyWithValue(licensehav1.LabelMember, "b"))
	})
})

// objectSnapshot is what must not change of an object the operator does not
// own.
type objectSnapshot struct {
	ResourceVersion string
	Labels          map[string]string
	Annotations     map[string]string
	OwnerReferences []metav1.OwnerReference
	Finalizers      []string
	Content         string
}

func kindName(obj client.Object) string { return fmt.Sprintf("%T %s", obj, obj.GetName()) }

func snapshotOf(ctx context.Context, obj client.Object) objectSnapshot {
	GinkgoHelper()
	fresh := obj.DeepCopyObject().(client.Object)
	Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), fresh)).To(Succeed())
	s := objectSnapshot{ResourceVersion: fresh.GetResourceVersion(), Labels: maps.Clone(fresh.GetLabels()),
		Annotations: maps.Clone(fresh.GetAnnotations()), OwnerReferences: fresh.GetOwnerReferences(), Finalizers: fresh.GetFinalizers()}
	switch o := fresh.(type) {
	case *corev1.Service:
		s.Content = fmt.Sprintf("%v %v %s", o.Spec.Selector, o.Spec.Ports, o.Spec.Type)
	case *corev1.ConfigMap:
		s.Content = fmt.Sprintf("%v %v", o.Data, o.BinaryData)
	case *corev1.Secret:
		s.Content = fmt.Sprintf("%x", o.Data)
	}
	return s
}

// memberPods are the pods of a triad with the suite's members.
func memberPods(name string) []string {
	var out []string
	for _, m := range triadMembers {
		out = append(out, group.PodName(name, m))
	}
	return out
}

// nothingWritten checks that a blocked group has no finalizer and none of
// the objects the operator would create for it (pods names its pods that
// no other group has).
func nothingWritten(ctx context.Context, g Gomega, ns, name string, pods ...string) {
	tr := &licensehav1.LicenseTriad{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, tr)).To(Succeed())
	g.Expect(tr.Finalizers).NotTo(ContainElement(licensehav1.Finalizer), "a blocked group got the finalizer")
	for _, p := range pods {
		g.Expect(exists(ctx, &corev1.Pod{}, ns, p)).To(BeFalse(), "member pod %s of a blocked group", p)
	}
	g.Expect(exists(ctx, &corev1.ServiceAccount{}, ns, group.AgentName(name))).To(BeFalse(), "agent ServiceAccount of a blocked group")
	g.Expect(exists(ctx, &rbacv1.RoleBinding{}, ns, group.AgentName(name))).To(BeFalse(), "agent RoleBinding of a blocked group")
	g.Expect(exists(ctx, &corev1.Secret{}, ns, group.AdminSecretName(name))).To(BeFalse(), "admin Secret of a blocked group")
	g.Expect(exists(ctx, &corev1.Service{}, ns, group.MembersServiceName(name))).To(BeFalse(), "members Service of a blocked group")
}

// waitReadyGuarded waits until the triad's Ready condition is False with
// one of reasons and a message containing every one of parts, and returns
// the condition; guard, when set, runs at every poll (to stop early).
func waitReadyGuarded(ctx context.Context, ns, name string, timeout time.Duration, guard func(), reasons []string, parts ...string) string {
	GinkgoHelper()
	var got string
	Eventually(func(g Gomega) {
		if guard != nil {
			guard()
		}
		tr := &licensehav1.LicenseTriad{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, tr)).To(Succeed())
		c := meta.FindStatusCondition(tr.Status.Conditions, licensehav1.ConditionReady)
		g.Expect(c).NotTo(BeNil(), "no Ready condition yet")
		got = fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse), got)
		g.Expect(reasons).To(ContainElement(c.Reason), got)
		for _, p := range parts {
			g.Expect(c.Message).To(ContainSubstring(p), got)
		}
	}).WithTimeout(timeout).WithPolling(time.Second).Should(Succeed())
	return got
}
