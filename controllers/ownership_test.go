package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// The operator acts only on what a group owns: objects that merely have a
// name the group needs are never modified, adopted or deleted.

// unchanged snapshots objects and returns a check that each still has the
// same resourceVersion (nothing wrote to it) and no owner.
func unchanged(objs ...client.Object) func(Gomega) {
	versions := map[client.Object]string{}
	for _, obj := range objs {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		versions[obj] = obj.GetResourceVersion()
	}
	return func(g Gomega) {
		for obj, rv := range versions {
			got := obj.DeepCopyObject().(client.Object)
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got)).To(Succeed())
			g.Expect(got.GetResourceVersion()).To(Equal(rv), "%T %s was written to", obj, obj.GetName())
			g.Expect(got.GetOwnerReferences()).To(Equal(obj.GetOwnerReferences()), "%T %s", obj, obj.GetName())
		}
	}
}

// absent asserts that none of the objects exists.
func absent(ns string, objs ...client.Object) func(Gomega) {
	return func(g Gomega) {
		for _, obj := range objs {
			obj.SetNamespace(ns)
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s should not exist (%v)", obj, obj.GetName(), err)
		}
	}
}

func finalizers(obj client.Object) func() []string {
	return func() []string {
		got := obj.DeepCopyObject().(client.Object)
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
			return []string{"<" + err.Error() + ">"}
		}
		return got.GetFinalizers()
	}
}

func named(obj client.Object, name string) client.Object {
	obj.SetName(name)
	return obj
}

var _ = Describe("Objects a group does not own", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("leaves a foreign Service of the triad's name alone, reports it, and goes on once it is gone", func() {
		web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant-a"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		Expect(k8sClient.Create(ctx, web)).To(Succeed())
		same := unchanged(web)

		t := createTriad(ns, "plant-a")
		key := client.ObjectKeyFromObject(t)
		Eventually(triadCondition(key, licensehav1.ConditionReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonObjectNotOwned),
				HaveField("Message", ContainSubstring("Service plant-a exists and is not owned by this LicenseTriad"))))
		Expect(getTriadStatus(t).Phase).To(Equal(licensehav1.TriadFailed))

		By("the Service keeps its selector and owner, and the triad writes nothing else either")
		Consistently(func(g Gomega) {
			same(g)
			absent(ns, named(&corev1.Pod{}, "plant-a-a"), named(&corev1.ServiceAccount{}, "plant-a-agent"),
				named(&corev1.ConfigMap{}, "plant-a-state"), named(&corev1.Service{}, "plant-a-members"))(g)
		}, "3s", interval).Should(Succeed())
		got := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(web), got)).To(Succeed())
		Expect(got.Spec.Selector).To(Equal(map[string]string{"app": "web"}))
		Expect(finalizers(t)()).To(BeEmpty(), "a group that may write nothing gets no finalizer")

		By("once the Service is gone the triad creates its own")
		Expect(k8sClient.Delete(ctx, web)).To(Succeed())
		Eventually(func(g Gomega) {
			svc := &corev1.Service{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(web), svc)).To(Succeed())
			g.Expect(metav1.GetControllerOf(svc)).To(HaveField("UID", t.UID))
			g.Expect(svc.Spec.Selector).To(HaveKeyWithValue(licensehav1.LabelRole, "active"))
			g.Expect(getPod(ns, "plant-a-a")).NotTo(BeNil())
		}, timeout, interval).Should(Succeed())
		Expect(finalizers(t)()).To(ContainElement(licensehav1.Finalizer))
	})

	It("adopts no foreign ConfigMap, ServiceAccount, admin Secret or state ConfigMap", func() {
		foreign := []client.Object{
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine-config"}, Data: map[string]string{"k": "v"}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine-agent"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine-admin"}, Data: map[string][]byte{"token": []byte("mine")}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine-state"}, Data: map[string]string{"app": "settings"}},
		}
		for _, obj := range foreign {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		}
		same := unchanged(foreign...)
		t := createTriad(ns, "mine")
		Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonObjectNotOwned),
				HaveField("Message", And(
					ContainSubstring("ServiceAccount mine-agent exists and is not owned by this LicenseTriad"),
					ContainSubstring("Secret mine-admin exists"),
					ContainSubstring("ConfigMap mine-state exists"),
					ContainSubstring("ConfigMap mine-config exists")))))
		Consistently(func(g Gomega) {
			same(g)
			absent(ns, named(&corev1.Pod{}, "mine-a"), named(&corev1.Service{}, "mine"), named(&corev1.Secret{}, "mine-state"))(g)
		}, "3s", interval).Should(Succeed())
		Expect(finalizers(t)()).To(BeEmpty())
	})

	It("backup pair: names the controller of a Service it does not own", func() {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "px-backup",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web",
				UID: uuid.NewUUID(), Controller: ptr.To(true)}}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		Expect(k8sClient.Create(ctx, svc)).To(Succeed())
		same := unchanged(svc)
		Expect(k8sClient.Create(ctx, pairSecret(ns, "px-main", "px", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "px-backup", "px", "LIC-B", licensing.EditionProfessional))).To(Succeed())
		p := validPair(ns, "px")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(pairCondition(client.ObjectKeyFromObject(p), licensehav1.ConditionReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonObjectNotOwned),
				HaveField("Message", ContainSubstring("Service px-backup exists and is not owned by this LicenseBackupPair (it belongs to Deployment web)"))))
		Consistently(func(g Gomega) {
			same(g)
			absent(ns, named(&corev1.Pod{}, "px-main"), named(&corev1.Service{}, "px-main"))(g)
		}, "2s", interval).Should(Succeed())
	})
})

var _ = Describe("A group that fails validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("gets no finalizer and creates nothing, and dissolving it deletes nothing", func() {
		// A Secret the triad's author may not delete, named as its licence.
		other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-password"},
			Data: map[string][]byte{"password": []byte("s3cret")}}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		t := validTriad(ns, "grab")
		t.Spec.LicenseSecretRef.Name = "db-password"
		t.Spec.DissolvePolicy = licensehav1.DissolveDelete
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionFalse, licensehav1.ReasonNoLicenseFiles))
		Consistently(finalizers(t), "2s", interval).Should(BeEmpty())
		absent(ns, named(&corev1.Service{}, "grab"), named(&corev1.ServiceAccount{}, "grab-agent"),
			named(&corev1.ConfigMap{}, "grab-state"), named(&corev1.ConfigMap{}, "grab-config"),
			named(&corev1.Secret{}, "grab-admin"), named(&corev1.Pod{}, "grab-a"))(Default)

		deleteAndWait(t)
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(other), &corev1.Secret{})
		}, "2s", interval).Should(Succeed(), "the Secret the triad named is not the triad's")
	})
})

var _ = Describe("Dissolving with dissolvePolicy Delete", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// running creates a triad with dissolvePolicy Delete and waits until it
	// has its finalizer and synced state.
	running := func(name string, optIn bool) *licensehav1.LicenseTriad {
		s := licenseSecret(ns, name+"-licenses")
		if optIn {
			s.Labels = map[string]string{licensehav1.LabelDeleteWithGroup: "true"}
		}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		t := validTriad(ns, name)
		t.Spec.DissolvePolicy = licensehav1.DissolveDelete
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		Eventually(finalizers(t), timeout, interval).Should(ContainElement(licensehav1.Finalizer))
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-state"}, &corev1.ConfigMap{})
		}, timeout, interval).Should(Succeed())
		return t
	}
	gone := func(obj client.Object) func() bool {
		return func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)) }
	}

	It("keeps a licence Secret that does not opt in, and deletes one that does", func() {
		keep := running("keep", false)
		drop := running("drop", true)
		deleteAndWait(keep)
		deleteAndWait(drop)
		Eventually(gone(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drop-licenses"}}), timeout, interval).Should(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keep-licenses"}, &corev1.Secret{})).To(Succeed(),
			"a licence Secret without "+licensehav1.LabelDeleteWithGroup+" stays")
		for _, name := range []string{"keep-state", "drop-state"} {
			Eventually(gone(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}), timeout, interval).Should(BeTrue(), name)
			Eventually(gone(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}), timeout, interval).Should(BeTrue(), name)
		}
	})

	It("deletes no state object the group does not own", func() {
		t := running("held", true)
		By("someone takes the name of the state ConfigMap: the triad's own is replaced by a foreign one")
		cm := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "held-state"}, cm)).To(Succeed())
		Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
		foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held-state"},
			Data: map[string]string{"owner": "someone else"}}
		// The operator may recreate its own first; then take that one over.
		Eventually(func() error {
			err := k8sClient.Create(ctx, foreign.DeepCopy())
			if apierrors.IsAlreadyExists(err) {
				got := &corev1.ConfigMap{}
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), got); err != nil {
					return err
				}
				got.OwnerReferences, got.Labels, got.Data = nil, nil, foreign.Data
				return k8sClient.Update(ctx, got)
			}
			return err
		}, timeout, interval).Should(Succeed())
		// ConfigMaps other than referenced ones are not watched: a change
		// to the licence Secret makes the triad look again.
		Expect(update(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held-licenses"}}, func(s *corev1.Secret) {
			s.Annotations = map[string]string{"touched": "yes"}
		})).To(Succeed())
		eventuallyNotReady(t, licensehav1.ReasonObjectNotOwned, "ConfigMap held-state exists and is not owned by this LicenseTriad")

		deleteAndWait(t)
		Consistently(func(g Gomega) {
			got := &corev1.ConfigMap{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), got)).To(Succeed())
			g.Expect(got.Data).To(Equal(foreign.Data))
		}, "2s", interval).Should(Succeed())
		Eventually(gone(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held-state"}}), timeout, interval).
			Should(BeTrue(), "the triad's own state Secret goes")
	})
})

var _ = Describe("Groups whose derived names collide", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// collidingTriads are triad plant with member a-b and triad plant-a with
	// member b: both need the pod plant-a-b.
	plant := func() *licensehav1.LicenseTriad {
		t := validTriad(ns, "plant")
		t.Spec.Members[0].Name = "a-b"
		return t
	}

	It("reports the pod another group already runs under that name, and leaves it alone", func() {
		first := plant()
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Eventually(podUID(ns, "plant-a-b"), timeout, interval).ShouldNot(BeEmpty())
		pod := getPod(ns, "plant-a-b")

		second := createTriad(ns, "plant-a")
		eventuallyNotReady(second, licensehav1.ReasonMemberInOtherGroup, "Pod plant-a-b exists and is not owned by this LicenseTriad (it belongs to LicenseTriad plant)")
		Consistently(func(g Gomega) {
			got := getPod(ns, "plant-a-b")
			g.Expect(got).NotTo(BeNil())
			g.Expect(got.UID).To(Equal(pod.UID))
			g.Expect(got.ResourceVersion).To(Equal(pod.ResourceVersion))
			absent(ns, named(&corev1.Pod{}, "plant-a-a"), named(&corev1.Service{}, "plant-a"))(g)
		}, "3s", interval).Should(Succeed())
	})

	It("refuses a name an earlier group needs even before that group created it", func() {
		By("triad plant comes first, but cannot start yet: its licence Secret is missing")
		first := plant()
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Eventually(triadCondition(client.ObjectKeyFromObject(first), licensehav1.ConditionLicenseValid), timeout, interval).
			Should(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound))
		// Creation times have a resolution of one second.
		time.Sleep(1100 * time.Millisecond)

		second := createTriad(ns, "plant-a")
		eventuallyNotReady(second, licensehav1.ReasonNameConflict, "Pod plant-a-b is also a name of LicenseTriad plant, created earlier")
		Consistently(absent(ns, named(&corev1.Pod{}, "plant-a-b"), named(&corev1.Pod{}, "plant-a-a"),
			named(&corev1.Service{}, "plant-a")), "2s", interval).Should(Succeed())

		By("the earlier triad gets its licence and its pod")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		Eventually(func(g Gomega) {
			p := getPod(ns, "plant-a-b")
			g.Expect(p).NotTo(BeNil())
			g.Expect(metav1.GetControllerOf(p)).To(HaveField("UID", first.UID))
		}, timeout, interval).Should(Succeed())
	})
})
