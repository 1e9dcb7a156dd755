package controllers

import (
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/licenseha/licenseha/internal/group"
)

// What both kinds derive their status from: the member pods, the Lease and
// what blocks the group, read the same way for a triad and a pair.

// observed is everything a group's status is derived from, besides the
// group itself (its spec and the status it had).
type observed struct {
	// pods by member name (a pair's sides are "main" and "backup"); a
	// member without a pod is absent.
	pods  map[string]*corev1.Pod
	lease *coordinationv1.Lease
	// blocked, when set, is why the group cannot serve as specified.
	blocked *blocker
	// now is when the observation was made: condition transitions,
	// failovers and syncs are stamped with it.
	now metav1.Time
	// bundleRevision (disconnected pairs) is the revision of the last
	// settings bundle exported (local side main) or imported (local side
	// backup); 0 when there is none.
	bundleRevision int64
}

// leaseHolder returns the pod named in the Lease and the fencing epoch.
func leaseHolder(l *coordinationv1.Lease) (string, int64) {
	if l == nil {
		return "", 0
	}
	holder := ""
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	epoch, _ := strconv.ParseInt(l.Annotations[group.AnnotationLeaseEpoch], 10, 64)
	return holder, epoch
}

// leaseReason is why the role last changed hands, as the agents record it.
func leaseReason(l *coordinationv1.Lease) string {
	if l == nil {
		return ""
	}
	return l.Annotations[group.AnnotationLeaseReason]
}

// podFailing is true when a pod can no longer serve: it is being deleted, or
// a container is not running. The operator labels a failing active
// "unhealthy" at once, so the Service stops sending it clients.
func podFailing(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return true
		}
	}
	return false
}
