package builder

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// servicePorts summarises a Service's ports as "<name> <port>/<proto> -> <target>".
func servicePorts(s *corev1.Service) []string {
	var out []string
	for _, p := range s.Spec.Ports {
		out = append(out, fmt.Sprintf("%s %d/%s -> %s", p.Name, p.Port, p.Protocol, p.TargetPort.String()))
	}
	return out
}

// TestActiveService: the client Service <group> selects only the member
// labelled active, with the group's type (default ClusterIP), annotations
// and client port.
func TestActiveService(t *testing.T) {
	for _, tc := range []struct {
		name        string
		g           func() Group
		wantName    string
		wantType    corev1.ServiceType
		wantAnn     map[string]string
		wantPorts   []string
		wantKindSel string
	}{{
		name:     "triad, defaults",
		g:        func() Group { return FromTriad(fixtureTriad()) },
		wantName: "plant", wantType: corev1.ServiceTypeClusterIP,
		wantPorts: []string{"license 5160/TCP -> license"}, wantKindSel: "triad",
	}, {
		name: "triad, LoadBalancer with annotations on its own port",
		g: func() Group {
			tr := fixtureTriad()
			tr.Spec.Service = licensehav1.ServiceSpec{Type: licensehav1.ServiceTypeLoadBalancer,
				Annotations: map[string]string{"lb.example/internal": "true"}}
			tr.Spec.Server.Port = 27000
			return FromTriad(tr)
		},
		wantName: "plant", wantType: corev1.ServiceTypeLoadBalancer, wantAnn: map[string]string{"lb.example/internal": "true"},
		wantPorts: []string{"license 27000/TCP -> license"}, wantKindSel: "triad",
	}, {
		name: "pair, NodePort",
		g: func() Group {
			p := fixturePair()
			p.Name = "dr"
			p.Spec.Service.Type = licensehav1.ServiceTypeNodePort
			return FromPair(p)
		},
		wantName: "dr", wantType: corev1.ServiceTypeNodePort,
		wantPorts: []string{"license 5160/TCP -> license"}, wantKindSel: "backuppair",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g()
			svc := ActiveService(g)
			if svc.Name != tc.wantName || svc.Namespace != "printing" || svc.Kind != "Service" || svc.APIVersion != "v1" {
				t.Errorf("Service %s %s/%s, want v1 Service printing/%s", svc.APIVersion, svc.Namespace, svc.Name, tc.wantName)
			}
			wantSel := map[string]string{licensehav1.LabelGroup: tc.wantName, licensehav1.LabelGroupKind: tc.wantKindSel,
				licensehav1.LabelRole: "active"}
			if !maps.Equal(svc.Spec.Selector, wantSel) {
				t.Errorf("selector %v, want %v", svc.Spec.Selector, wantSel)
			}
			if svc.Spec.Type != tc.wantType {
				t.Errorf("type %s, want %s", svc.Spec.Type, tc.wantType)
			}
			if !maps.Equal(svc.Annotations, tc.wantAnn) {
				t.Errorf("annotations %v, want %v", svc.Annotations, tc.wantAnn)
			}
			if got := servicePorts(svc); !slices.Equal(got, tc.wantPorts) {
				t.Errorf("ports %q, want %q", got, tc.wantPorts)
			}
			if svc.Spec.ClusterIP != "" || svc.Spec.PublishNotReadyAddresses {
				t.Errorf("client Service must be a plain Service of ready members: %+v", svc.Spec)
			}
			if svc.Labels[licensehav1.LabelRole] != "" {
				t.Errorf("the Service's own labels carry the role selector: %v", svc.Labels)
			}
		})
	}
}

// TestMemberService: a pair's <pair>-main and <pair>-backup select their own
// member whatever its role label, with the group's Service settings.
func TestMemberService(t *testing.T) {
	p := fixturePair()
	p.Spec.Service = licensehav1.ServiceSpec{Annotations: map[string]string{"a": "b"}}
	p.Spec.Server.Port = 7000
	g := FromPair(p)
	for _, tc := range []struct {
		member, wantName string
	}{
		{member: "main", wantName: "plant-main"},
		{member: "backup", wantName: "plant-backup"},
	} {
		t.Run(tc.member, func(t *testing.T) {
			svc := MemberService(g, tc.member)
			wantSel := map[string]string{licensehav1.LabelGroup: "plant", licensehav1.LabelGroupKind: "backuppair",
				licensehav1.LabelMember: tc.member}
			if svc.Name != tc.wantName || !maps.Equal(svc.Spec.Selector, wantSel) {
				t.Errorf("Service %s selecting %v, want %s selecting %v", svc.Name, svc.Spec.Selector, tc.wantName, wantSel)
			}
			if _, ok := svc.Spec.Selector[licensehav1.LabelRole]; ok {
				t.Error("a member Service must not depend on the role label: in ActiveActive both sides serve")
			}
			if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Annotations["a"] != "b" {
				t.Errorf("type %s annotations %v", svc.Spec.Type, svc.Annotations)
			}
			if got, want := servicePorts(svc), []string{"license 7000/TCP -> license"}; !slices.Equal(got, want) {
				t.Errorf("ports %q, want %q", got, want)
			}
			if len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].Kind != group.KindBackupPair {
				t.Errorf("owners %+v", svc.OwnerReferences)
			}
		})
	}
}

// TestMembersService: the headless <triad>-members publishes every member,
// ready or not, on the licence, agent and heartbeat ports; the group's
// Service type and annotations (for the client Service) do not apply.
func TestMembersService(t *testing.T) {
	for _, tc := range []struct {
		name      string
		port      int32
		svc       licensehav1.ServiceSpec
		wantPorts []string
	}{
		{name: "defaults", wantPorts: []string{"license 5160/TCP -> license", "agent 5170/TCP -> agent", "peer 5171/UDP -> peer"}},
		{name: "own port, LoadBalancer client Service", port: 27000,
			svc:       licensehav1.ServiceSpec{Type: licensehav1.ServiceTypeLoadBalancer, Annotations: map[string]string{"x": "y"}},
			wantPorts: []string{"license 27000/TCP -> license", "agent 5170/TCP -> agent", "peer 5171/UDP -> peer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Spec.Server.Port, tr.Spec.Service = tc.port, tc.svc
			svc := MembersService(FromTriad(tr))
			if svc.Name != "plant-members" {
				t.Errorf("name %s, want plant-members", svc.Name)
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
				t.Errorf("clusterIP %q publishNotReady %v: want headless, publishing unready members", svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
			}
			if svc.Spec.Type != "" || len(svc.Annotations) > 0 {
				t.Errorf("type %q annotations %v: the client Service's settings leaked into the headless one", svc.Spec.Type, svc.Annotations)
			}
			want := map[string]string{licensehav1.LabelGroup: "plant", licensehav1.LabelGroupKind: "triad"}
			if !maps.Equal(svc.Spec.Selector, want) {
				t.Errorf("selector %v, want every member: %v", svc.Spec.Selector, want)
			}
			if got := servicePorts(svc); !slices.Equal(got, tc.wantPorts) {
				t.Errorf("ports %q, want %q", got, tc.wantPorts)
			}
		})
	}
}

// TestServicesPerKind: which Services each kind gets, by name, in order.
func TestServicesPerKind(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    Group
		want []string
	}{
		{name: "triad", g: FromTriad(fixtureTriad()), want: []string{"plant", "plant-members"}},
		{name: "pair", g: FromPair(fixturePair()), want: []string{"plant", "plant-main", "plant-backup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range Services(tc.g) {
				got = append(got, s.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Services %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPVCSpec: the claim's name, size, class and access mode per spec.storage.
func TestPVCSpec(t *testing.T) {
	for _, tc := range []struct {
		name      string
		storage   *licensehav1.StorageSpec
		member    int
		wantNil   bool
		wantName  string
		wantSize  string
		wantClass *string
	}{
		{name: "no storage: no claim", wantNil: true},
		{name: "empty storage: 1Gi of the default class", storage: &licensehav1.StorageSpec{},
			wantName: "plant-a-data", wantSize: "1Gi"},
		{name: "size and class", storage: &licensehav1.StorageSpec{Size: ptr.To(resource.MustParse("250Mi")), StorageClassName: ptr.To("fast")},
			member: 2, wantName: "plant-c-data", wantSize: "250Mi", wantClass: ptr.To("fast")},
		{name: "an empty class name is kept (no dynamic provisioning)", storage: &licensehav1.StorageSpec{StorageClassName: ptr.To("")},
			member: 1, wantName: "plant-b-data", wantSize: "1Gi", wantClass: ptr.To("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Spec.Storage = tc.storage
			g := FromTriad(tr)
			m := g.Members[tc.member]
			pvc := PVC(g, m)
			if tc.wantNil {
				if pvc != nil {
					t.Fatalf("claim %s without spec.storage", pvc.Name)
				}
				return
			}
			if pvc.Name != tc.wantName || pvc.Labels[licensehav1.LabelMember] != m.Name {
				t.Errorf("claim %s labelled %v, want %s of member %s", pvc.Name, pvc.Labels, tc.wantName, m.Name)
			}
			size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if size.String() != tc.wantSize {
				t.Errorf("size %s, want %s", size.String(), tc.wantSize)
			}
			if (pvc.Spec.StorageClassName == nil) != (tc.wantClass == nil) ||
				(tc.wantClass != nil && *pvc.Spec.StorageClassName != *tc.wantClass) {
				t.Errorf("class %v, want %v", pvc.Spec.StorageClassName, tc.wantClass)
			}
			if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("access modes %v", pvc.Spec.AccessModes)
			}
			// The claim is owned by the group, not the pod, so it
			// survives a pod's replacement.
			if len(pvc.OwnerReferences) != 1 || pvc.OwnerReferences[0].Kind != group.KindTriad {
				t.Errorf("owners %+v, want the triad only", pvc.OwnerReferences)
			}
			// Changing the returned size does not change the spec.
			if tc.storage.Size != nil {
				before := tc.storage.Size.String()
				q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
				q.Add(resource.MustParse("1Gi"))
				pvc.Spec.Resources.Requests[corev1.ResourceStorage] = q
				if tc.storage.Size.String() != before {
					t.Errorf("the spec's size changed to %s", tc.storage.Size.String())
				}
			}
		})
	}
}

// TestAgentRoleNamesTheGroupsPods: the Role lets the agents patch exactly
// the group's member pods, by name, for both kinds, and nothing else.
func TestAgentRoleNamesTheGroupsPods(t *testing.T) {
	tr := fixtureTriad()
	tr.Spec.Members[1].Name = "bravo"
	for _, tc := range []struct {
		name string
		g    Group
		want []string
	}{
		{name: "triad", g: FromTriad(tr), want: []string{"plant-a", "plant-bravo", "plant-c"}},
		{name: "pair", g: FromPair(fixturePair()), want: []string{"plant-main", "plant-backup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role := AgentRole(tc.g)
			var podRule *int
			for i, r := range role.Rules {
				if slices.Contains(r.Resources, "pods") {
					podRule = &i
				}
			}
			if podRule == nil {
				t.Fatalf("no rule for pods: %+v", role.Rules)
			}
			r := role.Rules[*podRule]
			if !slices.Equal(r.ResourceNames, tc.want) || !slices.Equal(r.Verbs, []string{"list", "watch", "patch"}) {
				t.Errorf("pods rule %+v, want %v with list, watch, patch", r, tc.want)
			}
		})
	}
}

// TestAdminSecretToken: the admin Secret holds the caller's token, whatever
// it is, under the one key the pods mount.
func TestAdminSecretToken(t *testing.T) {
	g := FromPair(fixturePair())
	for _, token := range []string{"", "abc", "with\nnewline"} {
		s := AdminSecret(g, token)
		if s.Name != "plant-admin" || len(s.Data) != 1 || string(s.Data["token"]) != token || s.Type != corev1.SecretTypeOpaque {
			t.Errorf("token %q: Secret %s type %s data %v", token, s.Name, s.Type, s.Data)
		}
	}
}
