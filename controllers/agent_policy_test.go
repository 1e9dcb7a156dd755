package controllers_test

import (
	"bytes"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applyAgentPodPolicy installs config/admission (the ValidatingAdmissionPolicy
// confining the agents and its binding), as make deploy and the chart do.
func applyAgentPodPolicy() {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join("..", "config", "admission", "agent_pod_policy.yaml"))
	Expect(err).NotTo(HaveOccurred())
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	n := 0
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("licenseha-test"), client.ForceOwnership)).To(Succeed())
		n++
	}
	Expect(n).To(Equal(2), "a policy and its binding")
}

// asAgent is a client with the identity of a group's agent as the API server
// sees it with a pod-bound token: its ServiceAccount, and the pod the token
// was issued to in the user's extra (empty pod: a token bound to no pod).
func asAgent(ns, group string, pod *corev1.Pod) client.Client {
	GinkgoHelper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + group + "-agent",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	if pod != nil {
		c.Impersonate.Extra = map[string][]string{
			"authentication.kubernetes.io/pod-name": {pod.Name},
			"authentication.kubernetes.io/pod-uid":  {string(pod.UID)},
		}
	}
	cl, err := client.New(c, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return cl
}

func mergePatch(patch string) client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(patch))
}

// imagePatch changes the image of the server container (a strategic merge
// patch merges containers by name).
var imagePatch = client.RawPatch(types.StrategicMergePatchType,
	[]byte(`{"spec":{"containers":[{"name":"server","image":"evil.example.com/server:1"}]}}`))

var _ = Describe("The agents' admission policy", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		applyAgentPodPolicy()
	})

	getPod := func(name string) *corev1.Pod {
		GinkgoHelper()
		p := &corev1.Pod{}
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p) }, timeout, interval).Should(Succeed())
		return p
	}
	refused := func(err error, msg string) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(msg))
	}

	It("lets an agent change only its own pod's role label and member-state annotation", func() {
		startTriad(ns, "guard")
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "guard-agent"}, &rbacv1.RoleBinding{})
		}, timeout, interval).Should(Succeed())
		a, b := getPod("guard-a"), getPod("guard-b")
		agentA := asAgent(ns, "guard", a)

		By("waiting until the API server enforces the policy (a dry-run image change is refused)")
		Eventually(func() error {
			return agentA.Patch(ctx, a.DeepCopy(), imagePatch, client.DryRunAll)
		}, timeout, interval).Should(MatchError(ContainSubstring("may not change a pod's spec")))

		By("allowing the agent's own report: role label and member-state annotation")
		report := `{"metadata":{"labels":{"licenseha.io/role":"witness"},"annotations":{"licenseha.io/member-state":"{\"state\":\"Standby\"}"}}}`
		Expect(agentA.Patch(ctx, a.DeepCopy(), mergePatch(report))).To(Succeed())
		got := getPod("guard-a")
		Expect(got.Labels).To(HaveKeyWithValue("licenseha.io/role", "witness"))
		Expect(got.Annotations).To(HaveKeyWithValue("licenseha.io/member-state", `{"state":"Standby"}`))

		By("refusing a relabelling into another group (and its client Service)")
		refused(agentA.Patch(ctx, a.DeepCopy(), mergePatch(`{"metadata":{"labels":{"licenseha.io/group":"other"}}}`)),
			"may change no label but licenseha.io/role")
		refused(agentA.Patch(ctx, a.DeepCopy(), mergePatch(`{"metadata":{"labels":{"licenseha.io/group":null}}}`)),
			"may change no label but licenseha.io/role")

		By("refusing another annotation, a made-up role, a new owner or finalizer")
		refused(agentA.Patch(ctx, a.DeepCopy(), mergePatch(`{"metadata":{"annotations":{"licenseha.io/template-hash":"0"}}}`)),
			"may change no annotation but licenseha.io/member-state")
		refused(agentA.Patch(ctx, a.DeepCopy(), mergePatch(`{"metadata":{"labels":{"licenseha.io/role":"boss"}}}`)),
			"licenseha.io/role must be active, standby, witness or unhealthy")
		refused(agentA.Patch(ctx, a.DeepCopy(), mergePatch(`{"metadata":{"finalizers":["example.com/keep"]}}`)),
			"may not change a pod's owners or finalizers")

		By("refusing a change of the image")
		refused(agentA.Patch(ctx, a.DeepCopy(), imagePatch), "may not change a pod's spec")

		By("refusing to patch a peer's pod, even only its role label")
		refused(agentA.Patch(ctx, b.DeepCopy(), mergePatch(`{"metadata":{"labels":{"licenseha.io/role":"unhealthy"}}}`)),
			"may only update the pod its token was issued to")
		refused(agentA.Patch(ctx, b.DeepCopy(), imagePatch), "may only update the pod its token was issued to")

		By("refusing a token that is bound to no pod")
		refused(asAgent(ns, "guard", nil).Patch(ctx, a.DeepCopy(), mergePatch(`{"metadata":{"labels":{"licenseha.io/role":"standby"}}}`)),
			"may only update the pod its token was issued to")

		By("leaving the pods as they were")
		Expect(getPod("guard-a").Spec.Containers[0].Image).To(Equal(a.Spec.Containers[0].Image))
		Expect(getPod("guard-a").Labels).To(HaveKeyWithValue("licenseha.io/group", "guard"))
		Expect(getPod("guard-b").Labels).To(Equal(b.Labels))
	})

	It("leaves other identities alone, even a ServiceAccount named like an agent", func() {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tool"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "busybox"}}}}
		Expect(k8sClient.Create(ctx, pod)).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tool"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"patch"}}}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tool"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tool"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "monitoring-agent"}}})).To(Succeed())
		other := asAgent(ns, "monitoring", pod)
		Eventually(func() error {
			return other.Patch(ctx, pod.DeepCopy(), mergePatch(`{"metadata":{"labels":{"team":"ops"}}}`))
		}, timeout, interval).Should(Succeed())
	})
})
