package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// groupTarget is a triad or a pair with what `logs` and `report` need: the
// object, the builders' view of it (for the labels its pods carry) and its
// member names.
type groupTarget struct {
	kind string
	name string
	obj  client.Object
	bg   builder.Group
	// members are the members (triad, spec order, then members only in the
	// status) or the servers main and backup (pair).
	members []string
	triad   *licensehav1.LicenseTriad
	pair    *licensehav1.LicenseBackupPair
}

// findGroup finds NAME among the triads and pairs of the namespace, as
// `status` does.
func (k *kube) findGroup(ctx context.Context, name string) (*groupTarget, error) {
	var t licensehav1.LicenseTriad
	err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &t)
	if err == nil {
		g := &groupTarget{kind: group.KindTriad, name: name, obj: &t, bg: builder.FromTriad(&t), triad: &t}
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
		}
		return g, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	var p licensehav1.LicenseBackupPair
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, notFound("no LicenseTriad or LicenseBackupPair", name, k.ns)
		}
		return nil, err
	}
	return &groupTarget{kind: group.KindBackupPair, name: name, obj: &p, bg: builder.FromPair(&p), pair: &p,
		members: []string{string(licensehav1.SideMain), string(licensehav1.SideBackup)}}, nil
}

// hasMember says whether the group has the member (triad) or server (pair).
func (g *groupTarget) hasMember(m string) bool {
	for _, n := range g.members {
		if n == m {
			return true
		}
	}
	return false
}

// noMember is the error for an unknown member, listing the known ones.
func (g *groupTarget) noMember(ns, m string) error {
	what := "member"
	if g.kind == group.KindBackupPair {
		what = "server"
	}
	return fmt.Errorf("%s %s/%s has no %s %q; its %ss are %s", g.kind, ns, g.name, what, m, what, strings.Join(g.members, ", "))
}

// memberPods finds the pod of each member: the group's pods by the labels
// the operator sets (builder.SelectorLabels, keyed by licenseha.io/member),
// and, for a member no labelled pod names, the pod of the member's name
// (group.PodName) if it exists. Members without a pod are missing from the
// map. Pods of the group that name no known member are returned under their
// member label too, so nothing running is hidden.
func (k *kube) memberPods(ctx context.Context, g *groupTarget) (map[string]*corev1.Pod, error) {
	var list corev1.PodList
	if err := k.list(ctx, &list, client.InNamespace(k.ns), client.MatchingLabels(builder.SelectorLabels(g.bg))); err != nil {
		return nil, fmt.Errorf("listing the pods of %s/%s: %w", k.ns, g.name, err)
	}
	pods := map[string]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		m := p.Labels[licensehav1.LabelMember]
		if m == "" {
			m = strings.TrimPrefix(p.Name, g.name+"-")
		}
		// Two pods for one member (the old one terminating): keep the
		// newer.
		if old, ok := pods[m]; !ok || old.CreationTimestamp.Before(&p.CreationTimestamp) {
			pods[m] = p
		}
	}
	for _, m := range g.members {
		if pods[m] != nil {
			continue
		}
		var p corev1.Pod
		switch err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: group.PodName(g.name, m)}, &p); {
		case err == nil:
			pods[m] = &p
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("reading pod %s/%s: %w", k.ns, group.PodName(g.name, m), err)
		}
	}
	return pods, nil
}

// podMembers lists the members with a pod: the group's members in their
// order, then any other member label found, sorted.
func podMembers(g *groupTarget, pods map[string]*corev1.Pod) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range g.members {
		seen[m] = true
		if pods[m] != nil {
			out = append(out, m)
		}
	}
	var extra []string
	for m := range pods {
		if !seen[m] {
			extra = append(extra, m)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}
