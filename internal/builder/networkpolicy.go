package builder

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/licenseha/licenseha/internal/group"
)

// namespaceNameLabel is set by the API server on every namespace to its name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// NetworkPolicy is the group's NetworkPolicy (spec.networkPolicy.enabled),
// or nil. It selects the member pods and admits, for ingress only:
//   - the client port (TCP) from the selected clients (every source when
//     none is selected);
//   - the agent peer port (UDP heartbeats) and the agent HTTP port (TCP;
//     a backup pair's members probe each other there) from the group's own
//     members;
//   - the agent HTTP port (TCP, /metrics) from the metrics namespaces: the
//     selected ones, by default the operator's.
//
// The kubelet's probes come from the node and are always admitted; the
// server's admin port is bound to loopback and never reachable from outside
// the pod. Egress is not restricted: agents talk to the API server.
func NetworkPolicy(g Group, opts Options) *networkingv1.NetworkPolicy {
	spec := g.NetworkPolicy
	if spec == nil || !spec.Enabled {
		return nil
	}
	tcp, udp := ptr.To(corev1.ProtocolTCP), ptr.To(corev1.ProtocolUDP)
	port := func(p int32, proto *corev1.Protocol) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromInt32(p)), Protocol: proto}
	}
	members := []networkingv1.NetworkPolicyPeer{{PodSelector: metaSelector(SelectorLabels(g))}}

	var clients []networkingv1.NetworkPolicyPeer
	if spec.ClientNamespaceSelector != nil || spec.ClientPodSelector != nil {
		clients = append(clients, networkingv1.NetworkPolicyPeer{
			NamespaceSelector: spec.ClientNamespaceSelector.DeepCopy(),
			PodSelector:       spec.ClientPodSelector.DeepCopy(),
		})
	}
	for _, cidr := range spec.ClientCIDRs {
		clients = append(clients, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
	}

	rules := []networkingv1.NetworkPolicyIngressRule{
		{Ports: []networkingv1.NetworkPolicyPort{port(serverPort(g), tcp)}, From: clients},
		{Ports: []networkingv1.NetworkPolicyPort{port(group.AgentPeerPort, udp), port(group.AgentHTTPPort, tcp)}, From: members},
	}
	metrics := spec.MetricsNamespaceSelector.DeepCopy()
	if metrics == nil && opts.OperatorNamespace != "" {
		metrics = &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: opts.OperatorNamespace}}
	}
	if metrics != nil {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{port(group.AgentHTTPPort, tcp)},
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: metrics}},
		})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: objectMeta(g, group.NetworkPolicyName(g.Name)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *metaSelector(SelectorLabels(g)),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}
