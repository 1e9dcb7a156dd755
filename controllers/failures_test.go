package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/licenseha/licenseha/controllers"
)

var _ = Describe("A reconcile the API server refuses", func() {
	It("leaves a Warning event on the group naming the step and the refusal, and the group forms once it is lifted", func() {
		ns := newNamespace()
		// A quota of no Services: the apiserver's quota admission refuses
		// the triad's client Service. Nothing runs envtest's quota
		// controller, so the test writes the quota's status itself.
		quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-services"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceServices: resource.MustParse("0")}}}
		Expect(k8sClient.Create(ctx, quota)).To(Succeed())
		quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard,
			Used: corev1.ResourceList{corev1.ResourceServices: resource.MustParse("0")}}
		Expect(k8sClient.Status().Update(ctx, quota)).To(Succeed())

		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, validTriad(ns, "plant"))).To(Succeed())

		warnings := func() []eventsv1.Event {
			list := &eventsv1.EventList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var out []eventsv1.Event
			for _, e := range list.Items {
				if e.Regarding.Kind == "LicenseTriad" && e.Regarding.Name == "plant" && e.Reason == controllers.ReasonReconcileFailed {
					out = append(out, e)
				}
			}
			return out
		}
		Eventually(warnings, timeout, interval).Should(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Note", And(ContainSubstring("step members"), ContainSubstring("Service plant"),
				ContainSubstring("exceeded quota: no-services"))))))

		By("the quota removed, the triad gets its Services")
		Expect(k8sClient.Delete(ctx, quota)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant"}, &corev1.Service{})
		}, 2*timeout, interval).Should(Succeed())
	})
})
