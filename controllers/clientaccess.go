package controllers

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;create;update;patch;delete

// certManagerRecheck is how often a group that asks for cert-manager on a
// cluster without it looks again: CRDs are not watched.
const certManagerRecheck = time.Minute

// certificateCRD names cert-manager's Certificate CRD in messages.
const certificateCRD = "certificates.cert-manager.io"

// clientAccessSecretRefs lists the Secrets spec.clientAccess makes a group
// read, so that their appearance or change brings the group back.
func clientAccessSecretRefs(groupName string, ca *licensehav1.ClientAccessSpec) []string {
	g := builder.Group{Name: groupName, ClientAccess: ca}
	var names []string
	if name, _ := builder.ClientTokenSecret(g); name != "" {
		names = append(names, name)
	}
	if name := builder.ClientTLSSecretName(g); name != "" {
		names = append(names, name)
	}
	return names
}

// clientAccessInput is what ClientAccessReady is derived from.
type clientAccessInput struct {
	// tokenSecret and tlsSecret are the referenced Secrets; nil when absent.
	tokenSecret, tlsSecret *corev1.Secret
	// certManagerMissing: the cluster has no Certificate CRD.
	certManagerMissing bool
	// certificateStatus is the Ready condition of the group's Certificate,
	// "reason: message", when it is not True.
	certificateStatus string
}

// clientAccessCondition derives ClientAccessReady. The first problem decides
// the reason; the message names the field, the Secret and the key, so a
// person knows what to create. It is a pure function.
func clientAccessCondition(generation int64, g builder.Group, in clientAccessInput) metav1.Condition {
	cond := metav1.Condition{Type: licensehav1.ConditionClientAccessReady, ObservedGeneration: generation,
		Status: metav1.ConditionFalse}
	fail := func(reason, format string, args ...any) metav1.Condition {
		cond.Reason, cond.Message = reason, fmt.Sprintf(format, args...)
		return cond
	}
	if name, key := builder.ClientTokenSecret(g); name != "" {
		const field = "spec.clientAccess.tokenSecretRef"
		s := in.tokenSecret
		switch {
		case s == nil:
			return fail(licensehav1.ReasonSecretNotFound, "Secret %q named by %s does not exist; create it with the client tokens under key %q, one per line", name, field, key)
		case s.Data[key] == nil:
			return fail(licensehav1.ReasonSecretKeyMissing, "Secret %q named by %s has no key %q; put the client tokens there, one per line", name, field, key)
		}
		if _, err := server.ParseClientTokens(s.Data[key]); err != nil {
			return fail(licensehav1.ReasonNoClientTokens, "Secret %q key %q named by %s: %v", name, key, field, err)
		}
	}
	if name := builder.ClientTLSSecretName(g); name != "" {
		field := "spec.clientAccess.tls.secretRef"
		if builder.UsesCertManager(g) {
			field = "spec.clientAccess.tls.certManager"
			switch {
			case in.certManagerMissing:
				return fail(licensehav1.ReasonCertManagerNotInstalled, "%s is set but the cluster has no CustomResourceDefinition %s; install cert-manager or use spec.clientAccess.tls.secretRef", field, certificateCRD)
			case in.tlsSecret == nil:
				msg := fmt.Sprintf("cert-manager has not issued Certificate %q into Secret %q yet", group.ClientTLSName(g.Name), name)
				if in.certificateStatus != "" {
					msg += " (" + in.certificateStatus + ")"
				}
				return fail(licensehav1.ReasonCertificateNotReady, "%s", msg)
			}
		}
		s := in.tlsSecret
		if s == nil {
			return fail(licensehav1.ReasonSecretNotFound, "Secret %q named by %s does not exist; create it with the certificate (type kubernetes.io/tls, keys %s and %s)", name, field, group.TLSCertKey, group.TLSKeyKey)
		}
		for _, key := range []string{group.TLSCertKey, group.TLSKeyKey} {
			if len(s.Data[key]) == 0 {
				return fail(licensehav1.ReasonSecretKeyMissing, "Secret %q named by %s has no key %q", name, field, key)
			}
		}
		if _, err := tls.X509KeyPair(s.Data[group.TLSCertKey], s.Data[group.TLSKeyKey]); err != nil {
			return fail(licensehav1.ReasonCertificateInvalid, "Secret %q named by %s: %s and %s are no valid key pair: %v", name, field, group.TLSCertKey, group.TLSKeyKey, err)
		}
	}
	cond.Status, cond.Reason = metav1.ConditionTrue, licensehav1.ReasonCredentialsPresent
	switch name, _ := builder.ClientTokenSecret(g); {
	case name != "" && builder.ClientTLSSecretName(g) != "":
		cond.Message = "Client tokens and TLS certificate present"
	case name != "":
		cond.Message = "Client tokens present"
	default:
		cond.Message = "TLS certificate present"
	}
	if len(g.Server.Command) > 0 {
		cond.Message += fmt.Sprintf("; spec.server.command is set, so the server command must use them itself (tokens: %s, certificate: %s, key: %s)",
			group.ClientTokensFile, group.ClientTLSCertFile, group.ClientTLSKeyFile)
	}
	return cond
}

// clientAccessBlocker is the blocker a ClientAccessReady condition makes:
// member pods that mount missing Secrets or keys would not start, so none
// is created or rolled until the credentials are there.
func clientAccessBlocker(c *metav1.Condition) *blocker {
	if c == nil || c.Status == metav1.ConditionTrue {
		return nil
	}
	return &blocker{reason: c.Reason, message: c.Type + ": " + c.Message}
}

// certificateStatus is "reason: message" of a Certificate's Ready condition
// when it is not True; empty otherwise.
func certificateStatus(cert *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(cert.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Ready" || m["status"] == "True" {
			continue
		}
		return fmt.Sprintf("%v: %v", m["reason"], m["message"])
	}
	return ""
}

// reconcileClientAccess creates the cert-manager Certificate of
// spec.clientAccess.tls.certManager (and removes one an earlier spec asked
// for), then records in ClientAccessReady whether the credentials the
// members mount exist. The Certificate is created even while the group is
// blocked: the certificate it issues is what unblocks it.
func (r *groupReconciler) reconcileClientAccess(ctx context.Context, g builder.Group, generation int64, conds *[]metav1.Condition) (ctrl.Result, error) {
	if err := r.removeUnusedCertificate(ctx, g); err != nil {
		return ctrl.Result{}, err
	}
	if g.ClientAccess == nil {
		meta.RemoveStatusCondition(conds, licensehav1.ConditionClientAccessReady)
		return ctrl.Result{}, nil
	}
	var in clientAccessInput
	var res ctrl.Result
	if cert := builder.Certificate(g, r.Options); cert != nil {
		err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(cert), client.FieldOwner(FieldManager), client.ForceOwnership)
		switch {
		case meta.IsNoMatchError(err):
			in.certManagerMissing = true
			res.RequeueAfter = certManagerRecheck
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("applying Certificate %s: %w", cert.GetName(), err)
		default:
			in.certificateStatus = certificateStatus(cert)
		}
	}
	var refs []reference
	if name, _ := builder.ClientTokenSecret(g); name != "" {
		refs = append(refs, reference{field: "spec.clientAccess.tokenSecretRef", name: name, isSecret: true})
	}
	if name := builder.ClientTLSSecretName(g); name != "" && !in.certManagerMissing {
		refs = append(refs, reference{field: "spec.clientAccess.tls", name: name, isSecret: true})
	}
	found, err := fetchReferences(ctx, r.APIReader, g.Namespace, refs)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, ref := range found {
		if ref.field == "spec.clientAccess.tokenSecretRef" {
			in.tokenSecret = ref.secret
		} else {
			in.tlsSecret = ref.secret
		}
	}
	meta.SetStatusCondition(conds, clientAccessCondition(generation, g, in))
	return res, nil
}

// removeUnusedCertificate deletes the Certificate the operator created for
// tls.certManager, and the Secret cert-manager issued from it, once the
// group no longer asks for it. It looks only when that Secret is in the
// cache (cert-manager annotates it with its Certificate's name), so a group
// that never used cert-manager costs no API request and needs no
// cert-manager CRD.
func (r *groupReconciler) removeUnusedCertificate(ctx context.Context, g builder.Group) error {
	if builder.UsesCertManager(g) {
		return nil
	}
	name := group.ClientTLSName(g.Name)
	if builder.ClientTLSSecretName(g) == name {
		return nil // the user's own Secret of that name
	}
	issued := &metav1.PartialObjectMetadata{}
	issued.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: name}, issued); err != nil {
		return client.IgnoreNotFound(err)
	}
	if issued.Annotations[builder.CertificateNameAnnotation] != name || issued.DeletionTimestamp != nil {
		return nil
	}
	cert := &unstructured.Unstructured{}
	cert.SetGroupVersionKind(builder.CertificateGVK)
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: name}, cert)
	switch {
	case err == nil && !metav1.IsControlledBy(cert, &metav1.ObjectMeta{UID: g.Owner.UID}):
		return nil // someone else's Certificate: theirs, and so is its Secret
	case err == nil:
		logf.FromContext(ctx).Info("Deleting the Certificate the group no longer asks for", "certificate", name)
		if err := r.Delete(ctx, cert); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting Certificate %s: %w", name, err)
		}
	case !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
		return fmt.Errorf("reading Certificate %s: %w", name, err)
	}
	logf.FromContext(ctx).Info("Deleting the Secret issued for a Certificate the group no longer asks for", "secret", name)
	uid := issued.UID
	if err := r.Delete(ctx, issued, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting Secret %s: %w", name, err)
	}
	return nil
}

// reconcileNetworkPolicy applies the group's NetworkPolicy, or deletes the
// one it owns when spec.networkPolicy is disabled or absent.
func removeNetworkPolicy(ctx context.Context, c client.Client, g builder.Group) error {
	existing := &networkingv1.NetworkPolicy{}
	err := c.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: group.NetworkPolicyName(g.Name)}, existing)
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(existing, &metav1.ObjectMeta{UID: g.Owner.UID}) || existing.DeletionTimestamp != nil {
		return nil
	}
	logf.FromContext(ctx).Info("Deleting the NetworkPolicy the group no longer asks for", "networkPolicy", existing.Name)
	return client.IgnoreNotFound(c.Delete(ctx, existing))
}
