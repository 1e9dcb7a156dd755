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
