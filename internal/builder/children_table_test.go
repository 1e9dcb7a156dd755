package builder

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// TestChildrenTable: every object the operator writes for a group, in
// order, with its API group, the member it belongs to, and whether
// a dissolved group may keep it (state, Lease, volume claims), across
// storage and NetworkPolicy.
func TestChildrenTable(t *testing.T) {
	// describe gives "<group>/<Kind>/<name>[ member=<m>][ retained]".
	describe := func(cs []Child) []string {
		var out []string
		for _, c := range cs {
			s := c.GVK.Group + "/" + c.GVK.Kind + "/" + c.Name
			if c.GVK.Version != "v1" {
				s += " version=" + c.GVK.Version
			}
			if c.Member != "" {
				s += " member=" + c.Member
			}
			if c.Retained {
				s += " retained"
			}
			out = append(out, s)
		}
		return out
	}
	common := []string{
		"/ServiceAccount/plant-agent", "rbac.authorization.k8s.io/Role/plant-agent", "rbac.authorization.k8s.io/RoleBinding/plant-agent",
		"/Secret/plant-admin", "/ConfigMap/plant-state retained", "/Secret/plant-state retained",
		"coordination.k8s.io/Lease/plant-active retained",
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name string
		g    func() Group
		want []string
	}{{
		name: "triad, minimal",
		g:    func() Group { return FromTriad(fixtureTriad()) },
		want: cat(common, []string{"/Service/plant", "/Service/plant-members", "/ConfigMap/plant-config",
			"/Pod/plant-a member=a", "/Pod/plant-b member=b", "/Pod/plant-c member=c"}),
	}, {
		name: "triad, storage and an enabled NetworkPolicy",
		g: func() Group {
			tr := fixtureTriad()
			tr.Spec.Storage = &licensehav1.StorageSpec{}
			tr.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true}
			return FromTriad(tr)
		},
		want: cat(common, []string{
			"/PersistentVolumeClaim/plant-a-data member=a retained", "/PersistentVolumeClaim/plant-b-data member=b retained",
			"/PersistentVolumeClaim/plant-c-data member=c retained",
			"/Service/plant", "/Service/plant-members", "/ConfigMap/plant-config",
			"networking.k8s.io/NetworkPolicy/plant",
			"/Pod/plant-a member=a", "/Pod/plant-b member=b", "/Pod/plant-c member=c"}),
	}, {
		name: "triad, a disabled NetworkPolicy is no child",
		g: func() Group {
			tr := fixtureTriad()
			tr.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{}
			return FromTriad(tr)
		},
		want: cat(common, []string{"/Service/plant", "/Service/plant-members", "/ConfigMap/plant-config",
			"/Pod/plant-a member=a", "/Pod/plant-b member=b", "/Pod/plant-c member=c"}),
	}, {
		name: "pair, storage and an enabled NetworkPolicy",
		g: func() Group {
			p := fixturePair()
			p.Spec.Storage = &licensehav1.StorageSpec{}
			p.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true}
			return FromPair(p)
		},
		want: cat(common, []string{
			"/PersistentVolumeClaim/plant-main-data member=main retained", "/PersistentVolumeClaim/plant-backup-data member=backup retained",
			"/Service/plant", "/Service/plant-main", "/Service/plant-backup", "/ConfigMap/plant-config",
			"networking.k8s.io/NetworkPolicy/plant",
			"/Pod/plant-main member=main", "/Pod/plant-backup member=backup"}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(Children(tc.g())); !slices.Equal(got, tc.want) {
				t.Errorf("children\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestChildKey: the key names kind and name only.
func TestChildKey(t *testing.T) {
	for _, tc := range []struct {
		c    Child
		want string
	}{
		{c: Child{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, Name: "plant-a", Member: "a"}, want: "Pod/plant-a"},
		{c: Child{GVK: schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}, Name: "plant-active", Retained: true},
			want: "Lease/plant-active"},
	} {
		if got := tc.c.Key(); got != tc.want {
			t.Errorf("key %q, want %q", got, tc.want)
		}
	}
}
