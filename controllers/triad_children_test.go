package controllers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/notify"
)

// A running member as an agent would report it. No kubelet runs under
// envtest, so tests play the agents: they write pod status and the
// member-state annotation the way agents and kubelets do.
func runMember(ns, pod, state, roleLabel string, peers ...string) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &corev1.Pod{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
			return err
		}
		report, _ := json.Marshal(group.MemberState{State: state, Peers: peers, Revision: 1})
		p.Annotations[group.AnnotationMemberState] = string(report)
		p.Labels[licensehav1.LabelRole] = roleLabel
		if err := k8sClient.Update(ctx, p); err != nil {
			return err
		}
		p.Status = corev1.PodStatus{
			Phase: corev1.PodRunning,
			PodIP: "10.0.0." + strconv.Itoa(len(pod)),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
				LastTransitionTime: metav1.Now()}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "server", Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}},
		}
		return k8sClient.Status().Update(ctx, p)
	})).To(Succeed())
}

// runSteadyMembers reports a steady triad: a active, b standby, c witness,
// each hearing the other two.
func runSteadyMembers(ns, triad string) {
	runMember(ns, triad+"-a", group.StateActive, "active", "b", "c")
	runMember(ns, triad+"-b", group.StateStandby, "standby", "a", "c")
	runMember(ns, triad+"-c", group.StateWitness, "witness", "a", "b")
}

// editReport changes a member's report as its agent would.
func editReport(ns, pod string, edit func(*group.MemberState)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &corev1.Pod{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
			return err
		}
		report, _ := group.ParseMemberState(p.Annotations)
		edit(&report)
		raw, _ := json.Marshal(report)
		p.Annotations[group.AnnotationMemberState] = string(raw)
		return k8sClient.Update(ctx, p)
	})).To(Succeed())
}

// setJoining sets the Joining flag of a member's report, as an agent does
// while a restarted member cannot vote yet.
func setJoining(ns, pod string, joining bool) {
	editReport(ns, pod, func(r *group.MemberState) { r.Joining = joining })
}

func holdLease(ns, name, holder string, epoch int) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := &coordinationv1.Lease{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-active"}, l); err != nil {
			return err
		}
		l.Spec.HolderIdentity = ptr.To(holder)
		l.Spec.LeaseDurationSeconds = ptr.To[int32](10)
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[group.AnnotationLeaseEpoch] = strconv.Itoa(epoch)
		return k8sClient.Update(ctx, l)
	})).To(Succeed())
}

func getTriadStatus(t *licensehav1.LicenseTriad) licensehav1.LicenseTriadStatus {
	got := &licensehav1.LicenseTriad{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
	return got.Status
}

func getPod(ns, name string) *corev1.Pod {
	p := &corev1.Pod{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		return nil
	}
	return p
}

func podUID(ns, name string) func() types.UID {
	return func() types.UID {
		if p := getPod(ns, name); p != nil {
			return p.UID
		}
		return ""
	}
}

// startTriad creates a triad with its licence Secret and waits for its pods.
func startTriad(ns, name string) *licensehav1.LicenseTriad {
	t := validTriad(ns, name)
	Expect(k8sClient.Create(ctx, licenseSecret(ns, name+"-licenses"))).To(Succeed())
	Expect(k8sClient.Create(ctx, t)).To(Succeed())
	for _, m := range []string{"a", "b", "c"} {
		Eventually(podUID(ns, name+"-"+m), timeout, interval).ShouldNot(BeEmpty())
	}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), t)).To(Succeed())
	return t
}

var _ = Describe("LicenseTriad children", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("creates exactly the objects of the contract, owned by the triad", func() {
		t := startTriad(ns, "plant")
		owned := HaveField("OwnerReferences", ConsistOf(And(HaveField("UID", t.UID), HaveField("Controller", ptr.To(true)))))

		for _, m := range t.Spec.Members {
			p := getPod(ns, "plant-"+m.Name)
			Expect(p).To(owned)
			Expect(p.Labels).To(HaveKeyWithValue(licensehav1.LabelGroup, "plant"))
			Expect(p.Labels).To(HaveKeyWithValue(licensehav1.LabelMember, m.Name))
			Expect(p.Labels).To(HaveKeyWithValue(licensehav1.LabelRole, licensehav1.RoleLabelStandby))
			Expect(p.Spec.Hostname).To(Equal(m.Name))
			Expect(p.Spec.Subdomain).To(Equal("plant-members"))
			Expect(p.Spec.ServiceAccountName).To(Equal("plant-agent"))
			Expect(p.Spec.InitContainers).To(ConsistOf(And(
				HaveField("Image", testImage),
				HaveField("Command", Equal([]string{"/usr/local/bin/agent", "install", "/licenseha/agent"})))))
			server := p.Spec.Containers[0]
			Expect(server.Command[:2]).To(Equal([]string{"/licenseha/agent", "run"}))
			Expect(server.Command).To(ContainElements("--member="+m.Name, "--", "/usr/local/bin/license-server", "--group="+ns+"/plant"))
			Expect(server.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
			Expect(server.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
			Expect(*server.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
			Expect(*p.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
		}

		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant"}, svc)).To(Succeed())
		Expect(svc).To(owned)
		Expect(svc.Spec.Selector).To(Equal(map[string]string{
			licensehav1.LabelGroup: "plant", licensehav1.LabelGroupKind: "triad", licensehav1.LabelRole: "active"}))
		Expect(svc.Spec.Ports).To(ConsistOf(HaveField("Port", BeEquivalentTo(5160))))

		headless := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-members"}, headless)).To(Succeed())
		Expect(headless.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(headless.Spec.PublishNotReadyAddresses).To(BeTrue())
		Expect(headless.Spec.Selector).NotTo(HaveKey(licensehav1.LabelRole))

		lease := &coordinationv1.Lease{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-active"}, lease)).To(Succeed())
		Expect(lease).To(owned)

		for _, obj := range []client.Object{&corev1.ConfigMap{}, &corev1.Secret{}} {
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-state"}, obj)).To(Succeed())
			Expect(obj).To(owned)
		}
		admin := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-admin"}, admin)).To(Succeed())
		Expect(admin.Data[group.AdminTokenKey]).To(HaveLen(64))

		cfg := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-config"}, cfg)).To(Succeed())
		var gc group.Config
		Expect(json.Unmarshal([]byte(cfg.Data[group.ConfigKey]), &gc)).To(Succeed())
		Expect(gc.PeerTimeoutMillis).To(BeEquivalentTo(2000))
		Expect(gc.Members).To(HaveLen(3))
		Expect(cfg.Data[group.TrustedKeysKey]).To(Equal(string(trustedKeys)))

		sa := &corev1.ServiceAccount{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-agent"}, sa)).To(Succeed())
		role := &rbacv1.Role{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-agent"}, role)).To(Succeed())
		for _, rule := range role.Rules {
			Expect(rule.ResourceNames).NotTo(BeEmpty(), "every agent permission is limited to the triad's own objects")
			Expect(rule.Verbs).NotTo(ContainElements("create", "delete", "*"))
		}
		rb := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-agent"}, rb)).To(Succeed())
		Expect(rb.Subjects).To(ConsistOf(HaveField("Name", "plant-agent")))

		By("every name the operator checks before it writes is one of these objects")
		for _, ch := range builder.Children(builder.FromTriad(t)) {
			obj := &metav1.PartialObjectMetadata{}
			obj.SetGroupVersionKind(ch.GVK)
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: ch.Name}, obj)).To(Succeed(), ch.Key())
			Expect(metav1.GetControllerOf(obj)).To(HaveField("UID", t.UID), ch.Key())
		}
	})

	It("creates member pods a namespace enforcing the restricted Pod Security Standard admits", func() {
		restricted := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "restricted-",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
		Expect(k8sClient.Create(ctx, restricted)).To(Succeed())
		startTriad(restricted.Name, "pss")
	})

	It("refuses a member whose pod belongs to something else", func() {
		other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash-b"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "busybox"}}}}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		t := createTriad(ns, "clash")
		eventuallyNotReady(t, licensehav1.ReasonMemberInOtherGroup, "clash-b")
		Expect(getTriadStatus(t).Phase).To(Equal(licensehav1.TriadFailed))
		Expect(getPod(ns, "clash-b").OwnerReferences).To(BeEmpty(), "the other pod is never taken over")
	})

	It("recreates a deleted member pod", func() {
		startTriad(ns, "recreate")
		old := podUID(ns, "recreate-b")()
		Expect(k8sClient.Delete(ctx, getPod(ns, "recreate-b"))).To(Succeed())
		Eventually(podUID(ns, "recreate-b"), timeout, interval).ShouldNot(SatisfyAny(BeEmpty(), Equal(old)))
	})

	It("replaces a member on request, once, without relicensing", func() {
		t := startTriad(ns, "swap")
		old := podUID(ns, "swap-b")()
		Expect(update(t, func(t *licensehav1.LicenseTriad) {
			t.Annotations = map[string]string{licensehav1.AnnotationReplaceMember: "b"}
		})).To(Succeed())
		Eventually(podUID(ns, "swap-b"), timeout, interval).ShouldNot(SatisfyAny(BeEmpty(), Equal(old)))
		Eventually(func() map[string]string {
			got := &licensehav1.LicenseTriad{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			return got.Annotations
		}, timeout, interval).ShouldNot(HaveKey(licensehav1.AnnotationReplaceMember))
		replaced := podUID(ns, "swap-b")()
		Consistently(podUID(ns, "swap-b"), "1s", interval).Should(Equal(replaced), "the request runs once")
		Expect(getPod(ns, "swap-b").Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "swap-licenses")))
	})

	It("reports an active triad from its members, and removes a stale active label", func() {
		t := startTriad(ns, "run")
		holdLease(ns, "run", "run-a", 1)
		runSteadyMembers(ns, "run")

		Eventually(func(g Gomega) {
			got := &licensehav1.LicenseTriad{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			g.Expect(got.Status.Phase).To(Equal(licensehav1.TriadActive))
			g.Expect(got.Status.ActiveMember).To(Equal("a"))
			g.Expect(got.Status.Quorum).To(Equal("3/3"))
			g.Expect(got.Status.Epoch).To(BeEquivalentTo(1))
			g.Expect(got.Status.Members).To(ContainElement(And(HaveField("Name", "c"), HaveField("State", licensehav1.MemberWitness))))
			for _, typ := range []string{licensehav1.ConditionReady, licensehav1.ConditionQuorumSatisfied, licensehav1.ConditionSynchronized} {
				g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, typ)).To(BeTrue(), typ)
			}
			g.Expect(meta.IsStatusConditionFalse(got.Status.Conditions, licensehav1.ConditionDegraded)).To(BeTrue())
		}, timeout, interval).Should(Succeed())

		By("a second pod claiming the active label without holding the Lease loses it")
		runMember(ns, "run-b", group.StateStandby, "active", "a", "c")
		Eventually(func() string { return getPod(ns, "run-b").Labels[licensehav1.LabelRole] }, timeout, interval).
			Should(Equal(licensehav1.RoleLabelStandby))
		Expect(getPod(ns, "run-a").Labels[licensehav1.LabelRole]).To(Equal(licensehav1.RoleLabelActive))

		By("the secondary takes over: a failover is counted and reported")
		runMember(ns, "run-a", group.StateFenced, "standby")
		runMember(ns, "run-c", group.StateWitness, "witness", "b")
		holdLease(ns, "run", "run-b", 2)
		runMember(ns, "run-b", group.StateActive, "active", "c")
		Eventually(func(g Gomega) {
			got := &licensehav1.LicenseTriad{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			g.Expect(got.Status.ActiveMember).To(Equal("b"))
			g.Expect(got.Status.Phase).To(Equal(licensehav1.TriadDegraded))
			g.Expect(got.Status.Failovers).To(BeEquivalentTo(1))
			g.Expect(got.Status.LastFailoverTime).NotTo(BeNil())
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, licensehav1.ConditionDegraded)).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("notifies a webhook with its bearer token when a member takes over", func() {
		received := make(chan string, 10)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var e notify.Event
			_ = json.NewDecoder(r.Body).Decode(&e)
			received <- r.Header.Get("Authorization") + " " + e.Reason + " " + e.Member
		}))
		defer hook.Close()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"},
			Data: map[string][]byte{"token": []byte("t0ken")}})).To(Succeed())
		t := validTriad(ns, "notify")
		t.Spec.Notifications = &licensehav1.NotificationsSpec{Webhook: &licensehav1.WebhookNotification{
			URL: hook.URL, SecretRef: &licensehav1.LocalObjectReference{Name: "hook"}}}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "notify-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		for _, m := range []string{"a", "b", "c"} {
			Eventually(podUID(ns, "notify-"+m), timeout, interval).ShouldNot(BeEmpty())
		}
		holdLease(ns, "notify", "notify-a", 1)
		runSteadyMembers(ns, "notify")
		Eventually(func() string { return getTriadStatus(t).ActiveMember }, timeout, interval).Should(Equal("a"))

		runMember(ns, "notify-a", group.StateFenced, "standby")
		holdLease(ns, "notify", "notify-b", 2)
		runMember(ns, "notify-b", group.StateActive, "active", "c")
		Eventually(received, timeout).Should(Receive(Equal("Bearer t0ken FailedOver b")))
	})

	It("does not count a member that is still joining in the quorum", func() {
		t := startTriad(ns, "join")
		holdLease(ns, "join", "join-a", 1)
		runSteadyMembers(ns, "join")
		setJoining(ns, "join-c", true)
		quorum := func(want string, phase licensehav1.TriadPhase) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				got := getTriadStatus(t)
				g.Expect(got.Quorum).To(Equal(want))
				g.Expect(got.Phase).To(Equal(phase))
			}, timeout, interval).Should(Succeed())
		}
		quorum("2/3", licensehav1.TriadDegraded)
		setJoining(ns, "join-c", false)
		quorum("3/3", licensehav1.TriadActive)
	})

	It("reports NoQuorum when fewer than two members are in contact", func() {
		t := startTriad(ns, "alone")
		holdLease(ns, "alone", "alone-a", 1)
		runMember(ns, "alone-a", group.StateFenced, "standby")
		runMember(ns, "alone-b", group.StateStandby, "standby")
		Eventually(func(g Gomega) {
			got := &licensehav1.LicenseTriad{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
			g.Expect(got.Status.Phase).To(Equal(licensehav1.TriadNoQuorum))
			g.Expect(got.Status.ActiveMember).To(BeEmpty())
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, licensehav1.ConditionQuorumSatisfied)).
				To(haveReason(metav1.ConditionFalse, licensehav1.ReasonNoQuorum))
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, licensehav1.ConditionDegraded)).
				To(haveReason(metav1.ConditionTrue, licensehav1.ReasonNoActiveMember))
		}, timeout, interval).Should(Succeed())
	})

	It("reports nobody serving as degraded when a role edit left no member active", func() {
		t := startTriad(ns, "idle")
		holdLease(ns, "idle", "idle-a", 1)
		runSteadyMembers(ns, "idle")
		Eventually(func() licensehav1.TriadPhase { return getTriadStatus(t).Phase }, timeout, interval).Should(Equal(licensehav1.TriadActive))

		By("every member up, in contact and in sync, but none active")
		runMember(ns, "idle-a", group.StateStandby, "standby", "b", "c")
		Eventually(func(g Gomega) {
			got := getTriadStatus(t)
			g.Expect(got.ActiveMember).To(BeEmpty())
			g.Expect(got.Quorum).To(Equal("3/3"))
			g.Expect(got.Phase).To(Equal(licensehav1.TriadDegraded))
			g.Expect(meta.FindStatusCondition(got.Conditions, licensehav1.ConditionReady)).
				To(haveReason(metav1.ConditionFalse, licensehav1.ReasonNotServing))
			g.Expect(meta.FindStatusCondition(got.Conditions, licensehav1.ConditionDegraded)).
				To(haveReason(metav1.ConditionTrue, licensehav1.ReasonNoActiveMember))
		}, timeout, interval).Should(Succeed())
	})

	It("rolls a template change one member at a time: witness, standby, then the active", func() {
		t := startTriad(ns, "roll")
		holdLease(ns, "roll", "roll-a", 1)
		runAll := func() { runSteadyMembers(ns, "roll") }
		runAll()
		uids := map[string]types.UID{}
		for _, m := range []string{"a", "b", "c"} {
			uids[m] = podUID(ns, "roll-"+m)()
		}
		Expect(update(t, func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
		})).To(Succeed())

		replaced := func(m string) func() bool {
			return func() bool { u := podUID(ns, "roll-"+m)(); return u != "" && u != uids[m] }
		}
		for _, next := range []string{"c", "b", "a"} {
			Eventually(replaced(next), timeout, interval).Should(BeTrue(), "member %s should be rolled next", next)
			for _, other := range []string{"a", "b", "c"} {
				if other != next && uids[other] != "" {
					Expect(replaced(other)()).To(BeFalse(), "only one member rolls at a time (%s rolled with %s)", other, next)
				}
			}
			uids[next] = ""
			// The new pod comes up; until it is ready nothing else rolls.
			if next != "a" {
				Consistently(replaced("a"), "1s", interval).Should(BeFalse())
			}
			runAll()
		}
	})
})
