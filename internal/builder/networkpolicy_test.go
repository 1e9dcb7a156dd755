package builder

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// npRules summarises ingress rules as "<ports> from <peers>", e.g.
// "5160/TCP from any" or "5171/UDP,5170/TCP from pods{...}".
func npRules(rules []networkingv1.NetworkPolicyIngressRule) []string {
	sel := func(s *metav1.LabelSelector) string {
		if s == nil {
			return ""
		}
		keys := slices.Sorted(maps.Keys(s.MatchLabels))
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+s.MatchLabels[k])
		}
		for _, e := range s.MatchExpressions {
			kv = append(kv, fmt.Sprintf("%s %s %v", e.Key, e.Operator, e.Values))
		}
		return "{" + strings.Join(kv, ",") + "}"
	}
	var out []string
	for _, r := range rules {
		var ports []string
		for _, p := range r.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", p.Port.String(), *p.Protocol))
		}
		var from []string
		for _, f := range r.From {
			var parts []string
			if f.NamespaceSelector != nil {
				parts = append(parts, "ns"+sel(f.NamespaceSelector))
			}
			if f.PodSelector != nil {
				parts = append(parts, "pods"+sel(f.PodSelector))
			}
			if f.IPBlock != nil {
				parts = append(parts, "cidr "+f.IPBlock.CIDR)
				if len(f.IPBlock.Except) > 0 {
					parts[len(parts)-1] += " except " + strings.Join(f.IPBlock.Except, ",")
				}
			}
			from = append(from, strings.Join(parts, "+"))
		}
		if len(from) == 0 {
			from = []string{"any"}
		}
		out = append(out, strings.Join(ports, ",")+" from "+strings.Join(from, " | "))
	}
	return out
}

// TestNetworkPolicyRules: the ingress rules of a group's NetworkPolicy for
// each combination of client and metrics selectors, for both kinds, written
// out literally.
func TestNetworkPolicyRules(t *testing.T) {
	const (
		triadMembers = "5171/UDP,5170/TCP from pods{licenseha.io/group=plant,licenseha.io/group-kind=triad}"
		pairMembers  = "5171/UDP,5170/TCP from pods{licenseha.io/group=plant,licenseha.io/group-kind=backuppair}"
		opMetrics    = "5170/TCP from ns{kubernetes.io/metadata.name=licenseha-system}"
	)
	team := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "printing"}}
	app := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"labeler", "spooler"}}}}
	monitoring := &metav1.LabelSelector{MatchLabels: map[string]string{"monitoring": "true"}}
	for _, tc := range []struct {
		name   string
		pair   bool
		spec   *licensehav1.NetworkPolicySpec
		port   int32
		opNS   string
		none   bool
		wantNP []string
	}{{
		name: "unset: no policy", none: true, opNS: "licenseha-system",
	}, {
		name: "disabled with selectors: no policy", none: true, opNS: "licenseha-system",
		spec: &licensehav1.NetworkPolicySpec{ClientCIDRs: []string{"10.0.0.0/8"}, MetricsNamespaceSelector: monitoring},
	}, {
		name: "triad, any client", spec: &licensehav1.NetworkPolicySpec{Enabled: true}, opNS: "licenseha-system",
		wantNP: []string{"5160/TCP from any", triadMembers, opMetrics},
	}, {
		name: "pair, any client, own port", pair: true, port: 27000, spec: &licensehav1.NetworkPolicySpec{Enabled: true}, opNS: "licenseha-system",
		wantNP: []string{"27000/TCP from any", pairMembers, opMetrics},
	}, {
		name: "client namespaces only", spec: &licensehav1.NetworkPolicySpec{Enabled: true, ClientNamespaceSelector: team},
		opNS:   "licenseha-system",
		wantNP: []string{"5160/TCP from ns{team=printing}", triadMembers, opMetrics},
	}, {
		name: "client pods only (of the group's namespace), by expression",
		spec: &licensehav1.NetworkPolicySpec{Enabled: true, ClientPodSelector: app}, opNS: "licenseha-system",
		wantNP: []string{"5160/TCP from pods{app In [labeler spooler]}", triadMembers, opMetrics},
	}, {
		name:   "client pods of client namespaces: one peer, both selectors",
		spec:   &licensehav1.NetworkPolicySpec{Enabled: true, ClientNamespaceSelector: team, ClientPodSelector: app},
		opNS:   "licenseha-system",
		wantNP: []string{"5160/TCP from ns{team=printing}+pods{app In [labeler spooler]}", triadMembers, opMetrics},
	}, {
		name: "CIDRs only: no selector peer", pair: true,
		spec:   &licensehav1.NetworkPolicySpec{Enabled: true, ClientCIDRs: []string{"10.20.0.0/16", "192.168.1.0/24"}},
		opNS:   "licenseha-system",
		wantNP: []string{"5160/TCP from cidr 10.20.0.0/16 | cidr 192.168.1.0/24", pairMembers, opMetrics},
	}, {
		name: "metrics from selected namespaces instead of the operator's",
		spec: &licensehav1.NetworkPolicySpec{Enabled: true, MetricsNamespaceSelector: monitoring}, opNS: "licenseha-system",
		wantNP: []string{"5160/TCP from any", triadMembers, "5170/TCP from ns{monitoring=true}"},
	}, {
		name:   "metrics selector without an operator namespace",
		spec:   &licensehav1.NetworkPolicySpec{Enabled: true, MetricsNamespaceSelector: monitoring},
		wantNP: []string{"5160/TCP from any", triadMembers, "5170/TCP from ns{monitoring=true}"},
	}, {
		name: "an empty metrics selector admits every namespace",
		spec: &licensehav1.NetworkPolicySpec{Enabled: true, MetricsNamespaceSelector: &metav1.LabelSelector{}}, opNS: "licenseha-system",
		wantNP: []string{"5160/TCP from any", triadMembers, "5170/TCP from ns{}"},
	}, {
		name:   "no operator namespace, no metrics selector: no metrics rule",
		spec:   &licensehav1.NetworkPolicySpec{Enabled: true},
		wantNP: []string{"5160/TCP from any", triadMembers},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var g Group
			if tc.pair {
				p := fixturePair()
				p.Spec.NetworkPolicy, p.Spec.Server.Port = tc.spec, tc.port
				g = FromPair(p)
			} else {
				tr := fixtureTriad()
				tr.Spec.NetworkPolicy, tr.Spec.Server.Port = tc.spec, tc.port
				g = FromTriad(tr)
			}
			np := NetworkPolicy(g, Options{OperatorNamespace: tc.opNS})
			if tc.none {
				if np != nil {
					t.Fatalf("a NetworkPolicy %+v", np.Spec)
				}
				return
			}
			if np == nil {
				t.Fatal("no NetworkPolicy")
			}
			if got := npRules(np.Spec.Ingress); !slices.Equal(got, tc.wantNP) {
				t.Errorf("ingress\n got %q\nwant %q", got, tc.wantNP)
			}
			if np.Name != "plant" || np.Namespace != "printing" || np.Kind != "NetworkPolicy" || np.APIVersion != "networking.k8s.io/v1" {
				t.Errorf("object %s %s %s/%s", np.APIVersion, np.Kind, np.Namespace, np.Name)
			}
			if !maps.Equal(np.Spec.PodSelector.MatchLabels, SelectorLabels(g)) || len(np.Spec.PodSelector.MatchExpressions) > 0 {
				t.Errorf("pod selector %+v, want the group's pods", np.Spec.PodSelector)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Egress) > 0 {
				t.Errorf("policy types %v egress %v: egress must stay open (agents talk to the API server)", np.Spec.PolicyTypes, np.Spec.Egress)
			}
		})
	}
}

// TestNetworkPolicyCopiesSelectors: the policy holds copies of the spec's
// selectors, so changing one (a later builder, a server-side default) never
// changes the group's spec, and two builds do not share them.
func TestNetworkPolicyCopiesSelectors(t *testing.T) {
	spec := &licensehav1.NetworkPolicySpec{Enabled: true,
		ClientNamespaceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"team": "printing"}},
		ClientPodSelector:        &metav1.LabelSelector{MatchLabels: map[string]string{"app": "labeler"}},
		MetricsNamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"monitoring": "true"}},
	}
	tr := fixtureTriad()
	tr.Spec.NetworkPolicy = spec
	g := FromTriad(tr)
	np := NetworkPolicy(g, Options{})
	np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["team"] = "x"
	np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app"] = "x"
	np.Spec.Ingress[2].From[0].NamespaceSelector.MatchLabels["monitoring"] = "x"
	np.Spec.PodSelector.MatchLabels["extra"] = "x"
	if spec.ClientNamespaceSelector.MatchLabels["team"] != "printing" || spec.ClientPodSelector.MatchLabels["app"] != "labeler" ||
		spec.MetricsNamespaceSelector.MatchLabels["monitoring"] != "true" {
		t.Errorf("the spec's selectors changed with the policy's: %+v", spec)
	}
	again := NetworkPolicy(g, Options{})
	if _, ok := again.Spec.PodSelector.MatchLabels["extra"]; ok {
		t.Error("two builds share the pod selector")
	}
	if np.Spec.Ingress[1].From[0].PodSelector.MatchLabels["extra"] != "" {
		t.Error("the members' peer selector is shared with the pod selector")
	}
}
