package controllers

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/licenseha/licenseha/internal/group"
)

// TestPodReadiness: what both kinds read from a member pod. Ready: running,
// not being deleted, and the kubelet says Ready. Failing: it can no longer
// serve (deleted, finished, or a container not running).
func TestPodReadiness(t *testing.T) {
	running := func() *corev1.Pod { return triadMember("a", group.StateActive, 1, "b") }
	now := metav1.Now()
	for _, tc := range []struct {
		name           string
		pod            *corev1.Pod
		ready, failing bool
	}{
		{name: "running and ready", pod: running(), ready: true},
		{name: "running, the kubelet says not ready", pod: func() *corev1.Pod {
			p := running()
			p.Status.Conditions[0].Status = corev1.ConditionFalse
			return p
		}()},
		{name: "running, no Ready condition yet", pod: func() *corev1.Pod {
			p := running()
			p.Status.Conditions = nil
			return p
		}()},
		{name: "the server container crashed", pod: crashed(running()), failing: true},
		{name: "being deleted", pod: func() *corev1.Pod {
			p := running()
			p.DeletionTimestamp = &now
			return p
		}(), failing: true},
		{name: "pending, no container yet", pod: &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}},
		{name: "failed", pod: &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, failing: true},
		{name: "succeeded", pod: &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, failing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := group.PodReady(tc.pod); got != tc.ready {
				t.Errorf("ready %v, want %v", got, tc.ready)
			}
			if got := podFailing(tc.pod); got != tc.failing {
				t.Errorf("failing %v, want %v", got, tc.failing)
			}
		})
	}
	if group.PodReady(nil) {
		t.Error("a missing pod is ready")
	}
}

func TestLeaseHolder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lease  *coordinationv1.Lease
		holder string
		epoch  int64
		reason string
	}{
		{name: "no Lease"},
		{name: "created, never held", lease: &coordinationv1.Lease{}},
		{name: "held", lease: heldLease("plant-b", 7), holder: "plant-b", epoch: 7},
		{name: "released after a shutdown", lease: func() *coordinationv1.Lease {
			l := heldLease("", 8)
			l.Annotations[group.AnnotationLeaseReason] = "Shutdown"
			return l
		}(), epoch: 8, reason: "Shutdown"},
		{name: "an unreadable epoch counts as none", lease: func() *coordinationv1.Lease {
			l := heldLease("plant-a", 0)
			l.Annotations[group.AnnotationLeaseEpoch] = "x"
			return l
		}(), holder: "plant-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder, epoch := leaseHolder(tc.lease)
			if holder != tc.holder || epoch != tc.epoch || leaseReason(tc.lease) != tc.reason {
				t.Errorf("holder %q epoch %d reason %q, want %q %d %q", holder, epoch, leaseReason(tc.lease), tc.holder, tc.epoch, tc.reason)
			}
		})
	}
}
