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
