package controllers

import (
	"fmt"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// observedTriad is everything a triad's status is derived from, besides the
// triad itself (its spec and the status it had).
type observedTriad struct {
	// pods by member name; a member without a pod is absent.
	pods  map[string]*corev1.Pod
	lease *coordinationv1.Lease
	// blocked, when set, is why the triad cannot serve as specified.
	blocked *blocker
	// now is when the observation was made: condition transitions and
	// failovers are stamped with it.
	now metav1.Time
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

func podReady(p *corev1.Pod) bool {
	if p == nil || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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

// computeTriadStatus derives the member list, the active member, the quorum,
// the failover count, the phase and the conditions of a triad from what was
// observed. It is a pure function: it reads the triad (spec, generation, the
// status it had) and obs, changes neither, and returns the new status, so a
// steady triad yields identical status and nothing is written.
func computeTriadStatus(t *licensehav1.LicenseTriad, obs observedTriad) licensehav1.LicenseTriadStatus {
	prev := &t.Status
	st := t.Status.DeepCopy()
	holder, epoch := leaseHolder(obs.lease)
	st.Epoch = epoch
	st.Members = nil
	st.ActiveMember = ""
	inQuorum := int32(0)
	var activeRevision int64
	revisions := map[string]int64{}
	settingsHashes := map[string]string{}
	// A member counts in the quorum when another member reports hearing
	// it (a frozen member's own last report would otherwise still count)
	// and it can vote, i.e. is not still joining after a start.
	heardBy := map[string]bool{}
	for _, pod := range obs.pods {
		if r, ok := group.ParseMemberState(pod.Annotations); ok && pod.Status.Phase == corev1.PodRunning && !podFailing(pod) {
			for _, p := range r.Peers {
				heardBy[p] = true
			}
		}
	}
	for _, m := range t.Spec.Members {
		pod := obs.pods[m.Name]
		ms := licensehav1.TriadMemberStatus{Name: m.Name, Role: m.Role, Pod: group.PodName(t.Name, m.Name), State: licensehav1.MemberPending}
		if pod != nil {
			ms.PodIP = pod.Status.PodIP
			ms.Ready = podReady(pod)
			report, ok := group.ParseMemberState(pod.Annotations)
			switch {
			case pod.Labels[licensehav1.LabelRole] == licensehav1.RoleLabelUnhealthy || (pod.Status.Phase == corev1.PodRunning && podFailing(pod)):
				ms.State = licensehav1.MemberUnhealthy
			case ok && pod.Status.Phase == corev1.PodRunning:
				ms.State = licensehav1.MemberState(report.State)
				if len(report.Peers) > 0 && heardBy[m.Name] && !report.Joining {
					inQuorum++
				}
				revisions[m.Name] = report.Revision
				ms.SettingsHash = report.SettingsHash
				settingsHashes[m.Name] = report.SettingsHash
				if report.State == group.StateActive && holder == pod.Name {
					st.ActiveMember = m.Name
					activeRevision = report.Revision
				}
			}
		}
		st.Members = append(st.Members, ms)
	}
	st.MembersInQuorum = inQuorum
	st.Quorum = fmt.Sprintf("%d/3", inQuorum)

	// Every takeover increments the Lease's fencing epoch, so the epoch,
	// not a count kept in status, says how many failovers happened.
	if epoch > 1 {
		st.Failovers = int32(epoch - 1)
	}
	if epoch > prev.Epoch && prev.Epoch > 0 {
		now := obs.now
		st.LastFailoverTime = &now
	}

	serving := st.ActiveMember != ""
	synced := serving
	for name, rev := range revisions {
		if name != st.ActiveMember && rev < activeRevision {
			synced = false
		}
	}
	st.Sync.Revision = activeRevision
	settingsApplied(st.Settings, settingsHashes)
	st.Sync.Synchronized = synced && len(revisions) == len(t.Spec.Members)

	gen := t.Generation
	cond := func(typ string, ok bool, reasonTrue, reasonFalse, msgTrue, msgFalse string) metav1.Condition {
		c := metav1.Condition{Type: typ, ObservedGeneration: gen, Status: metav1.ConditionTrue, Reason: reasonTrue, Message: msgTrue}
		if !ok {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, reasonFalse, msgFalse
		}
		return c
	}
	quorum := inQuorum >= 2
	full := inQuorum == 3 && st.Sync.Synchronized
	forming := epoch == 0 && holder == ""

	notSyncedMsg := "A member does not hold the latest state yet"
	notServingMsg := "No member serves"
	switch {
	case !serving && forming:
		notServingMsg = "No member serves yet: the triad is forming"
	case !serving && !quorum:
		notServingMsg = "No member serves: fewer than two members are in contact"
	}
	if !serving {
		notSyncedMsg = "No member serves, so no member holds a latest state the others could follow"
	}
	h := health{
		serving:       serving,
		servingMsg:    fmt.Sprintf("Member %s serves", st.ActiveMember),
		notServingMsg: notServingMsg,
		healthyMsg:    "All three members are up, in contact and in sync",
		blocked:       obs.blocked,
	}
	if !full {
		h.lostReason = licensehav1.ReasonMemberUnavailable
		h.lostMsg = "Serving without full redundancy: a member is down, out of contact or out of sync"
	}
	ready, degraded := readyAndDegraded(gen, obs.now, h)
	setConditions(&st.Conditions, obs.now,
		ready,
		cond(licensehav1.ConditionQuorumSatisfied, quorum, licensehav1.ReasonQuorum, licensehav1.ReasonNoQuorum,
			"At least two members are in contact", "Fewer than two members are in contact; nobody may serve"),
		cond(licensehav1.ConditionSynchronized, st.Sync.Synchronized, licensehav1.ReasonInSync, licensehav1.ReasonOutOfSync,
			"Every member holds the latest state", notSyncedMsg),
		degraded,
	)

	switch {
	case serving && full:
		st.Phase = licensehav1.TriadActive
	case serving:
		st.Phase = licensehav1.TriadDegraded
	case forming:
		// Nobody has ever served: the triad is still forming.
		st.Phase = licensehav1.TriadForming
	case !quorum:
		st.Phase = licensehav1.TriadNoQuorum
	default:
		st.Phase = licensehav1.TriadDegraded
	}
	switch {
	case obs.blocked != nil && obs.blocked.failed:
		st.Phase = licensehav1.TriadFailed
	case obs.blocked != nil && st.Phase == licensehav1.TriadActive:
		// Serving, but not as specified.
		st.Phase = licensehav1.TriadDegraded
	}
	setStalled(&st.Conditions, gen, obs.now, obs.blocked)
	return *st
}
