package controllers

import (
	"context"
	"fmt"
	"reflect"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	// A side is lost when its server is neither ready nor serving any more,
	// and recovered when it is again.
	EventMainLost        = "MainLost"
	EventBackupLost      = "BackupLost"
	EventMainRecovered   = "MainRecovered"
	EventBackupRecovered = "BackupRecovered"
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

// emitFunc records an Event on a group and, for the reasons its kind
// notifies on, sends the group's notifications (see eventEmitter).
type emitFunc func(typ, reason, action, note string)

// beginTransitions is where both kinds' recordTransitions start: it sends
// a test notification when one was asked for (see sendTestNotification)
// and returns emitFor, whose emitters send notifications naming member and
// epoch for the reasons in notifyOn.
func (r *groupReconciler) beginTransitions(ctx context.Context, obj client.Object, kind string, spec *licensehav1.NotificationsSpec,
	notifyOn ...string) func(member string, epoch int64) emitFunc {
	r.sendTestNotification(ctx, obj, kind, spec)
	return func(member string, epoch int64) emitFunc {
		return r.eventEmitter(ctx, obj, spec,
			notify.Event{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), Member: member, Epoch: epoch},
			notifyOn...)
	}
}

// recordTransitions emits an Event for every change of the active member and
// of the quorum; it leaves the status alone (computeTriadStatus counts the
// failovers).
// reason is the Lease's record of why the role last changed hands
// (Acquire, Takeover, Switchover, Shutdown, Failback), written by the agent.
//
// It also sends a test notification when one was asked for (see
// sendTestNotification).
func (r *LicenseTriadReconciler) recordTransitions(ctx context.Context, t *licensehav1.LicenseTriad, before *licensehav1.LicenseTriadStatus, reason string) {
	// Takeovers and loss of service are worth waking someone for.
	emitFor := r.beginTransitions(ctx, t, group.KindTriad, t.Spec.Notifications,
		EventFailingOver, EventFailedOver, EventQuorumLost)
	prev, cur := before.ActiveMember, t.Status.ActiveMember
	emit := emitFor(cur, t.Status.Epoch)
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
		case reason == group.LeaseReasonFailback || (reason == "" && roleOf(cur) == licensehav1.RolePrimary):
			emit(corev1.EventTypeNormal, EventFailedBack, "Failback", fmt.Sprintf("Primary %s serves again (epoch %d)", cur, t.Status.Epoch))
		case reason == group.LeaseReasonSwitchover || reason == group.LeaseReasonShutdown || reason == group.LeaseReasonRoleChange || reason == group.LeaseReasonUnhealthy ||
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
// falls out of sync, loses or recovers a side, or changes the serving
// server. It notifies when a side is lost or recovered, the backup takes
// over, the main serves again, and the pair loses service. It also sends a
// test notification when one was asked for (see sendTestNotification).
func (r *LicenseBackupPairReconciler) recordTransitions(ctx context.Context, p *licensehav1.LicenseBackupPair, before *licensehav1.LicenseBackupPairStatus) {
	emitFor := r.beginTransitions(ctx, p, group.KindBackupPair, p.Spec.Notifications,
		EventTookOver, EventFailedBack, EventServiceLost,
		EventMainLost, EventBackupLost, EventMainRecovered, EventBackupRecovered)
	emit := emitFor(string(p.Status.ActiveServer), 0)
	if meta.IsStatusConditionTrue(before.Conditions, licensehav1.ConditionReady) &&
		!meta.IsStatusConditionTrue(p.Status.Conditions, licensehav1.ConditionReady) {
		emit(corev1.EventTypeWarning, EventServiceLost, "Serve", "Neither server serves")
	}
	formed := before.Phase != "" && before.Phase != licensehav1.PairForming
	// A side is up while its server is ready or serving. Sides coming up
	// are news only once both were up together (the backup caught up with
	// the main at lastSyncTime): not while a new pair comes up one side
	// after the other.
	up := func(s licensehav1.PairServerStatus) bool { return s.Ready || s.Serving }
	sidesNews := formed && before.LastSyncTime != nil
	for _, side := range []struct {
		side              licensehav1.PairSide
		was, is           licensehav1.PairServerStatus
		lost, recovered   string
		lostMsg, recovMsg string
	}{
		{licensehav1.SideMain, before.Main, p.Status.Main, EventMainLost, EventMainRecovered,
			"The main is down: its server is neither ready nor serving", "The main is up again"},
		{licensehav1.SideBackup, before.Backup, p.Status.Backup, EventBackupLost, EventBackupRecovered,
			"The backup is down: its server is neither ready nor serving", "The backup is up again"},
	} {
		// A side that now runs in another cluster (spec.disconnected) left
		// on purpose: it is not lost.
		switch {
		case sidesNews && up(side.was) && !up(side.is) && !side.is.Remote:
			emitFor(string(side.side), 0)(corev1.EventTypeWarning, side.lost, "Serve", side.lostMsg)
		case sidesNews && !up(side.was) && up(side.is):
			emitFor(string(side.side), 0)(corev1.EventTypeNormal, side.recovered, "Serve", side.recovMsg)
		}
	}
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
