package builder

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/licenseha/licenseha/internal/group"
)

// CertificateGVK is cert-manager's Certificate. The operator creates it as
// an unstructured object, so it needs no cert-manager code and runs on
// clusters without cert-manager.
var CertificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// CertificateNameAnnotation is set by cert-manager on the Secrets it issues,
// naming their Certificate.
const CertificateNameAnnotation = "cert-manager.io/certificate-name"

// Volume names of the client API credentials.
const (
	volClientTokens = "client-tokens"
	volClientTLS    = "client-tls"
)

// ClientTokenSecret is the Secret and key holding the group's client tokens,
// or empty names when the group sets none.
func ClientTokenSecret(g Group) (name, key string) {
	if g.ClientAccess == nil || g.ClientAccess.TokenSecretRef == nil {
		return "", ""
	}
	ref := g.ClientAccess.TokenSecretRef
	key = ref.Key
	if key == "" {
		key = group.DefaultClientTokensKey
	}
	return ref.Name, key
}

// UsesCertManager says whether the group's client certificate is issued by
// cert-manager through a Certificate the operator creates.
func UsesCertManager(g Group) bool {
	return g.ClientAccess != nil && g.ClientAccess.TLS != nil && g.ClientAccess.TLS.CertManager != nil
}

// ClientTLSSecretName is the Secret holding the client API's certificate:
// the user's (tls.secretRef) or the one cert-manager issues; empty without
// TLS.
func ClientTLSSecretName(g Group) string {
	switch {
	case g.ClientAccess == nil || g.ClientAccess.TLS == nil:
		return ""
	case g.ClientAccess.TLS.SecretRef != nil:
		return g.ClientAccess.TLS.SecretRef.Name
	case g.ClientAccess.TLS.CertManager != nil:
		return group.ClientTLSName(g.Name)
	}
	return ""
}

// memberHostname is the hostname inside a member's pod.
func memberHostname(m Member) string {
	if m.Placement.Hostname != "" {
		return m.Placement.Hostname
	}
	return m.Name
}

// ClientDNSNames are the names clients reach the group's servers by: the
// client Services (<group>; for a pair also <pair>-main and <pair>-backup)
// and every member under the headless Service (<hostname>.<group>-members),
// each as <name>, <name>.<namespace>, <name>.<namespace>.svc and
// <name>.<namespace>.svc.<clusterDomain>. A client that lists the members
// verifies each member's own name, so it fails over between them over TLS.
func ClientDNSNames(g Group, clusterDomain string) []string {
	if clusterDomain == "" {
		clusterDomain = "cluster.local"
	}
	short := []string{group.ServiceName(g.Name)}
	if g.Kind == group.KindBackupPair {
		for _, m := range g.Members {
			short = append(short, group.PodName(g.Name, m.Name))
		}
	}
	for _, m := range g.Members {
		short = append(short, group.MemberDNSName(g.Name, memberHostname(m)))
	}
	var names []string
	for _, n := range short {
		ns := n + "." + g.Namespace
		names = append(names, n, ns, ns+".svc", ns+".svc."+clusterDomain)
	}
	return names
}

// Certificate is the cert-manager Certificate of tls.certManager: every name
// of ClientDNSNames and the user's extra names, issued into the Secret
// ClientTLSName by the named issuer. Nil when the group does not use
// cert-manager.
func Certificate(g Group, opts Options) *unstructured.Unstructured {
	if !UsesCertManager(g) {
		return nil
	}
	cm := g.ClientAccess.TLS.CertManager
	names := ClientDNSNames(g, opts.ClusterDomain)
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	extra := append([]string(nil), cm.DNSNames...)
	sort.Strings(extra)
	for _, n := range extra {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	kind, issuerGroup := cm.IssuerRef.Kind, cm.IssuerRef.Group
	if kind == "" {
		kind = "Issuer"
	}
	if issuerGroup == "" {
		issuerGroup = CertificateGVK.Group
	}
	meta := objectMeta(g, group.ClientTLSName(g.Name))
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CertificateGVK)
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	dnsNames := make([]any, len(names))
	for i, n := range names {
		dnsNames[i] = n
	}
	secretLabels := map[string]any{}
	for k, v := range Labels(g) {
		secretLabels[k] = v
	}
	u.Object["spec"] = map[string]any{
		"secretName": group.ClientTLSName(g.Name),
		// The Secret carries the group's labels, so it is found with the
		// group's other objects.
		"secretTemplate": map[string]any{"labels": secretLabels},
		"dnsNames":       dnsNames,
		"usages":         []any{"server auth", "digital signature", "key encipherment"},
		"issuerRef":      map[string]any{"name": cm.IssuerRef.Name, "kind": kind, "group": issuerGroup},
	}
	return u
}

// clientAccessVolumes are the volumes and mounts of the client API
// credentials. Only the needed keys are projected, under fixed names, so
// the server finds them whatever the Secret's other keys; the kubelet
// updates them in place when the Secret changes.
func clientAccessVolumes(g Group) ([]corev1.Volume, []corev1.VolumeMount) {
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	if name, key := ClientTokenSecret(g); name != "" {
		vols = append(vols, corev1.Volume{Name: volClientTokens, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name, DefaultMode: ptr.To[int32](0o440),
			Items: []corev1.KeyToPath{{Key: key, Path: "tokens"}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volClientTokens, MountPath: group.ClientTokensDir, ReadOnly: true})
	}
	if name := ClientTLSSecretName(g); name != "" {
		vols = append(vols, corev1.Volume{Name: volClientTLS, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name, DefaultMode: ptr.To[int32](0o440),
			Items: []corev1.KeyToPath{{Key: group.TLSCertKey, Path: group.TLSCertKey}, {Key: group.TLSKeyKey, Path: group.TLSKeyKey}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volClientTLS, MountPath: group.ClientTLSDir, ReadOnly: true})
	}
	return vols, mounts
}

// clientAccessFlags are the reference license server's flags for the
// mounted credentials.
func clientAccessFlags(g Group) []string {
	var flags []string
	if name, _ := ClientTokenSecret(g); name != "" {
		flags = append(flags, "--client-token-file="+group.ClientTokensFile)
	}
	if ClientTLSSecretName(g) != "" {
		flags = append(flags, "--tls-cert-file="+group.ClientTLSCertFile, "--tls-key-file="+group.ClientTLSKeyFile)
	}
	return flags
}
