package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// groupKind is one kind of group, triad or backup pair: how the commands
// read it and how they see an object of it (groupTarget). It is the one
// place that tells the two kinds apart; the commands work on groupTarget.
type groupKind struct {
	// kind is the API kind (group.KindTriad, group.KindBackupPair).
	kind string
	// plural names the kind in messages: "triads", "backup pairs".
	plural    string
	newObject func() client.Object
	newList   func() client.ObjectList
	// target is the commands' view of an object of the kind.
	target func(client.Object) *groupTarget
}

var (
	triadKind = &groupKind{
		kind: group.KindTriad, plural: "triads",
		newObject: func() client.Object { return &licensehav1.LicenseTriad{} },
		newList:   func() client.ObjectList { return &licensehav1.LicenseTriadList{} },
		target:    func(obj client.Object) *groupTarget { return triadTarget(obj.(*licensehav1.LicenseTriad)) },
	}
	pairKind = &groupKind{
		kind: group.KindBackupPair, plural: "backup pairs",
		newObject: func() client.Object { return &licensehav1.LicenseBackupPair{} },
		newList:   func() client.ObjectList { return &licensehav1.LicenseBackupPairList{} },
		target:    func(obj client.Object) *groupTarget { return pairTarget(obj.(*licensehav1.LicenseBackupPair)) },
	}
	// groupKinds are the kinds in the order a name is looked up: a triad
	// first.
	groupKinds = []*groupKind{triadKind, pairKind}
)

// groupTarget is a triad or a pair as the commands see it: the object, the
// builders' view of it (for the labels its pods carry), its members, and
// what its spec and status say that the commands read.
type groupTarget struct {
	kind string
	name string
	obj  client.Object
	bg   builder.Group
	// members are the members (triad, spec order, then members only in the
	// status) or the servers main and backup (pair).
	members []string
	// spec is the object's spec, where the Secrets it references are named.
	spec          any
	settingsRef   *licensehav1.LocalObjectReference
	settings      *licensehav1.SettingsStatus
	notifications *licensehav1.NotificationsSpec
	// running lists each member (triad, status order) or server (pair)
	// with the hash of the settings its server runs.
	running []memberSettings
	// publisher is the member whose published state <group>-state holds: a
	// triad's active member, a pair's main; publishedBy says it in words.
	publisher, publishedBy string
	// memberWord names a member: "member" (triad) or "server" (pair).
	memberWord string
	// status is the group as `status` reports it, without its events.
	status func() *GroupStatus
	// licences are the group's licences as `licenses` lists them.
	licences func() []LicenceRow
}

func triadTarget(t *licensehav1.LicenseTriad) *groupTarget {
	g := &groupTarget{kind: group.KindTriad, name: t.Name, obj: t, bg: builder.FromTriad(t),
		spec: t.Spec, settingsRef: t.Spec.SettingsRef, settings: t.Status.Settings, notifications: t.Spec.Notifications,
		publisher: t.Status.ActiveMember, publishedBy: "the active member", memberWord: "member",
		status:   func() *GroupStatus { return triadStatus(t) },
		licences: func() []LicenceRow { return triadLicences(t) }}
	seen := map[string]bool{}
	for _, m := range t.Spec.Members {
		seen[m.Name] = true
		g.members = append(g.members, m.Name)
	}
	for _, m := range t.Status.Members {
		if !seen[m.Name] {
			seen[m.Name] = true
			g.members = append(g.members, m.Name)
		}
		g.running = append(g.running, memberSettings{Name: m.Name, State: string(m.State), Hash: m.SettingsHash})
	}
	return g
}

func pairTarget(p *licensehav1.LicenseBackupPair) *groupTarget {
	state := func(s licensehav1.PairServerStatus) string {
		switch {
		case s.Serving:
			return "Serving"
		case s.Ready:
			return "Ready"
		}
		return ""
	}
	return &groupTarget{kind: group.KindBackupPair, name: p.Name, obj: p, bg: builder.FromPair(p),
		members: []string{string(licensehav1.SideMain), string(licensehav1.SideBackup)},
		spec:    p.Spec, settingsRef: p.Spec.SettingsRef, settings: p.Status.Settings, notifications: p.Spec.Notifications,
		running: []memberSettings{
			{Name: "main", State: state(p.Status.Main), Hash: p.Status.Main.SettingsHash},
			{Name: "backup", State: state(p.Status.Backup), Hash: p.Status.Backup.SettingsHash},
		},
		publisher: "main", publishedBy: "the main", memberWord: "server",
		status:   func() *GroupStatus { return pairStatus(p) },
		licences: func() []LicenceRow { return pairLicences(p) }}
}

// kubeGroup connects to the cluster and finds the group NAME in it.
func (o *Options) kubeGroup(ctx context.Context, name string) (*kube, *groupTarget, error) {
	k, err := o.kube()
	if err != nil {
		return nil, nil, err
	}
	g, err := k.findGroup(ctx, name)
	return k, g, err
}

// findGroup finds NAME among the triads and pairs of the namespace.
func (k *kube) findGroup(ctx context.Context, name string) (*groupTarget, error) {
	for _, gk := range groupKinds {
		obj := gk.newObject()
		err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, obj)
		if err == nil {
			return gk.target(obj), nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, notFound("no LicenseTriad or LicenseBackupPair", name, k.ns)
}

// getGroup gets the group NAME of the kind a command works on; when NAME is
// a group of the other kind, the error says so.
func (k *kube) getGroup(ctx context.Context, name string, want *groupKind) (client.Object, error) {
	key := client.ObjectKey{Namespace: k.ns, Name: name}
	obj := want.newObject()
	if err := k.get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			for _, other := range groupKinds {
				if other != want && k.get(ctx, key, other.newObject()) == nil {
					return nil, fmt.Errorf("%s/%s is a %s, not a %s; this command works on %s only", k.ns, name, other.kind, want.kind, want.plural)
				}
			}
		}
		return nil, wrapGet(err, want.kind, name, k.ns)
	}
	return obj, nil
}

func (k *kube) triad(ctx context.Context, name string) (*licensehav1.LicenseTriad, error) {
	obj, err := k.getGroup(ctx, name, triadKind)
	if err != nil {
		return nil, err
	}
	return obj.(*licensehav1.LicenseTriad), nil
}

func (k *kube) pair(ctx context.Context, name string) (*licensehav1.LicenseBackupPair, error) {
	obj, err := k.getGroup(ctx, name, pairKind)
	if err != nil {
		return nil, err
	}
	return obj.(*licensehav1.LicenseBackupPair), nil
}

// listGroups lists the groups of the kinds in namespace ns ("" for all),
// kind by kind; the first kind that cannot be listed ends it.
func (k *kube) listGroups(ctx context.Context, ns string, kinds ...*groupKind) ([]*groupTarget, error) {
	var out []*groupTarget
	for _, gk := range kinds {
		list := gk.newList()
		if err := k.list(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			out = append(out, gk.target(item.(client.Object)))
		}
	}
	return out, nil
}

// hasMember says whether the group has the member (triad) or server (pair).
func (g *groupTarget) hasMember(m string) bool {
	return slices.Contains(g.members, m)
}

// noMember is the error for an unknown member, listing the known ones.
func (g *groupTarget) noMember(ns, m string) error {
	return fmt.Errorf("%s %s/%s has no %s %q; its %ss are %s", g.kind, ns, g.name, g.memberWord, m, g.memberWord, strings.Join(g.members, ", "))
}
