package controllers_test

import (
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

		t := validTriad(ns, "plant-a")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-a-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
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

		By("once the Service is gone the triad creates its own")
		Expect(k8sClient.Delete(ctx, web)).To(Succeed())
		Eventually(func(g Gomega) {
			svc := &corev1.Service{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(web), svc)).To(Succeed())
			g.Expect(metav1.GetControllerOf(svc)).To(HaveField("UID", t.UID))
			g.Expect(svc.Spec.Selector).To(HaveKeyWithValue(licensehav1.LabelRole, "active"))
			g.Expect(getPod(ns, "plant-a-a")).NotTo(BeNil())
		}, timeout, interval).Should(Succeed())
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
		t := validTriad(ns, "mine")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "mine-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
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
