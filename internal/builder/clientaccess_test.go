package builder

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// testTriad and testPair are the shared fixtures, named plant-a and
// plant-b, member a of the triad with its own hostname.
func testTriad() *licensehav1.LicenseTriad {
	t := testfixtures.Triad("printing", "plant-a")
	t.UID = "uid-1"
	t.Spec.Members[0].Placement.Hostname = "lic-a"
	return t
}

func testPair() *licensehav1.LicenseBackupPair {
	p := testfixtures.Pair("printing", "plant-b")
	p.UID = "uid-2"
	return p
}

func volumeNamed(p *corev1.Pod, name string) *corev1.Volume {
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == name {
			return &p.Spec.Volumes[i]
		}
	}
	return nil
}

func mountAt(p *corev1.Pod, name string) string {
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if m.Name == name {
			if !m.ReadOnly {
				return "read-write " + m.MountPath
			}
			return m.MountPath
		}
	}
	return ""
}

// secretVolume summarises a Secret volume as "<secret>:<key>=<path>,...".
func secretVolume(v *corev1.Volume) string {
	if v == nil || v.Secret == nil {
		return ""
	}
	var items []string
	for _, it := range v.Secret.Items {
		items = append(items, it.Key+"="+it.Path)
	}
	return v.Secret.SecretName + ":" + strings.Join(items, ",")
}

func TestPodClientAccess(t *testing.T) {
	tokens := func(key string) *licensehav1.ClientAccessSpec {
		return &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "plant-tokens", Key: key}}
	}
	tlsSecret := &licensehav1.ClientTLSSpec{SecretRef: &licensehav1.LocalObjectReference{Name: "plant-tls"}}
	tlsCM := &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{IssuerRef: licensehav1.CertManagerIssuerReference{Name: "ca"}}}
	tokenFlag := "--client-token-file=" + group.ClientTokensFile
	certFlags := []string{"--tls-cert-file=" + group.ClientTLSCertFile, "--tls-key-file=" + group.ClientTLSKeyFile}

	for _, tc := range []struct {
		name    string
		access  *licensehav1.ClientAccessSpec
		command []string
		pair    bool

		tokensVol, tlsVol string // secretVolume summaries, "" when absent
		flags             []string
		noFlags           bool
	}{
		{name: "unset"},
		{name: "tokens, default key", access: tokens(""), tokensVol: "plant-tokens:tokens=tokens", flags: []string{tokenFlag}},
		{name: "tokens, own key", access: tokens("printers"), tokensVol: "plant-tokens:printers=tokens", flags: []string{tokenFlag}},
		{name: "TLS from a Secret", access: &licensehav1.ClientAccessSpec{TLS: tlsSecret},
			tlsVol: "plant-tls:tls.crt=tls.crt,tls.key=tls.key", flags: certFlags},
		{name: "TLS from cert-manager with tokens", access: &licensehav1.ClientAccessSpec{TokenSecretRef: tokens("").TokenSecretRef, TLS: tlsCM},
			tokensVol: "plant-tokens:tokens=tokens", tlsVol: "plant-a-client-tls:tls.crt=tls.crt,tls.key=tls.key",
			flags: append([]string{tokenFlag}, certFlags...)},
		{name: "pair", pair: true, access: &licensehav1.ClientAccessSpec{TLS: tlsCM},
			tlsVol: "plant-b-client-tls:tls.crt=tls.crt,tls.key=tls.key", flags: certFlags},
		{name: "vendor server: files mounted, no flags", command: []string{"/opt/vendor/lmgrd"},
			access:    &licensehav1.ClientAccessSpec{TokenSecretRef: tokens("").TokenSecretRef, TLS: tlsSecret},
			tokensVol: "plant-tokens:tokens=tokens", tlsVol: "plant-tls:tls.crt=tls.crt,tls.key=tls.key", noFlags: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g Group
			if tc.pair {
				p := testPair()
				p.Spec.ClientAccess = tc.access
				g = FromPair(p)
			} else {
				tr := testTriad()
				tr.Spec.ClientAccess, tr.Spec.Server.Command = tc.access, tc.command
				g = FromTriad(tr)
			}
			pod := Pod(g, g.Members[0], Options{Image: "img"})
			if got := secretVolume(volumeNamed(pod, volClientTokens)); got != tc.tokensVol {
				t.Errorf("token volume = %q, want %q", got, tc.tokensVol)
			}
			if got := secretVolume(volumeNamed(pod, volClientTLS)); got != tc.tlsVol {
				t.Errorf("TLS volume = %q, want %q", got, tc.tlsVol)
			}
			for vol, dir := range map[string]string{volClientTokens: group.ClientTokensDir, volClientTLS: group.ClientTLSDir} {
				want := ""
				if volumeNamed(pod, vol) != nil {
					want = dir
				}
				if got := mountAt(pod, vol); got != want {
					t.Errorf("mount of %s = %q, want %q (read-only)", vol, got, want)
				}
				if v := volumeNamed(pod, vol); v != nil && *v.Secret.DefaultMode != 0o440 {
					t.Errorf("%s mode = %o, want 0440", vol, *v.Secret.DefaultMode)
				}
			}
			cmd := pod.Spec.Containers[0].Command
			var got []string
			for _, a := range cmd {
				if strings.HasPrefix(a, "--client-token-file") || strings.HasPrefix(a, "--tls-") {
					got = append(got, a)
				}
			}
			if !slices.Equal(got, tc.flags) {
				t.Errorf("server flags = %q, want %q", got, tc.flags)
			}
			if tc.noFlags && len(got) > 0 {
				t.Errorf("a vendor command got the reference server's flags %q", got)
			}
		})
	}
}

func TestPodWithoutClientAccessIsUnchanged(t *testing.T) {
	// A group that does not use the new fields keeps exactly the pod it
	// had: the same volumes and the same template hash, so upgrading the
	// operator rolls no member.
	g := FromTriad(testTriad())
	pod := Pod(g, g.Members[1], Options{Image: "img"})
	var vols []string
	for _, v := range pod.Spec.Volumes {
		vols = append(vols, v.Name)
	}
	if want := []string{"agent", "data", "licenses", "config", "admin", "tmp"}; !slices.Equal(vols, want) {
		t.Fatalf("volumes = %q, want %q", vols, want)
	}
	tr := testTriad()
	tr.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true}
	with := Pod(FromTriad(tr), g.Members[1], Options{Image: "img"})
	if with.Annotations[AnnotationTemplateHash] != pod.Annotations[AnnotationTemplateHash] {
		t.Fatal("enabling the NetworkPolicy changes the pod template")
	}
	tr.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "t"}}
	if Pod(FromTriad(tr), g.Members[1], Options{Image: "img"}).Annotations[AnnotationTemplateHash] == pod.Annotations[AnnotationTemplateHash] {
		t.Fatal("adding client tokens does not roll the members")
	}
}

func TestClientDNSNames(t *testing.T) {
	triad := ClientDNSNames(FromTriad(testTriad()), "")
	for _, want := range []string{
		"plant-a", "plant-a.printing", "plant-a.printing.svc", "plant-a.printing.svc.cluster.local",
		"lic-a.plant-a-members", "lic-a.plant-a-members.printing.svc", // placement.hostname names member a
		"b.plant-a-members.printing", "c.plant-a-members.printing.svc.cluster.local",
	} {
		if !slices.Contains(triad, want) {
			t.Errorf("triad names lack %s: %q", want, triad)
		}
	}
	if len(triad) != 16 {
		t.Errorf("triad has %d names, want 16 (Service and three members, four forms each)", len(triad))
	}
	pair := ClientDNSNames(FromPair(testPair()), "corp.example")
	for _, want := range []string{
		"plant-b.printing.svc.corp.example", "plant-b-main.printing.svc", "plant-b-backup",
		"main.plant-b-members.printing.svc", "backup.plant-b-members.printing.svc.corp.example",
	} {
		if !slices.Contains(pair, want) {
			t.Errorf("pair names lack %s: %q", want, pair)
		}
	}
	if len(pair) != 20 {
		t.Errorf("pair has %d names, want 20 (three Services and two members, four forms each)", len(pair))
	}
}

func TestCertificate(t *testing.T) {
	tr := testTriad()
	if Certificate(FromTriad(tr), Options{}) != nil {
		t.Fatal("a Certificate without clientAccess")
	}
	tr.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{SecretRef: &licensehav1.LocalObjectReference{Name: "own"}}}
	if Certificate(FromTriad(tr), Options{}) != nil {
		t.Fatal("a Certificate although the user brings the certificate")
	}
	tr.Spec.ClientAccess.TLS = &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{
		IssuerRef: licensehav1.CertManagerIssuerReference{Name: "plant-ca"},
		DNSNames:  []string{"licenses.example.com", "plant-a"}, // plant-a is already there
	}}
	c := Certificate(FromTriad(tr), Options{})
	if c.GroupVersionKind() != CertificateGVK || c.GetName() != "plant-a-client-tls" || c.GetNamespace() != "printing" {
		t.Fatalf("certificate %s %s/%s", c.GroupVersionKind(), c.GetNamespace(), c.GetName())
	}
	if refs := c.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "uid-1" || !*refs[0].Controller {
		t.Fatalf("owner references %+v, want the triad as controller", refs)
	}
	str := func(path ...string) string { s, _, _ := unstructured.NestedString(c.Object, path...); return s }
	if str("spec", "secretName") != "plant-a-client-tls" || str("spec", "issuerRef", "name") != "plant-ca" ||
		str("spec", "issuerRef", "kind") != "Issuer" || str("spec", "issuerRef", "group") != "cert-manager.io" {
		t.Fatalf("spec = %v", c.Object["spec"])
	}
	names, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
	if len(names) != 17 || names[16] != "licenses.example.com" {
		t.Fatalf("dnsNames = %q, want the 16 group names and the extra one once", names)
	}
	if l, _, _ := unstructured.NestedStringMap(c.Object, "spec", "secretTemplate", "labels"); l[licensehav1.LabelGroup] != "plant-a" {
		t.Fatalf("the issued Secret is not labelled with the group: %v", l)
	}
	tr.Spec.ClientAccess.TLS.CertManager.IssuerRef = licensehav1.CertManagerIssuerReference{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}
	c = Certificate(FromTriad(tr), Options{})
	if str("spec", "issuerRef", "kind") != "AWSPCAClusterIssuer" || str("spec", "issuerRef", "group") != "awspca.cert-manager.io" {
		t.Fatalf("external issuer: %v", c.Object["spec"])
	}
}

func TestNetworkPolicy(t *testing.T) {
	sel := func(k, v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	members := networkingv1.NetworkPolicyPeer{PodSelector: sel(licensehav1.LabelGroup, "plant-a")}
	members.PodSelector.MatchLabels[licensehav1.LabelGroupKind] = "triad"
	tcp := func(p int32) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromInt32(p)), Protocol: ptr.To(corev1.ProtocolTCP)}
	}
	udp := func(p int32) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromInt32(p)), Protocol: ptr.To(corev1.ProtocolUDP)}
	}
	peerRule := networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{udp(5171), tcp(5170)}, From: []networkingv1.NetworkPolicyPeer{members}}
	metricsFrom := func(s *metav1.LabelSelector) networkingv1.NetworkPolicyIngressRule {
		return networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{tcp(5170)},
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: s}}}
	}
	operatorNS := metricsFrom(sel("kubernetes.io/metadata.name", "licenseha-system"))

	for _, tc := range []struct {
		name  string
		spec  *licensehav1.NetworkPolicySpec
		port  int32
		opns  string
		nilNP bool
		want  []networkingv1.NetworkPolicyIngressRule
	}{
		{name: "unset", nilNP: true},
		{name: "disabled", spec: &licensehav1.NetworkPolicySpec{ClientPodSelector: sel("app", "x")}, nilNP: true},
		{name: "enabled, any client, metrics from the operator's namespace", spec: &licensehav1.NetworkPolicySpec{Enabled: true},
			opns: "licenseha-system",
			want: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(5160)}}, peerRule, operatorNS}},
		{name: "clients from labelled pods of labelled namespaces", port: 7000, opns: "licenseha-system",
			spec: &licensehav1.NetworkPolicySpec{Enabled: true, ClientNamespaceSelector: sel("team", "printing"), ClientPodSelector: sel("app", "labeler")},
			want: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{tcp(7000)}, From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "printing"), PodSelector: sel("app", "labeler")}}},
				peerRule, operatorNS}},
		{name: "clients from pods of the group's namespace and from printer hosts; metrics from monitoring",
			spec: &licensehav1.NetworkPolicySpec{Enabled: true, ClientPodSelector: sel("app", "labeler"), ClientCIDRs: []string{"10.20.0.0/16"},
				MetricsNamespaceSelector: sel("kubernetes.io/metadata.name", "monitoring")},
			opns: "licenseha-system",
			want: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{tcp(5160)}, From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: sel("app", "labeler")}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.20.0.0/16"}}}},
				peerRule, metricsFrom(sel("kubernetes.io/metadata.name", "monitoring"))}},
		{name: "operator namespace unknown: no metrics rule", spec: &licensehav1.NetworkPolicySpec{Enabled: true},
			want: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(5160)}}, peerRule}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := testTriad()
			tr.Spec.NetworkPolicy, tr.Spec.Server.Port = tc.spec, tc.port
			np := NetworkPolicy(FromTriad(tr), Options{OperatorNamespace: tc.opns})
			if tc.nilNP {
				if np != nil {
					t.Fatalf("NetworkPolicy = %+v, want none", np)
				}
				return
			}
			if np.Name != "plant-a" || np.Namespace != "printing" || len(np.OwnerReferences) != 1 || np.OwnerReferences[0].UID != "uid-1" {
				t.Fatalf("metadata %+v", np.ObjectMeta)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Fatalf("policy types %v, want Ingress only", np.Spec.PolicyTypes)
			}
			if got, want := np.Spec.PodSelector.MatchLabels, members.PodSelector.MatchLabels; len(got) != 2 || got[licensehav1.LabelGroup] != want[licensehav1.LabelGroup] {
				t.Fatalf("pod selector %v, want the group's pods", got)
			}
			if got, want := mustJSON(t, np.Spec.Ingress), mustJSON(t, tc.want); got != want {
				t.Fatalf("ingress:\n got %s\nwant %s", got, want)
			}
		})
	}
	// A pair's members probe each other on the agent HTTP port: admitted.
	p := testPair()
	p.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true}
	np := NetworkPolicy(FromPair(p), Options{})
	if from := np.Spec.Ingress[1].From[0].PodSelector.MatchLabels; from[licensehav1.LabelGroupKind] != "backuppair" ||
		!strings.Contains(mustJSON(t, np.Spec.Ingress[1].Ports), mustJSON(t, tcp(5170))) {
		t.Fatalf("pair peer rule %+v", np.Spec.Ingress[1])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
