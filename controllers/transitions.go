package controllers

import (
	"context"
	"fmt"
	"reflect"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/notify"
)

// Event reasons of a triad's role changes, part of the documented
// interface.
const (
	EventFormed         = "Formed"
	EventFailingOver    = "FailingOver"
	EventFailedOver     = "FailedOver"
	EventSwitchedOver   = "SwitchedOver"
	EventFailedBack     = "FailedBack"
	EventQuorumLost     = "QuorumLost"
	EventQuorumRestored = "QuorumRestored"
)

// Event reasons of a backup pair.
const (
	EventDisconnected   = "Disconnected"
	EventReconnected    = "Reconnected"
	EventOutOfSync      = "OutOfSync"
	EventResynchronized = "Synchronized"
	EventTookOver       = "TookOver"
	EventServiceLost    = "ServiceLost"
)

// leaseHolderChanged lets a Lease event through only when the holder or the
// epoch changed: the agents renew the Lease several times a second, and
// renewals must not cause reconciles.
func leaseHolderChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*coordinationv1.Lease)
			n, ok2 := e.ObjectNew.(*coordinationv1.Lease)
			if !ok1 || !ok2 {
				return true
			}
			return !reflect.DeepEqual(o.Spec.HolderIdentity, n.Spec.HolderIdentity) ||
				o.Annotations[group.AnnotationLeaseEpoch] != n.Annotations[group.AnnotationLeaseEpoch]
		},
	}
}

// recordTransitions emits an Event for every change of the active member and
// of the quorum; it leaves the status alone (computeTriadStatus counts the
// failovers).
// reason is the Lease's record of why the role last changed hands
// (Acquire, Takeover, Switchover, Shutdown, Failback), written by the agent.
func (r *LicenseTriadReconciler) recordTransitions(ctx context.Context, t *licensehav1.LicenseTriad, before *licensehav1.LicenseTriadStatus, reason string) {
	prev, cur := before.ActiveMember, t.Status.ActiveMember
	// Takeovers and loss of service are worth waking someone for.
	emit := r.eventEmitter(ctx, t, t.Spec.Notifications,
		notify.Event{Kind: group.KindTriad, Namespace: t.Namespace, Name: t.Name, Member: cur, Epoch: t.Status.Epoch},
		EventFailingOver, EventFailedOver, EventQuorumLost)
	roleOf := func(name string) licensehav1.MemberRole {
		for _, m := range t.Spec.Members {
			if m.Name == name {
				return m.Role
			}
		}
		return ""
	}
	switch {
	case prev != "" && cur == "":
		emit(corev1.EventTypeWarning, EventFailingOver, "Fence", fmt.Sprintf("Member %s stopped serving; waiting for another member to take over", prev))
	case cur != "" && prev != cur:
		switch {
		case t.Status.Epoch <= 1:
			emit(corev1.EventTypeNormal, EventFormed, "Elect", fmt.Sprintf("Member %s serves", cur))
		case reason == "Failback" || (reason == "" && roleOf(cur) == licensehav1.RolePrimary):
			emit(corev1.EventTypeNormal, EventFailedBack, "Failback", fmt.Sprintf("Primary %s serves again (epoch %d)", cur, t.Status.Epoch))
		case reason == "Switchover" || reason == "Shutdown" || reason == "RoleChange" || reason == "ServerUnhealthy" ||
			(reason == "" && prev != "" && memberStandingBy(t, prev)):
			emit(corev1.EventTypeNormal, EventSwitchedOver, "Switchover", fmt.Sprintf("Member %s handed over to %s (epoch %d)", prev, cur, t.Status.Epoch))
		default:
			emit(corev1.EventTypeWarning, EventFailedOver, "Takeover", fmt.Sprintf("Member %s took over (epoch %d)", cur, t.Status.Epoch))
		}
	}
	wasQuorum := meta.IsStatusConditionTrue(before.Conditions, licensehav1.ConditionQuorumSatisfied)
	hadQuorumCond := meta.FindStatusCondition(before.Conditions, licensehav1.ConditionQuorumSatisfied) != nil
	isQuorum := meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionQuorumSatisfied)
	switch {
	case wasQuorum && !isQuorum:
		emit(corev1.EventTypeWarning, EventQuorumLost, "Quorum", fmt.Sprintf("Only %d of 3 members are in contact; nobody may serve", t.Status.MembersInQuorum))
	case !wasQuorum && isQuorum && hadQuorumCond && before.Epoch > 0:
		emit(corev1.EventTypeNormal, EventQuorumRestored, "Quorum", fmt.Sprintf("%d of 3 members are in contact", t.Status.MembersInQuorum))
	}
}

// recordTransitions emits Events when the pair disconnects, reconnects,
// falls out of sync, or changes the serving server.
func (r *LicenseBackupPairReconciler) recordTransitions(ctx context.Context, p *licensehav1.LicenseBackupPair, before *licensehav1.LicenseBackupPairStatus) {
	// Takeovers and loss of service are worth waking someone for.
	emit := r.eventEmitter(ctx, p, p.Spec.Notifications,
		notify.Event{Kind: group.KindBackupPair, Namespace: p.Namespace, Name: p.Name, Member: string(p.Status.ActiveServer)},
		EventTookOver, EventServiceLost)
	if meta.IsStatusConditionTrue(before.Conditions, licensehav1.ConditionReady) &&
		!meta.IsStatusConditionTrue(p.Status.Conditions, licensehav1.ConditionReady) {
		emit(corev1.EventTypeWarning, EventServiceLost, "Serve", "Neither server serves")
	}
	formed := before.Phase != "" && before.Phase != licensehav1.PairForming
	if formed && before.Connected && !p.Status.Connected {
		emit(corev1.EventTypeWarning, EventDisconnected, "Connect", "Main and backup no longer reach each other")
	}
	if formed && !before.Connected && p.Status.Connected {
		emit(corev1.EventTypeNormal, EventReconnected, "Connect", "Main and backup reach each other again")
	}
	if before.Synchronized && !p.Status.Synchronized {
		emit(corev1.EventTypeWarning, EventOutOfSync, "Sync", "The backup no longer holds the main's latest settings")
	}
	if before.ActiveServer != p.Status.ActiveServer && p.Status.ActiveServer != "" {
		if p.Status.ActiveServer == licensehav1.SideBackup {
			emit(corev1.EventTypeWarning, EventTookOver, "Takeover", "The backup took over while the main is down")
		} else if before.ActiveServer == licensehav1.SideBackup {
			emit(corev1.EventTypeNormal, EventFailedBack, "Failback", "The main serves again")
		}
	}
}

// memberStandingBy is true when the member is up and standing by: it handed
// the role over on purpose rather than failing.
func memberStandingBy(t *licensehav1.LicenseTriad, name string) bool {
	for _, m := range t.Status.Members {
		if m.Name == name {
			return m.Ready && m.State == licensehav1.MemberStandby
		}
	}
	return false
}

// lowestRequeue combines the results of two steps: the sooner requeue wins.
func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.RequeueAfter == 0:
		return b
	case b.RequeueAfter == 0 || a.RequeueAfter < b.RequeueAfter:
		return a
	}
	return b
}
