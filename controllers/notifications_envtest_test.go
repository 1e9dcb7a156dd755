package controllers_test

import (
	"crypto/tls"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testpki"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/notify/notifytest"
)

// The e-mail path end to end: the operator under test (the suite allows
// loopback targets) sends through a real SMTP relay on loopback, over
// implicit TLS or STARTTLS, trusting the relay's private CA through
// spec.notifications.email.caSecretRef and authenticating with the
// credentials of credentialsSecretRef.
var _ = Describe("E-mail notifications", func() {
	var ns string
	var ca *testpki.CA
	BeforeEach(func() {
		ns = newNamespace()
		ca = testpki.NewCA(GinkgoT())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"},
			Data: map[string][]byte{"username": []byte("ops"), "password": []byte("hunter2")}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp-ca"},
			Data: map[string][]byte{"ca.crt": ca.CertPEM}})).To(Succeed())
	})

	startRelay := func(mode notifytest.Mode) *notifytest.Relay {
		certPEM, keyPEM := ca.Issue(GinkgoT(), "127.0.0.1")
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		Expect(err).NotTo(HaveOccurred())
		return notifytest.Start(GinkgoT(), notifytest.Config{Mode: mode, Certificate: cert, Username: "ops", Password: "hunter2"})
	}
	emailTo := func(r *notifytest.Relay, mode licensehav1.EmailTLS) *licensehav1.EmailNotification {
		return &licensehav1.EmailNotification{SMTPHost: r.Host, Port: int32(r.Port), TLS: mode,
			From: "licenseha@example.com", To: []string{"printing-oncall@example.com"},
			CredentialsSecretRef: &licensehav1.LocalObjectReference{Name: "smtp"},
			CASecretRef:          &licensehav1.LocalObjectReference{Name: "smtp-ca"}}
	}
	// reasons lists the reasons of the mails received, in order.
	reasons := func(r *notifytest.Relay) []string {
		var out []string
		for _, m := range r.Messages() {
			out = append(out, m.Subject[strings.LastIndex(m.Subject, ": ")+2:])
		}
		return out
	}
	// expectMail checks a mail as the on-call person gets it.
	expectMail := func(m notifytest.Message, kind, name, reason string, body ...string) {
		GinkgoHelper()
		Expect(m.TLS).To(BeTrue(), "the mail travelled in plain text")
		Expect(m.User).To(Equal("ops"), "the operator did not authenticate with the Secret's credentials")
		Expect(m.From).To(Equal("licenseha@example.com"))
		Expect(m.To).To(Equal([]string{"printing-oncall@example.com"}))
		Expect(m.Subject).To(Equal("[licenseha] " + kind + " " + ns + "/" + name + ": " + reason))
		for _, b := range body {
			Expect(m.Body).To(ContainSubstring(b))
		}
	}
	// nudge makes the operator reconcile the group again without changing
	// what its status derives from.
	nudge := func(pod string) {
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p := getPod(ns, pod)
			p.Annotations["test.licenseha.io/nudge"] = time.Now().Format(time.RFC3339Nano)
			return k8sClient.Update(ctx, p)
		})).To(Succeed())
	}
	// failPod makes a pod's server container stop, as a crash would.
	failPod := func(pod string) {
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p := getPod(ns, pod)
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
			return k8sClient.Status().Update(ctx, p)
		})).To(Succeed())
	}

	It("mails a pair's lost side, takeover, recovered side and failback once each, over implicit TLS", func() {
		relay := startRelay(notifytest.Implicit)
		Expect(k8sClient.Create(ctx, pairSecret(ns, "mail-main", "mail", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "mail-backup", "mail", "LIC-B", licensing.EditionProfessional))).To(Succeed())
		p := validPair(ns, "mail")
		p.Spec.Mode = licensehav1.ActivePassive
		p.Spec.Notifications = &licensehav1.NotificationsSpec{Email: emailTo(relay, licensehav1.EmailImplicitTLS)}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		key := client.ObjectKeyFromObject(p)
		for _, side := range []string{"main", "backup"} {
			Eventually(podUID(ns, "mail-"+side), timeout, interval).ShouldNot(BeEmpty())
		}

		By("forming: the main serves, the backup stands by; nothing is mailed")
		holdLease(ns, "mail", "mail-main", 1)
		reportPair(ns, "mail-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 1, ServerVersion: "1.0"})
		reportPair(ns, "mail-backup", group.MemberState{State: group.StateStandby, Peers: []string{"main"}, Revision: 1, ServerVersion: "1.0"})
		Eventually(func(g Gomega) {
			st := getPair(key).Status
			g.Expect(st.Phase).To(Equal(licensehav1.PairActive))
			g.Expect(st.ActiveServer).To(Equal(licensehav1.SideMain))
			g.Expect(st.LastSyncTime).NotTo(BeNil())
		}, timeout, interval).Should(Succeed())
		Consistently(relay.Messages, time.Second, interval).Should(BeEmpty())

		By("the backup takes over: one mail")
		reportPair(ns, "mail-backup", group.MemberState{State: group.StateActive, Peers: []string{"main"}, Revision: 1, ServerVersion: "1.0"})
		holdLease(ns, "mail", "mail-backup", 2)
		Eventually(func() licensehav1.PairSide { return getPair(key).Status.ActiveServer }, timeout, interval).Should(Equal(licensehav1.SideBackup))
		Eventually(reasons, timeout, interval).WithArguments(relay).Should(Equal([]string{"TookOver"}))
		expectMail(relay.Messages()[0], "LicenseBackupPair", "mail", "TookOver",
			"The backup took over while the main is down", "Reason: TookOver", "Member: backup")

		By("the main's server crashes: one mail, however often the operator reconciles")
		failPod("mail-main")
		Eventually(reasons, timeout, interval).WithArguments(relay).Should(Equal([]string{"TookOver", "MainLost"}))
		expectMail(relay.Messages()[1], "LicenseBackupPair", "mail", "MainLost",
			"The main is down: its server is neither ready nor serving", "Member: main")
		for range 5 {
			nudge("mail-backup")
			nudge("mail-main")
		}
		Consistently(reasons, 2*time.Second, interval).WithArguments(relay).Should(Equal([]string{"TookOver", "MainLost"}))

		By("the main is back, standing by: one mail")
		reportPair(ns, "mail-main", group.MemberState{State: group.StateStandby, Peers: []string{"backup"}, Revision: 1, ServerVersion: "1.0"})
		Eventually(reasons, timeout, interval).WithArguments(relay).Should(Equal([]string{"TookOver", "MainLost", "MainRecovered"}))
		expectMail(relay.Messages()[2], "LicenseBackupPair", "mail", "MainRecovered", "The main is up again", "Member: main")

		By("failback: the main serves again: one mail")
		reportPair(ns, "mail-main", group.MemberState{State: group.StateActive, Peers: []string{"backup"}, Revision: 1, ServerVersion: "1.0"})
		holdLease(ns, "mail", "mail-main", 3)
		reportPair(ns, "mail-backup", group.MemberState{State: group.StateStandby, Peers: []string{"main"}, Revision: 1, ServerVersion: "1.0"})
		Eventually(reasons, timeout, interval).WithArguments(relay).Should(Equal([]string{"TookOver", "MainLost", "MainRecovered", "FailedBack"}))
		expectMail(relay.Messages()[3], "LicenseBackupPair", "mail", "FailedBack", "The main serves again", "Member: main")
		for range 5 {
			nudge("mail-main")
		}
		Consistently(reasons, 2*time.Second, interval).WithArguments(relay).Should(HaveLen(4))
	})

	It("sends one test mail per nonce of licenseha.io/notify-test, over STARTTLS, and reports each channel", func() {
		relay := startRelay(notifytest.StartTLS)
		t := validTriad(ns, "probe")
		t.Spec.Notifications = &licensehav1.NotificationsSpec{
			Email: emailTo(relay, licensehav1.EmailStartTLS),
			// Nothing listens on port 1; the path stands for a secret
			// (some webhooks carry their token in the path).
			Webhook: &licensehav1.WebhookNotification{URL: "http://127.0.0.1:1/hooks/s3cr3t-path"},
		}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "probe-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		for _, m := range []string{"a", "b", "c"} {
			Eventually(podUID(ns, "probe-"+m), timeout, interval).ShouldNot(BeEmpty())
		}
		annotate := func(key, value string) {
			Expect(update(t, func(t *licensehav1.LicenseTriad) {
				if t.Annotations == nil {
					t.Annotations = map[string]string{}
				}
				t.Annotations[key] = value
			})).To(Succeed())
		}
		results := func(nonce string) map[string]string {
			var list eventsv1.EventList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{licensehav1.LabelNotifyTest: nonce})).To(Succeed())
			out := map[string]string{}
			for _, e := range list.Items {
				Expect(e.Regarding.UID).To(Equal(t.UID))
				out[e.Labels[licensehav1.LabelNotifyChannel]] = e.Reason + ": " + e.Note
			}
			return out
		}

		annotate(licensehav1.AnnotationNotifyTest, "n1")
		msgs := relay.Wait(1, timeout)
		Expect(msgs).To(HaveLen(1))
		expectMail(msgs[0], "LicenseTriad", "probe", "NotificationTest", "Test notification n1", "kubectl licenseha notify test")
		Eventually(results, timeout, interval).WithArguments("n1").Should(And(
			HaveKeyWithValue("email", "NotificationTestSent: Test notification n1: the email notification was delivered"),
			HaveKeyWithValue("webhook", And(HavePrefix("NotificationTestFailed: Test notification n1: sending the webhook notification failed: "),
				ContainSubstring("connection refused"), Not(ContainSubstring("s3cr3t-path")))),
		))
		got := &licensehav1.LicenseTriad{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
		Expect(got.Annotations).To(HaveKeyWithValue(licensehav1.AnnotationNotifyTestSent, "n1"))

		By("the same nonce is not sent again, whatever else changes")
		annotate("example.com/unrelated", "x")
		annotate(licensehav1.AnnotationNotifyTest, "n1")
		Consistently(func() int { return len(relay.Messages()) }, 2*time.Second, interval).Should(Equal(1))

		By("a new nonce sends again")
		annotate(licensehav1.AnnotationNotifyTest, "n2")
		Eventually(func() int { return len(relay.Messages()) }, timeout, interval).Should(Equal(2))
		expectMail(relay.Messages()[1], "LicenseTriad", "probe", "NotificationTest", "Test notification n2")
		Eventually(results, timeout, interval).WithArguments("n2").Should(HaveKey("email"))
		Consistently(func() int { return len(relay.Messages()) }, time.Second, interval).Should(Equal(2))
	})

	It("reports a relay whose certificate does not chain to caSecretRef, and sends nothing", func() {
		relay := startRelay(notifytest.Implicit)
		other := testpki.NewCA(GinkgoT())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other-ca"},
			Data: map[string][]byte{"ca.crt": other.CertPEM}})).To(Succeed())
		p := validPair(ns, "wrongca")
		email := emailTo(relay, licensehav1.EmailImplicitTLS)
		email.CASecretRef = &licensehav1.LocalObjectReference{Name: "other-ca"}
		p.Spec.Notifications = &licensehav1.NotificationsSpec{Email: email}
		p.Annotations = map[string]string{licensehav1.AnnotationNotifyTest: "wrong-ca"}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() map[string]string {
			var list eventsv1.EventList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{licensehav1.LabelNotifyTest: "wrong-ca"})).To(Succeed())
			out := map[string]string{}
			for _, e := range list.Items {
				out[e.Labels[licensehav1.LabelNotifyChannel]] = e.Type + " " + e.Note
			}
			return out
		}, timeout, interval).Should(HaveKeyWithValue("email", And(HavePrefix("Warning Test notification wrong-ca: sending the email notification failed"),
			ContainSubstring("certificate"), Not(ContainSubstring("hunter2")))))
		Expect(relay.Messages()).To(BeEmpty())
		Expect(relay.AuthAttempts()).To(BeZero(), "credentials were offered to an unverified relay")
	})
})

var _ = Describe("E-mail notification validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("refuses the deprecated startTLS: false with a TLS mode, and keeps startTLS alone working", func() {
		t := validTriad(ns, "tls")
		t.Spec.Notifications = email()
		t.Spec.Notifications.Email.TLS = licensehav1.EmailImplicitTLS
		t.Spec.Notifications.Email.StartTLS = ptr.To(false)
		expectRejected(t, "spec.notifications.email.startTLS", "spec.notifications.email.tls")

		t.Spec.Notifications.Email.TLS = "SMTPS"
		t.Spec.Notifications.Email.StartTLS = nil
		expectRejected(t, "spec.notifications.email.tls", "Unsupported value")

		for i, e := range []struct {
			tls      licensehav1.EmailTLS
			startTLS *bool
		}{{licensehav1.EmailImplicitTLS, nil}, {licensehav1.EmailImplicitTLS, ptr.To(true)}, {licensehav1.EmailNoTLS, ptr.To(false)},
			{licensehav1.EmailNoTLS, nil}, {"", ptr.To(false)}} {
			ok := validTriad(ns, "tls-ok-"+string(rune('a'+i)))
			ok.Spec.Notifications = email()
			ok.Spec.Notifications.Email.TLS, ok.Spec.Notifications.Email.StartTLS = e.tls, e.startTLS
			Expect(k8sClient.Create(ctx, ok)).To(Succeed(), "tls %q, startTLS %v", e.tls, e.startTLS)
		}
	})
})
