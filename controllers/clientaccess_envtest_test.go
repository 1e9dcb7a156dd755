package controllers_test

import (
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testpki"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// ownedBy matches an object whose controller is the group with uid.
func ownedBy(uid any) OmegaMatcher {
	return HaveField("ObjectMeta.OwnerReferences", ConsistOf(And(HaveField("UID", uid), HaveField("Controller", ptr.To(true)))))
}

func tokenSecret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func certificateObject(ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(builder.CertificateGVK)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func exists(obj client.Object) func() bool {
	return func() bool { return k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj) == nil }
}

// touch changes an annotation, so the operator reconciles the group now.
func touch(obj client.Object, value string) {
	GinkgoHelper()
	Expect(update(obj, func(o client.Object) {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a["test.licenseha.io/touch"] = value
		o.SetAnnotations(a)
	})).To(Succeed())
}

func podVolumes(p *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			out[v.Name] = v.Secret.SecretName
		}
	}
	return out
}

var _ = Describe("Client access validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	DescribeTable("rejects invalid client access and network policies with a message naming the field",
		func(mutate func(t *licensehav1.LicenseTriad), fragments ...string) {
			t := validTriad(ns, "bad")
			mutate(t)
			expectRejected(t, fragments...)
		},
		Entry("empty clientAccess", func(t *licensehav1.LicenseTriad) { t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{} },
			"spec.clientAccess needs tokenSecretRef, tls or both"),
		Entry("TLS from a Secret and cert-manager", func(t *licensehav1.LicenseTriad) {
			t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{
				SecretRef:   &licensehav1.LocalObjectReference{Name: "tls"},
				CertManager: &licensehav1.CertManagerSpec{IssuerRef: licensehav1.CertManagerIssuerReference{Name: "ca"}},
			}}
		}, "spec.clientAccess.tls needs exactly one of secretRef and certManager"),
		Entry("TLS from nowhere", func(t *licensehav1.LicenseTriad) {
			t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{}}
		}, "spec.clientAccess.tls needs exactly one of secretRef and certManager"),
		Entry("token Secret without a name", func(t *licensehav1.LicenseTriad) {
			t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{}}
		}, "spec.clientAccess.tokenSecretRef.name"),
		Entry("token key that no Secret can have", func(t *licensehav1.LicenseTriad) {
			t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "t", Key: "a/b"}}
		}, "spec.clientAccess.tokenSecretRef.key", "should match"),
		Entry("issuer without a name", func(t *licensehav1.LicenseTriad) {
			t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{}}}
		}, "spec.clientAccess.tls.certManager.issuerRef.name"),
		Entry("client CIDR that is no CIDR", func(t *licensehav1.LicenseTriad) {
			t.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true, ClientCIDRs: []string{"printers"}}
		}, "spec.networkPolicy.clientCIDRs must be CIDRs"),
	)

	It("defaults the token key and the issuer's kind and group", func() {
		t := validTriad(ns, "defaults")
		t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{
			TokenSecretRef: &licensehav1.TokenSecretReference{Name: "t"},
			TLS: &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{
				IssuerRef: licensehav1.CertManagerIssuerReference{Name: "ca"}}},
		}
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		got := &licensehav1.LicenseTriad{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
		Expect(got.Spec.ClientAccess.TokenSecretRef.Key).To(Equal("tokens"))
		Expect(got.Spec.ClientAccess.TLS.CertManager.IssuerRef.Kind).To(Equal("Issuer"))
		Expect(got.Spec.ClientAccess.TLS.CertManager.IssuerRef.Group).To(Equal("cert-manager.io"))
	})
})

var _ = Describe("Client tokens", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("reports the missing Secret and key, starts no member until the tokens exist, then mounts them", func() {
		t := validTriad(ns, "plant")
		t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "plant-tokens", Key: "printers"}}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		key := client.ObjectKeyFromObject(t)

		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound),
				HaveField("Message", And(ContainSubstring(`Secret "plant-tokens"`), ContainSubstring("spec.clientAccess.tokenSecretRef")))))
		Eventually(triadCondition(key, licensehav1.ConditionReady), timeout, interval).
			Should(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound))
		Consistently(podUID(ns, "plant-a"), "1s", interval).Should(BeEmpty(), "a member pod would not start without its tokens")

		Expect(k8sClient.Create(ctx, tokenSecret(ns, "plant-tokens", map[string]string{"tokens": "x"}))).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretKeyMissing),
				HaveField("Message", ContainSubstring(`no key "printers"`))))

		s := tokenSecret(ns, "plant-tokens", nil)
		Expect(update(s, func(s *corev1.Secret) { s.Data["printers"] = []byte("# none yet\n") })).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(haveReason(metav1.ConditionFalse, licensehav1.ReasonNoClientTokens))

		Expect(update(s, func(s *corev1.Secret) { s.Data["printers"] = []byte("station-token\n") })).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonCredentialsPresent))
		Eventually(podUID(ns, "plant-a"), timeout, interval).ShouldNot(BeEmpty())
		pod := getPod(ns, "plant-a")
		Expect(podVolumes(pod)).To(HaveKeyWithValue("client-tokens", "plant-tokens"))
		Expect(pod.Spec.Containers[0].Command).To(ContainElement("--client-token-file=" + group.ClientTokensFile))

		// Without clientAccess the condition goes.
		Expect(update(t, func(t *licensehav1.LicenseTriad) { t.Spec.ClientAccess = nil })).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).Should(BeNil())
	})

	It("reports a pair's missing certificate Secret, then starts its servers with it", func() {
		Expect(k8sClient.Create(ctx, pairSecret(ns, "plant-main", "plant", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "plant-backup", "plant", "LIC-B", licensing.EditionEnterprise))).To(Succeed())
		p := validPair(ns, "plant")
		p.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{SecretRef: &licensehav1.LocalObjectReference{Name: "plant-tls"}}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(pairCondition(client.ObjectKeyFromObject(p), licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonSecretNotFound),
				HaveField("Message", ContainSubstring(`Secret "plant-tls" named by spec.clientAccess.tls.secretRef`))))
		Consistently(podUID(ns, "plant-main"), "1s", interval).Should(BeEmpty())

		ca := testpki.NewCA(GinkgoT())
		crt, key := ca.Issue(GinkgoT(), "plant")
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": crt, "tls.key": key}})).To(Succeed())
		Eventually(pairCondition(client.ObjectKeyFromObject(p), licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonCredentialsPresent))
		Eventually(podUID(ns, "plant-backup"), timeout, interval).ShouldNot(BeEmpty())
		Expect(podVolumes(getPod(ns, "plant-backup"))).To(HaveKeyWithValue("client-tls", "plant-tls"))
	})
})

var _ = Describe("NetworkPolicy", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("is created for a triad that enables it, owned by it, and deleted when disabled", func() {
		t := validTriad(ns, "plant")
		t.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true,
			ClientNamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "printing"}}}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant"}}
		Eventually(exists(np), timeout, interval).Should(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), t)).To(Succeed())
		Expect(np).To(ownedBy(t.UID))
		Expect(np.Spec.PodSelector.MatchLabels).To(HaveKeyWithValue(licensehav1.LabelGroup, "plant"))
		Expect(np.Spec.Ingress).To(HaveLen(2), "clients, and the members to each other (no operator namespace under envtest)")
		Expect(np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels).To(HaveKeyWithValue("team", "printing"))
		Expect(np.Spec.Ingress[0].Ports[0].Port.IntValue()).To(Equal(5160))

		Expect(update(t, func(t *licensehav1.LicenseTriad) { t.Spec.NetworkPolicy.Enabled = false })).To(Succeed())
		Eventually(exists(np), timeout, interval).Should(BeFalse())
	})

	It("is created for a backup pair, owned by it", func() {
		Expect(k8sClient.Create(ctx, pairSecret(ns, "plant-main", "plant", "LIC-M", licensing.EditionEnterprise))).To(Succeed())
		Expect(k8sClient.Create(ctx, pairSecret(ns, "plant-backup", "plant", "LIC-B", licensing.EditionEnterprise))).To(Succeed())
		p := validPair(ns, "plant")
		p.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true, ClientCIDRs: []string{"10.20.0.0/16"}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant"}}
		Eventually(exists(np), timeout, interval).Should(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		Expect(np).To(ownedBy(p.UID))
		Expect(np.Spec.Ingress[0].From).To(ConsistOf(HaveField("IPBlock.CIDR", "10.20.0.0/16")))

		// Deleted by hand: the operator puts it back.
		Expect(k8sClient.Delete(ctx, np)).To(Succeed())
		Eventually(exists(np), timeout, interval).Should(BeTrue())
	})
})

var _ = Describe("cert-manager certificates", Ordered, func() {
	var ns string
	var t *licensehav1.LicenseTriad
	var key client.ObjectKey
	BeforeAll(func() {
		ns = newNamespace()
		t = validTriad(ns, "plant")
		t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{
			IssuerRef: licensehav1.CertManagerIssuerReference{Name: "plant-ca"}, DNSNames: []string{"licenses.example.com"}}}}
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "plant-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		key = client.ObjectKeyFromObject(t)
	})

	It("names the missing CRD while cert-manager is not installed, and starts no member", func() {
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonCertManagerNotInstalled),
				HaveField("Message", ContainSubstring("certificates.cert-manager.io"))))
		Expect(triadCondition(key, licensehav1.ConditionReady)()).To(haveReason(metav1.ConditionFalse, licensehav1.ReasonCertManagerNotInstalled))
		Consistently(podUID(ns, "plant-a"), "1s", interval).Should(BeEmpty())
	})

	It("creates the Certificate, owned by the triad, once cert-manager is there", func() {
		_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "cert-manager.io_certificates.yaml")}})
		Expect(err).NotTo(HaveOccurred())
		touch(t, "crd-installed") // CRDs are not watched; the recheck would take a minute
		cert := certificateObject(ns, "plant-client-tls")
		Eventually(exists(cert), timeout, interval).Should(BeTrue())
		Expect(k8sClient.Get(ctx, key, t)).To(Succeed())
		Expect(cert.GetOwnerReferences()).To(ConsistOf(And(HaveField("UID", t.UID), HaveField("Controller", ptr.To(true)))))
		names, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		Expect(names).To(ContainElements("plant", "plant."+ns+".svc", "a.plant-members."+ns+".svc", "licenses.example.com"))
		issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
		Expect(issuer).To(Equal(map[string]string{"name": "plant-ca", "kind": "Issuer", "group": "cert-manager.io"}))
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionFalse, licensehav1.ReasonCertificateNotReady),
				HaveField("Message", ContainSubstring(`Secret "plant-client-tls"`))))
	})

	It("starts the members with the issued certificate", func() {
		// Play cert-manager: issue into the Secret the Certificate names.
		ca := testpki.NewCA(GinkgoT())
		crt, keyPEM := ca.Issue(GinkgoT(), "plant")
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant-client-tls",
				Annotations: map[string]string{builder.CertificateNameAnnotation: "plant-client-tls"}},
			Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": keyPEM, "ca.crt": ca.CertPEM},
		})).To(Succeed())
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(haveReason(metav1.ConditionTrue, licensehav1.ReasonCredentialsPresent))
		Eventually(podUID(ns, "plant-a"), timeout, interval).ShouldNot(BeEmpty())
		pod := getPod(ns, "plant-a")
		Expect(podVolumes(pod)).To(HaveKeyWithValue("client-tls", "plant-client-tls"))
		Expect(strings.Join(pod.Spec.Containers[0].Command, " ")).To(ContainSubstring("--tls-cert-file=" + group.ClientTLSCertFile))
	})

	It("deletes the Certificate and its Secret when the triad no longer asks for them", func() {
		Expect(k8sClient.Create(ctx, tokenSecret(ns, "plant-tokens", map[string]string{"tokens": "station-token"}))).To(Succeed())
		Expect(update(t, func(t *licensehav1.LicenseTriad) {
			t.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "plant-tokens"}}
		})).To(Succeed())
		Eventually(exists(certificateObject(ns, "plant-client-tls")), timeout, interval).Should(BeFalse())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-client-tls"}, &corev1.Secret{}))
		}, timeout, interval).Should(BeTrue())
		Eventually(triadCondition(key, licensehav1.ConditionClientAccessReady), timeout, interval).
			Should(And(haveReason(metav1.ConditionTrue, licensehav1.ReasonCredentialsPresent), HaveField("Message", Equal("Client tokens present"))))
	})
})
