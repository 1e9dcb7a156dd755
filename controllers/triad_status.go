package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// computeTriadStatus derives the member list, the active member, the quorum,
// the failover count, the phase and the conditions of a triad from what was
// observed. It is a pure function: it reads the triad (spec, generation, the
// status it had) and obs, changes neither, and returns the new status, so a
// steady triad yields identical status and nothing is written.
func computeTriadStatus(t *licensehav1.LicenseTriad, obs observed) licensehav1.LicenseTriadStatus {
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
	versions := map[string]string{}
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
			ms.Ready = group.PodReady(pod)
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
				ms.Version = report.ServerVersion
				versions[m.Name] = report.ServerVersion
				if report.State == group.StateActive && holder == pod.Name {
					st.ActiveMember = m.Name
					activeRevision = report.Revision
				}
			}
		}
		st.Members = append(st.Members, ms)
	}
	st.MembersInQuorum = inQuorum
	st.ClientPort, st.Endpoint = clientEndpoint(t.Namespace, group.ServiceName(t.Name), t.Spec.Server.Port)
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
	// The tertiary never serves, so only the primary and the secondary can
	// take over from the active member.
	var takeover []string
	for _, m := range t.Spec.Members {
		if m.Role != licensehav1.RoleTertiary {
			takeover = append(takeover, m.Name)
		}
	}
	mismatch := versionMismatch(versions, st.ActiveMember, takeover,
		"A rolling upgrade replaces the standby members first and the active one last (after a switchover)")
	switch {
	case mismatch != "":
		full = false
		h.lostReason = licensehav1.ReasonVersionMismatch
		h.lostMsg = mismatch
	case !full:
		h.lostReason = licensehav1.ReasonMemberUnavailable
		h.lostMsg = "Serving without full redundancy: a member is down, out of contact or out of sync"
	}
	ready, degraded := readyAndDegraded(gen, obs.now, h)
	setConditions(&st.Conditions, obs.now,
		ready,
		boolCondition(gen, licensehav1.ConditionQuorumSatisfied, quorum, licensehav1.ReasonQuorum, licensehav1.ReasonNoQuorum,
			"At least two members are in contact", "Fewer than two members are in contact; nobody may serve"),
		boolCondition(gen, licensehav1.ConditionSynchronized, st.Sync.Synchronized, licensehav1.ReasonInSync, licensehav1.ReasonOutOfSync,
			"Every member holds the latest state", notSyncedMsg),
		degraded,
	)

	idle := licensehav1.TriadDegraded
	switch {
	case forming:
		// Nobody has ever served: the triad is still forming.
		idle = licensehav1.TriadForming
	case !quorum:
		idle = licensehav1.TriadNoQuorum
	}
	st.Phase = servingPhase(serving, full, idle, obs.blocked,
		phases[licensehav1.TriadPhase]{licensehav1.TriadActive, licensehav1.TriadDegraded, licensehav1.TriadFailed})
	setStalled(&st.Conditions, gen, obs.now, obs.blocked)
	return *st
}
