// Package builder turns a LicenseTriad or LicenseBackupPair into the objects
// the operator owns for it. Every function is pure: it takes the group and
// returns the desired object, with no client calls, so each is table-tested
// and the reconcilers stay thin.
package builder

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// Options are operator-wide settings the builders need.
type Options struct {
	// Image is the licenseha image: the agent comes from it, and it is the
	// default server image.
	Image string
	// OperatorNamespace is where the operator runs; a group's NetworkPolicy
	// admits metrics scrapers from it by default. Empty: no default.
	OperatorNamespace string
	// ClusterDomain is the cluster's DNS domain, for the fully qualified
	// names in client certificates; empty means cluster.local.
	ClusterDomain string
	// ExposeServerToken lets the license server read the pod's
	// service-account token: the agents start it without hiding the token
	// (agent --hide-token=false).
	ExposeServerToken bool
	// ImagePullPolicy is the pull policy of the licenseha image (the agent's
	// init container, and the server when it runs the licenseha image);
	// empty means IfNotPresent.
	ImagePullPolicy corev1.PullPolicy
	// ImagePullSecrets name Secrets every member pod pulls its images with,
	// before the group's own (spec.server.imagePullSecrets).
	ImagePullSecrets []string
}

// Group is the kind-independent view of a triad or a pair that the builders
// work from, so both kinds share one pod, Service and RBAC design.
type Group struct {
	Kind      string
	Name      string
	Namespace string
	Owner     metav1.OwnerReference
	Server    licensehav1.ServerSpec
	Storage   *licensehav1.StorageSpec
	Service   licensehav1.ServiceSpec
	// ClientAccess and NetworkPolicy are the optional protections
	// (spec.clientAccess, spec.networkPolicy); nil when unset.
	ClientAccess  *licensehav1.ClientAccessSpec
	NetworkPolicy *licensehav1.NetworkPolicySpec
	Members       []Member
}

// Member is one member of a group.
type Member struct {
	Name string
	// Role is the configured role: Primary/Secondary/Tertiary or main/backup.
	Role          string
	Placement     licensehav1.Placement
	LicenseSecret string
	// Stopped: a pair side stopped on purpose (spec.<side>.stopped); the
	// operator runs no pod for it.
	Stopped bool
	// Remote: the side of a disconnected pair that runs in the other
	// cluster (spec.disconnected); it is also Stopped, and this cluster
	// creates no volume claim for it either.
	Remote bool
}

// FromTriad builds the view of a triad.
func FromTriad(t *licensehav1.LicenseTriad) Group {
	g := Group{
		Kind:      group.KindTriad,
		Name:      t.Name,
		Namespace: t.Namespace,
		Owner:     ownerRef(t, group.KindTriad),
		Server:    t.Spec.Server,
		Storage:   t.Spec.Storage,
		Service:   t.Spec.Service,

		ClientAccess:  t.Spec.ClientAccess,
		NetworkPolicy: t.Spec.NetworkPolicy,
	}
	for _, m := range t.Spec.Members {
		g.Members = append(g.Members, Member{
			Name: m.Name, Role: string(m.Role), Placement: m.Placement,
			LicenseSecret: t.Spec.LicenseSecretRef.Name,
		})
	}
	return g
}

// FromPair builds the view of a backup pair; its members are "main" and
// "backup", each with its own licence Secret.
func FromPair(p *licensehav1.LicenseBackupPair) Group {
	return Group{
		Kind:      group.KindBackupPair,
		Name:      p.Name,
		Namespace: p.Namespace,
		Owner:     ownerRef(p, group.KindBackupPair),
		Server:    p.Spec.Server,
		Storage:   p.Spec.Storage,
		Service:   p.Spec.Service,

		ClientAccess:  p.Spec.ClientAccess,
		NetworkPolicy: p.Spec.NetworkPolicy,
		Members: []Member{
			pairMember(p, licensehav1.SideMain, &p.Spec.Main),
			pairMember(p, licensehav1.SideBackup, &p.Spec.Backup),
		},
	}
}

// pairMember is one side of a pair. The other side of a disconnected pair
// runs in another cluster: it counts as stopped here, so no pod runs for it.
func pairMember(p *licensehav1.LicenseBackupPair, side licensehav1.PairSide, s *licensehav1.PairServer) Member {
	remote := p.Spec.RemoteSide() == side
	return Member{Name: string(side), Role: string(side), Placement: s.Placement,
		LicenseSecret: s.LicenseSecretRef.Name, Stopped: s.Stopped || remote, Remote: remote}
}

// Member returns the named member, or false.
func (g Group) Member(name string) (Member, bool) {
	for _, m := range g.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func ownerRef(obj metav1.Object, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         licensehav1.GroupVersion.String(),
		Kind:               kind,
		Name:               obj.GetName(),
		UID:                obj.GetUID(),
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

// kindLabel is the value of LabelGroupKind for a kind.
func kindLabel(kind string) string {
	if kind == group.KindBackupPair {
		return "backuppair"
	}
	return "triad"
}

// SelectorLabels select every pod of a group.
func SelectorLabels(g Group) map[string]string {
	return map[string]string{
		licensehav1.LabelGroup:     g.Name,
		licensehav1.LabelGroupKind: kindLabel(g.Kind),
	}
}

// Labels are set on every object of a group.
func Labels(g Group) map[string]string {
	l := SelectorLabels(g)
	l["app.kubernetes.io/name"] = "licenseha"
	l["app.kubernetes.io/instance"] = g.Name
	l["app.kubernetes.io/managed-by"] = group.FieldManagerOperator
	return l
}

// objectMeta is the metadata of a group-owned object.
func objectMeta(g Group, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       g.Namespace,
		Labels:          Labels(g),
		OwnerReferences: []metav1.OwnerReference{g.Owner},
	}
}
