package builder

import (
	"encoding/json"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

func metaSelector(l map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: l}
}

// ActiveService is the client-facing Service: it selects only the member
// labelled role=active, so clients always reach the serving member.
func ActiveService(g Group) *corev1.Service {
	sel := SelectorLabels(g)
	sel[licensehav1.LabelRole] = licensehav1.RoleLabelActive
	return clientService(g, group.ServiceName(g.Name), sel)
}

// MemberService is the client-facing Service of one pair member
// (<pair>-main, <pair>-backup): in ActiveActive each serves its own clients.
func MemberService(g Group, member string) *corev1.Service {
	sel := SelectorLabels(g)
	sel[licensehav1.LabelMember] = member
	return clientService(g, group.PodName(g.Name, member), sel)
}

func clientService(g Group, name string, selector map[string]string) *corev1.Service {
	meta := objectMeta(g, name)
	meta.Annotations = g.Service.Annotations
	typ := corev1.ServiceType(g.Service.Type)
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name: "license", Port: serverPort(g), TargetPort: intstr.FromString("license"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// MembersService is the headless Service that gives every member a stable
// DNS name (<pod>.<group>-members) whether it is ready or not: members must
// find each other before any of them serves.
func MembersService(g Group) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(g, group.MembersServiceName(g.Name)),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 SelectorLabels(g),
			PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{
				{Name: "license", Port: serverPort(g), TargetPort: intstr.FromString("license"), Protocol: corev1.ProtocolTCP},
				{Name: "agent", Port: group.AgentHTTPPort, TargetPort: intstr.FromString("agent"), Protocol: corev1.ProtocolTCP},
				{Name: "peer", Port: group.AgentPeerPort, TargetPort: intstr.FromString("peer"), Protocol: corev1.ProtocolUDP},
			},
		},
	}
}

// Lease is the Lease recording the active member, created empty: the agents
// acquire and renew it, the operator only creates it so it is owned by the
// group and goes with it.
func Lease(g Group) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: objectMeta(g, group.LeaseName(g.Name)),
	}
}

// StateConfigMap and StateSecret carry the synced state. They are created
// empty; the active member's agent writes them.
func StateConfigMap(g Group) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(g, group.StateName(g.Name)),
	}
}

// StateSecret carries the parts of the synced state that are sensitive
// (checkouts name users and printers).
func StateSecret(g Group) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(g, group.StateName(g.Name)),
		Type:       corev1.SecretTypeOpaque,
	}
}

// AdminSecret holds the group's admin token for the license servers' admin
// API. It is generated once (token from the caller) and never rewritten.
func AdminSecret(g Group, token string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(g, group.AdminSecretName(g.Name)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{group.AdminTokenKey: []byte(token)},
	}
}

// ConfigMap is the group configuration for the agents, with the trusted
// licence-signing keys. addresses maps member name to pod IP.
func ConfigMap(g Group, cfg group.Config, trustedKeys []byte) (*corev1.ConfigMap, error) {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the group configuration: %w", err)
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(g, group.ConfigName(g.Name)),
		Data: map[string]string{
			group.ConfigKey:      string(data),
			group.TrustedKeysKey: string(trustedKeys),
		},
	}, nil
}

// PVC is a member's data volume claim, when the group asks for storage.
// Claims are not owned by the pod, so a recreated pod finds its data again.
// The remote side of a disconnected pair gets none: its data lives in the
// other cluster.
func PVC(g Group, m Member) *corev1.PersistentVolumeClaim {
	if g.Storage == nil || m.Remote {
		return nil
	}
	size := mustQuantity("1Gi")
	if g.Storage.Size != nil {
		size = *g.Storage.Size
	}
	meta := objectMeta(g, group.PVCName(g.Name, m.Name))
	meta.Labels[licensehav1.LabelMember] = m.Name
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: g.Storage.StorageClassName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// AgentServiceAccount is the identity of the group's agents.
func AgentServiceAccount(g Group) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: objectMeta(g, group.AgentName(g.Name)),
	}
}

// AgentRole grants the agents exactly what the protocol needs, each rule
// restricted to the group's own objects by name, each verb one the agent
// uses: watch the group config (list and watch with a name selector), watch
// and write the synced state (the ConfigMap by update, the Secret by update
// and patch; a get of the Secret reads the newest synced files on a takeover
// and before a final publication), hold the Lease (get, update; the operator creates it), and
// label their pods (watch, patch). RBAC cannot restrict a patch to one pod of
// the group or to some fields: the ValidatingAdmissionPolicy
// licenseha-agent-pods (config/admission) confines each agent to its own
// pod's role label and member-state annotation.
func AgentRole(g Group) *rbacv1.Role {
	pods := make([]string, 0, len(g.Members))
	for _, m := range g.Members {
		pods = append(pods, group.PodName(g.Name, m.Name))
	}
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: objectMeta(g, group.AgentName(g.Name)),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{group.ConfigName(g.Name)},
				Verbs: []string{"list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{group.StateName(g.Name)},
				Verbs: []string{"list", "watch", "update"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{group.StateName(g.Name)},
				Verbs: []string{"get", "list", "watch", "update", "patch"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{group.LeaseName(g.Name)},
				Verbs: []string{"get", "update"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, ResourceNames: pods,
				Verbs: []string{"list", "watch", "patch"}},
		},
	}
}

// AgentRoleBinding binds AgentRole to AgentServiceAccount.
func AgentRoleBinding(g Group) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: objectMeta(g, group.AgentName(g.Name)),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: group.AgentName(g.Name)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: group.AgentName(g.Name), Namespace: g.Namespace}},
	}
}

// Services are the group's Services: for a triad the client Service <triad>
// and the headless <triad>-members; for a pair <pair>, <pair>-main and
// <pair>-backup.
func Services(g Group) []*corev1.Service {
	if g.Kind == group.KindBackupPair {
		return []*corev1.Service{ActiveService(g),
			MemberService(g, string(licensehav1.SideMain)), MemberService(g, string(licensehav1.SideBackup))}
	}
	return []*corev1.Service{ActiveService(g), MembersService(g)}
}

// Child is an object the operator creates for a group, by kind and name.
type Child struct {
	GVK  schema.GroupVersionKind
	Name string
	// Retained is true for the objects a dissolved group may keep for a
	// group of the same kind and name: the synced state and the Lease
	// (dissolvePolicy Retain, KeepOnActive, MoveTo) and the kept member's
	// volume claim (KeepOnActive, MoveTo).
	Retained bool
	// Member is the member whose pod or volume claim it is; "" otherwise.
	Member string
}

// Key identifies a child by kind and name, e.g. "Service/plant".
func (c Child) Key() string { return c.GVK.Kind + "/" + c.Name }

// Children lists every object the operator writes for a group, in the order
// it writes them; each name is derived from the group's name and members.
// The operator checks each of them before it writes anything.
func Children(g Group) []Child {
	gvk := func(group, kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
	}
	out := []Child{
		{GVK: gvk("", "ServiceAccount"), Name: group.AgentName(g.Name)},
		{GVK: gvk(rbacv1.GroupName, "Role"), Name: group.AgentName(g.Name)},
		{GVK: gvk(rbacv1.GroupName, "RoleBinding"), Name: group.AgentName(g.Name)},
		{GVK: gvk("", "Secret"), Name: group.AdminSecretName(g.Name)},
		{GVK: gvk("", "ConfigMap"), Name: group.StateName(g.Name), Retained: true},
		{GVK: gvk("", "Secret"), Name: group.StateName(g.Name), Retained: true},
		{GVK: gvk(coordinationv1.GroupName, "Lease"), Name: group.LeaseName(g.Name), Retained: true},
	}
	if g.Storage != nil {
		for _, m := range g.Members {
			out = append(out, Child{GVK: gvk("", "PersistentVolumeClaim"), Name: group.PVCName(g.Name, m.Name), Member: m.Name, Retained: true})
		}
	}
	for _, svc := range Services(g) {
		out = append(out, Child{GVK: gvk("", "Service"), Name: svc.Name})
	}
	out = append(out, Child{GVK: gvk("", "ConfigMap"), Name: group.ConfigName(g.Name)})
	if g.NetworkPolicy != nil && g.NetworkPolicy.Enabled {
		out = append(out, Child{GVK: gvk(networkingv1.GroupName, "NetworkPolicy"), Name: group.NetworkPolicyName(g.Name)})
	}
	for _, m := range g.Members {
		out = append(out, Child{GVK: gvk("", "Pod"), Name: group.PodName(g.Name, m.Name), Member: m.Name})
	}
	return out
}
