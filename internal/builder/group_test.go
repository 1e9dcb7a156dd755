package builder

import (
	"maps"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// TestLabelsAndSelectors: the labels every object carries and the selector
// of a group's pods, written out literally per kind, so a renamed label or
// kind value (which would orphan every running pod) fails here.
func TestLabelsAndSelectors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		g            Group
		wantSelector map[string]string
	}{{
		name: "triad",
		g:    FromTriad(fixtureTriad()),
		wantSelector: map[string]string{
			"licenseha.io/group": "plant", "licenseha.io/group-kind": "triad",
		},
	}, {
		name: "pair",
		g:    FromPair(fixturePair()),
		wantSelector: map[string]string{
			"licenseha.io/group": "plant", "licenseha.io/group-kind": "backuppair",
		},
	}, {
		name: "an unknown kind is treated as a triad",
		g:    Group{Kind: "Other", Name: "x"},
		wantSelector: map[string]string{
			"licenseha.io/group": "x", "licenseha.io/group-kind": "triad",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SelectorLabels(tc.g); !maps.Equal(got, tc.wantSelector) {
				t.Errorf("selector %v, want %v", got, tc.wantSelector)
			}
			want := maps.Clone(tc.wantSelector)
			want["app.kubernetes.io/name"] = "licenseha"
			want["app.kubernetes.io/instance"] = tc.g.Name
			want["app.kubernetes.io/managed-by"] = "licenseha-operator"
			if got := Labels(tc.g); !maps.Equal(got, want) {
				t.Errorf("labels %v, want %v", got, want)
			}
			// Each call returns a map of its own: a builder that adds
			// a label to one object must not add it to the next.
			l := Labels(tc.g)
			l["extra"] = "x"
			s := SelectorLabels(tc.g)
			s["extra"] = "x"
			if _, leaked := Labels(tc.g)["extra"]; leaked {
				t.Error("Labels returns a shared map")
			}
			if _, leaked := SelectorLabels(tc.g)["extra"]; leaked {
				t.Error("SelectorLabels returns a shared map")
			}
		})
	}
}

// TestKindsDoNotSelectEachOther: a triad and a pair of the same name in the
// same namespace select only their own pods.
func TestKindsDoNotSelectEachOther(t *testing.T) {
	triad, pair := FromTriad(fixtureTriad()), FromPair(fixturePair())
	for _, tc := range []struct {
		name     string
		selector Group
		podsOf   Group
		selects  bool
	}{
		{name: "triad selects triad", selector: triad, podsOf: triad, selects: true},
		{name: "pair selects pair", selector: pair, podsOf: pair, selects: true},
		{name: "triad does not select pair", selector: triad, podsOf: pair},
		{name: "pair does not select triad", selector: pair, podsOf: triad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := Pod(tc.podsOf, tc.podsOf.Members[0], Options{Image: opImage})
			if got := labels.SelectorFromSet(SelectorLabels(tc.selector)).Matches(labels.Set(pod.Labels)); got != tc.selects {
				t.Errorf("selects pod %s: %v, want %v", pod.Name, got, tc.selects)
			}
		})
	}
}

// TestOwnerReference: the owner reference every object carries names the
// group by API version, kind, name and UID, as controller, blocking the
// group's deletion until the object is gone.
func TestOwnerReference(t *testing.T) {
	tr := fixtureTriad()
	tr.UID = "11111111-2222"
	p := fixturePair()
	p.Name, p.UID = "other", "33333333-4444"
	for _, tc := range []struct {
		name string
		g    Group
		want metav1.OwnerReference
	}{
		{name: "triad", g: FromTriad(tr), want: metav1.OwnerReference{APIVersion: "licenseha.io/v1alpha1", Kind: "LicenseTriad",
			Name: "plant", UID: "11111111-2222", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		{name: "pair", g: FromPair(p), want: metav1.OwnerReference{APIVersion: "licenseha.io/v1alpha1", Kind: "LicenseBackupPair",
			Name: "other", UID: "33333333-4444", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.g.Owner; mustJSON(t, got) != mustJSON(t, tc.want) {
				t.Errorf("owner %s, want %s", mustJSON(t, got), mustJSON(t, tc.want))
			}
			// Every object carries exactly that reference.
			sa := AgentServiceAccount(tc.g)
			if len(sa.OwnerReferences) != 1 || mustJSON(t, sa.OwnerReferences[0]) != mustJSON(t, tc.want) {
				t.Errorf("ServiceAccount owners %+v", sa.OwnerReferences)
			}
		})
	}
}

// TestFromTriadAndFromPair: what the group view carries from each kind's
// spec, field by field, including the optional fields left unset.
func TestFromTriadAndFromPair(t *testing.T) {
	type view struct {
		kind, name, ns    string
		members           []string // name/role/secret/hostname
		storage, svcType  string
		access, netpolicy bool
		port              int32
	}
	summarise := func(g Group) view {
		v := view{kind: g.Kind, name: g.Name, ns: g.Namespace, svcType: string(g.Service.Type),
			access: g.ClientAccess != nil, netpolicy: g.NetworkPolicy != nil, port: g.Server.Port}
		for _, m := range g.Members {
			v.members = append(v.members, m.Name+"/"+m.Role+"/"+m.LicenseSecret+"/"+m.Placement.Hostname)
		}
		if g.Storage != nil {
			v.storage = ptr.Deref(g.Storage.StorageClassName, "<default>")
		}
		return v
	}
	triadWith := func(f func(*licensehav1.LicenseTriad)) Group {
		tr := fixtureTriad()
		f(tr)
		return FromTriad(tr)
	}
	pairWith := func(f func(*licensehav1.LicenseBackupPair)) Group {
		p := fixturePair()
		f(p)
		return FromPair(p)
	}
	for _, tc := range []struct {
		name string
		g    Group
		want view
	}{{
		name: "minimal triad",
		g:    triadWith(func(*licensehav1.LicenseTriad) {}),
		want: view{kind: group.KindTriad, name: "plant", ns: "printing",
			members: []string{"a/Primary/plant-licenses/", "b/Secondary/plant-licenses/", "c/Tertiary/plant-licenses/"}},
	}, {
		name: "triad: members keep the spec's order and roles, all share the one licence Secret",
		g: triadWith(func(tr *licensehav1.LicenseTriad) {
			tr.Spec.LicenseSecretRef.Name = "shared"
			tr.Spec.Members = []licensehav1.TriadMember{
				{Name: "z", Role: licensehav1.RoleTertiary},
				{Name: "y", Role: licensehav1.RolePrimary, Placement: licensehav1.Placement{Hostname: "lic-y"}},
				{Name: "x", Role: licensehav1.RoleSecondary},
			}
			tr.Spec.Storage = &licensehav1.StorageSpec{StorageClassName: ptr.To("fast")}
			tr.Spec.Service.Type = licensehav1.ServiceTypeNodePort
			tr.Spec.Server.Port = 27000
		}),
		want: view{kind: group.KindTriad, name: "plant", ns: "printing",
			members: []string{"z/Tertiary/shared/", "y/Primary/shared/lic-y", "x/Secondary/shared/"},
			storage: "fast", svcType: "NodePort", port: 27000},
	}, {
		name: "minimal pair",
		g:    pairWith(func(*licensehav1.LicenseBackupPair) {}),
		want: view{kind: group.KindBackupPair, name: "plant", ns: "printing",
			members: []string{"main/main/plant-main/", "backup/backup/plant-backup/"}},
	}, {
		name: "pair: each side its own licence Secret and placement, protections carried",
		g: pairWith(func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Main.LicenseSecretRef.Name = "m-lic"
			p.Spec.Backup.LicenseSecretRef.Name = "b-lic"
			p.Spec.Backup.Placement.Hostname = "dr-host"
			p.Spec.Storage = &licensehav1.StorageSpec{}
			p.Spec.ClientAccess = &licensehav1.ClientAccessSpec{}
			p.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{}
		}),
		want: view{kind: group.KindBackupPair, name: "plant", ns: "printing",
			members: []string{"main/main/m-lic/", "backup/backup/b-lic/dr-host"},
			storage: "<default>", access: true, netpolicy: true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarise(tc.g); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("view\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestGroupMember: looking a member up by name.
func TestGroupMember(t *testing.T) {
	triad, pair := FromTriad(fixtureTriad()), FromPair(fixturePair())
	for _, tc := range []struct {
		name     string
		g        Group
		member   string
		found    bool
		wantRole string
	}{
		{name: "triad first", g: triad, member: "a", found: true, wantRole: "Primary"},
		{name: "triad last", g: triad, member: "c", found: true, wantRole: "Tertiary"},
		{name: "triad unknown", g: triad, member: "d"},
		{name: "triad empty name", g: triad, member: ""},
		{name: "triad: a role is no member name", g: triad, member: "Primary"},
		{name: "pair main", g: pair, member: "main", found: true, wantRole: "main"},
		{name: "pair backup", g: pair, member: "backup", found: true, wantRole: "backup"},
		{name: "pair: case matters", g: pair, member: "Main"},
		{name: "empty group", g: Group{}, member: "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := tc.g.Member(tc.member)
			if ok != tc.found || m.Role != tc.wantRole {
				t.Errorf("Member(%q) = %+v, %v; want role %q, %v", tc.member, m, ok, tc.wantRole, tc.found)
			}
			if ok && m.Name != tc.member {
				t.Errorf("Member(%q) returned %q", tc.member, m.Name)
			}
		})
	}
}
