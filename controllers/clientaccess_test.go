package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/testpki"
)

func TestClientAccessCondition(t *testing.T) {
	ca := testpki.NewCA(t)
	crt, key := ca.Issue(t, "plant")
	_, otherKey := ca.Issue(t, "plant")
	secret := func(data map[string]string) *corev1.Secret {
		s := &corev1.Secret{Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	goodTLS := secret(map[string]string{"tls.crt": string(crt), "tls.key": string(key)})
	tokens := &licensehav1.TokenSecretReference{Name: "plant-tokens"}
	ownTLS := &licensehav1.ClientTLSSpec{SecretRef: &licensehav1.LocalObjectReference{Name: "plant-tls"}}
	cmTLS := &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{IssuerRef: licensehav1.CertManagerIssuerReference{Name: "ca"}}}

	for _, tc := range []struct {
		name    string
		access  licensehav1.ClientAccessSpec
		command []string
		in      clientAccessInput

		status   metav1.ConditionStatus
		reason   string
		contains []string
	}{
		{name: "token Secret missing", access: licensehav1.ClientAccessSpec{TokenSecretRef: tokens},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonSecretNotFound,
			contains: []string{`Secret "plant-tokens"`, "spec.clientAccess.tokenSecretRef", `key "tokens"`}},
		{name: "token key missing", access: licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "plant-tokens", Key: "printers"}},
			in:     clientAccessInput{tokenSecret: secret(map[string]string{"tokens": "x"})},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonSecretKeyMissing, contains: []string{`no key "printers"`}},
		{name: "no token in the key", access: licensehav1.ClientAccessSpec{TokenSecretRef: tokens},
			in:     clientAccessInput{tokenSecret: secret(map[string]string{"tokens": "# nobody yet\n"})},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonNoClientTokens, contains: []string{"no client token"}},
		{name: "tokens present", access: licensehav1.ClientAccessSpec{TokenSecretRef: tokens},
			in:     clientAccessInput{tokenSecret: secret(map[string]string{"tokens": "a\nb\n"})},
			status: metav1.ConditionTrue, reason: licensehav1.ReasonCredentialsPresent, contains: []string{"Client tokens present"}},
		{name: "TLS Secret missing", access: licensehav1.ClientAccessSpec{TLS: ownTLS},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonSecretNotFound,
			contains: []string{`Secret "plant-tls"`, "spec.clientAccess.tls.secretRef", "kubernetes.io/tls"}},
		{name: "TLS key missing", access: licensehav1.ClientAccessSpec{TLS: ownTLS},
			in:     clientAccessInput{tlsSecret: secret(map[string]string{"tls.crt": string(crt)})},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonSecretKeyMissing, contains: []string{`no key "tls.key"`}},
		{name: "TLS key pair mismatched", access: licensehav1.ClientAccessSpec{TLS: ownTLS},
			in:     clientAccessInput{tlsSecret: secret(map[string]string{"tls.crt": string(crt), "tls.key": string(otherKey)})},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonCertificateInvalid, contains: []string{"no valid key pair"}},
		{name: "tokens fine, TLS missing: TLS named", access: licensehav1.ClientAccessSpec{TokenSecretRef: tokens, TLS: ownTLS},
			in:     clientAccessInput{tokenSecret: secret(map[string]string{"tokens": "a"})},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonSecretNotFound, contains: []string{`Secret "plant-tls"`}},
		{name: "both present", access: licensehav1.ClientAccessSpec{TokenSecretRef: tokens, TLS: ownTLS},
			in:     clientAccessInput{tokenSecret: secret(map[string]string{"tokens": "a"}), tlsSecret: goodTLS},
			status: metav1.ConditionTrue, reason: licensehav1.ReasonCredentialsPresent, contains: []string{"Client tokens and TLS certificate present"}},
		{name: "cert-manager not installed", access: licensehav1.ClientAccessSpec{TLS: cmTLS},
			in:     clientAccessInput{certManagerMissing: true},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonCertManagerNotInstalled,
			contains: []string{"certificates.cert-manager.io", "spec.clientAccess.tls.certManager"}},
		{name: "certificate not issued yet", access: licensehav1.ClientAccessSpec{TLS: cmTLS},
			in:     clientAccessInput{certificateStatus: "DoesNotExist: Issuing certificate as Secret does not exist"},
			status: metav1.ConditionFalse, reason: licensehav1.ReasonCertificateNotReady,
			contains: []string{`Certificate "plant-client-tls"`, `Secret "plant-client-tls"`, "Issuing certificate"}},
		{name: "certificate issued", access: licensehav1.ClientAccessSpec{TLS: cmTLS},
			in:     clientAccessInput{tlsSecret: goodTLS},
			status: metav1.ConditionTrue, reason: licensehav1.ReasonCredentialsPresent, contains: []string{"TLS certificate present"}},
		{name: "vendor server: told to use the files", access: licensehav1.ClientAccessSpec{TLS: ownTLS}, command: []string{"/opt/vendor/server"},
			in:     clientAccessInput{tlsSecret: goodTLS},
			status: metav1.ConditionTrue, reason: licensehav1.ReasonCredentialsPresent,
			contains: []string{"spec.server.command", "/etc/licenseha/client-tls/tls.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			access := tc.access
			g := builder.Group{Name: "plant", Namespace: "printing", ClientAccess: &access}
			g.Server.Command = tc.command
			c := clientAccessCondition(7, g, tc.in)
			if c.Type != licensehav1.ConditionClientAccessReady || c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != 7 {
				t.Fatalf("condition = %s %s %s (gen %d): %s; want %s %s", c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message, tc.status, tc.reason)
			}
			for _, want := range tc.contains {
				if !strings.Contains(c.Message, want) {
					t.Errorf("message %q lacks %q", c.Message, want)
				}
			}
			blocked := clientAccessBlocker(&c)
			if (blocked != nil) != (tc.status != metav1.ConditionTrue) {
				t.Fatalf("blocker = %+v for a %s condition", blocked, tc.status)
			}
			if blocked != nil && (blocked.reason != tc.reason || blocked.failed) {
				t.Fatalf("blocker = %+v, want reason %s, not failed", blocked, tc.reason)
			}
		})
	}
	if clientAccessBlocker(nil) != nil {
		t.Fatal("a group without clientAccess is blocked")
	}
}

func TestCertificateStatus(t *testing.T) {
	cert := &unstructured.Unstructured{Object: map[string]any{}}
	if certificateStatus(cert) != "" {
		t.Fatal("status of a Certificate without conditions")
	}
	_ = unstructured.SetNestedSlice(cert.Object, []any{
		map[string]any{"type": "Issuing", "status": "True", "reason": "DoesNotExist"},
		map[string]any{"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"},
	}, "status", "conditions")
	if got := certificateStatus(cert); got != "DoesNotExist: Issuing certificate as Secret does not exist" {
		t.Fatalf("status = %q", got)
	}
	_ = unstructured.SetNestedSlice(cert.Object, []any{map[string]any{"type": "Ready", "status": "True"}}, "status", "conditions")
	if certificateStatus(cert) != "" {
		t.Fatal("a ready Certificate reports a problem")
	}
}
