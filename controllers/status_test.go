package controllers

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// These tests feed the status functions what the operator observes (the
// member pods with their agents' reports, the Lease, and what blocks the
// group) and check the conditions and the phase they derive. Every case is
// also checked against the rules that keep a status from contradicting
// itself (checkConsistent).

var statusNow = metav1.NewTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))

// statusTriad and statusPair are the shared fixtures ns/plant at a
// generation.
func statusTriad(generation int64) *licensehav1.LicenseTriad {
	t := testfixtures.Triad("ns", "plant")
	t.Generation = generation
	return t
}

func statusPair(generation int64, mode licensehav1.PairMode) *licensehav1.LicenseBackupPair {
	p := testfixtures.Pair("ns", "plant")
	p.Generation, p.Spec.Mode = generation, mode
	return p
}

// memberPod is a running, ready member pod whose agent reports r.
func memberPod(groupName, member string, r group.MemberState) *corev1.Pod {
	raw, _ := json.Marshal(r)
	role := licensehav1.RoleLabelStandby
	if r.State == group.StateActive {
		role = licensehav1.RoleLabelActive
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: group.PodName(groupName, member),
			Labels:      map[string]string{licensehav1.LabelMember: member, licensehav1.LabelRole: role},
			Annotations: map[string]string{group.AnnotationMemberState: string(raw)}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0." + strconv.Itoa(len(member)),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "server", Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
}

// crashed is a member pod whose server container is not running.
func crashed(p *corev1.Pod) *corev1.Pod {
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	return p
}

func heldLease(holder string, epoch int) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Annotations: map[string]string{group.AnnotationLeaseEpoch: strconv.Itoa(epoch)}}}
	if holder != "" {
		l.Spec.HolderIdentity = ptr.To(holder)
	}
	return l
}

func pods(ps ...*corev1.Pod) map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	for _, p := range ps {
		out[p.Labels[licensehav1.LabelMember]] = p
	}
	return out
}

var (
	licenceMissing = &blocker{reason: licensehav1.ReasonSecretNotFound,
		message: `LicenseValid: Secret "plant-licenses" named by spec.licenseSecretRef does not exist`}
	otherGroupsPod = &blocker{reason: licensehav1.ReasonMemberInOtherGroup,
		message: "Pods plant-c exist but do not belong to this group", failed: true}
	leftovers = &blocker{reason: licensehav1.ReasonPredecessorLeftovers,
		message: "Deleting what the deleted LicenseTriad plant left behind: Pod plant-a"}
)

func triadMember(name, state string, revision int64, peers ...string) *corev1.Pod {
	return memberPod("plant", name, group.MemberState{State: state, Revision: revision, Peers: peers})
}

// want is the part of a status the tables check.
type want struct {
	ready, degraded metav1.ConditionStatus
	readyReason     string
	degradedReason  string
	phase           string
	active          string
}

func TestTriadStatus(t *testing.T) {
	steady := func() map[string]*corev1.Pod {
		return pods(triadMember("a", group.StateActive, 4, "b", "c"),
			triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b"))
	}
	cases := []struct {
		name    string
		pods    map[string]*corev1.Pod
		lease   *coordinationv1.Lease
		blocked *blocker
		want    want
	}{{
		name: "a serves, all three in contact and in sync",
		pods: steady(), lease: heldLease("plant-a", 1),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "False",
			degradedReason: licensehav1.ReasonMembersHealthy, phase: "Active", active: "a"},
	}, {
		name:  "a serves, the witness is down",
		pods:  pods(triadMember("a", group.StateActive, 4, "b"), triadMember("b", group.StateStandby, 4, "a")),
		lease: heldLease("plant-a", 1),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "True",
			degradedReason: licensehav1.ReasonMemberUnavailable, phase: "Degraded", active: "a"},
	}, {
		name: "a role edit left nobody active: all three up, in contact and holding the same state",
		pods: pods(triadMember("a", group.StateStandby, 4, "b", "c"),
			triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 3),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name: "a reports active but b holds the Lease",
		pods: steady(), lease: heldLease("plant-b", 2),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name: "the Lease holder's server crashed",
		pods: pods(crashed(triadMember("a", group.StateActive, 4, "b", "c")),
			triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 1),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name:  "fewer than two members in contact",
		pods:  pods(triadMember("a", group.StateFenced, 4), triadMember("b", group.StateStandby, 4)),
		lease: heldLease("plant-a", 1),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "NoQuorum"},
	}, {
		name: "forming: no pod runs, nobody ever held the Lease",
		pods: pods(), lease: heldLease("", 0),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Forming"},
	}, {
		name: "forming: no Lease yet",
		pods: pods(),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Forming"},
	}, {
		name: "the licence Secret is gone while a serves with full redundancy",
		pods: steady(), lease: heldLease("plant-a", 1), blocked: licenceMissing,
		want: want{ready: "False", readyReason: licensehav1.ReasonSecretNotFound, degraded: "True",
			degradedReason: licensehav1.ReasonSecretNotFound, phase: "Degraded", active: "a"},
	}, {
		name: "the licence Secret is missing and nobody serves",
		pods: pods(), blocked: licenceMissing,
		want: want{ready: "False", readyReason: licensehav1.ReasonSecretNotFound, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Forming"},
	}, {
		name:  "a member's pod belongs to something else, a serves",
		pods:  pods(triadMember("a", group.StateActive, 4, "b"), triadMember("b", group.StateStandby, 4, "a")),
		lease: heldLease("plant-a", 1), blocked: otherGroupsPod,
		want: want{ready: "False", readyReason: licensehav1.ReasonMemberInOtherGroup, degraded: "True",
			degradedReason: licensehav1.ReasonMemberUnavailable, phase: "Failed", active: "a"},
	}, {
		name: "a predecessor's pods are being deleted",
		pods: pods(), lease: heldLease("plant-a", 7), blocked: leftovers,
		want: want{ready: "False", readyReason: licensehav1.ReasonPredecessorLeftovers, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "NoQuorum"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			triad := statusTriad(3)
			in := triadInput{pods: tc.pods, lease: tc.lease, blocked: tc.blocked}
			st := triadStatusOf(t, triad, in)
			got := want{phase: string(st.Phase), active: st.ActiveMember}
			if c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionReady); c != nil {
				got.ready, got.readyReason = c.Status, c.Reason
			}
			if c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded); c != nil {
				got.degraded, got.degradedReason = c.Status, c.Reason
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			checkConsistent(t, st.Conditions, st.ActiveMember != "", string(st.Phase), "Active")
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 3 {
					t.Errorf("%s: observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

func pairMember(side, state string, revision int64, version string, peers ...string) *corev1.Pod {
	return memberPod("plant", side, group.MemberState{State: state, Revision: revision, ServerVersion: version, Peers: peers})
}

func TestPairStatus(t *testing.T) {
	const (
		aa = licensehav1.ActiveActive
		ap = licensehav1.ActivePassive
	)
	main := func(state string, peers ...string) *corev1.Pod { return pairMember("main", state, 5, "1.0", peers...) }
	backup := func(state string, peers ...string) *corev1.Pod {
		return pairMember("backup", state, 5, "1.0", peers...)
	}
	cases := []struct {
		name      string
		mode      licensehav1.PairMode
		pods      map[string]*corev1.Pod
		lease     *coordinationv1.Lease
		blocked   *blocker
		prevPhase licensehav1.PairPhase
		prevSide  licensehav1.PairSide
		want      want
	}{{
		name: "ActiveActive: both serve, connected and in sync", mode: aa,
		pods: pods(main(group.StateActive, "backup"), backup(group.StateActive, "main")),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "False",
			degradedReason: licensehav1.ReasonMembersHealthy, phase: "Active"},
	}, {
		name: "ActiveActive: both serve, disconnected", mode: aa,
		pods: pods(main(group.StateActive), backup(group.StateActive)),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "True",
			degradedReason: licensehav1.ReasonMemberUnavailable, phase: "Degraded"},
	}, {
		name: "ActiveActive: the backup is down", mode: aa,
		pods: pods(main(group.StateActive)),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "True",
			degradedReason: licensehav1.ReasonMemberUnavailable, phase: "Degraded"},
	}, {
		name: "ActiveActive: different server versions", mode: aa,
		pods: pods(main(group.StateActive, "backup"), pairMember("backup", group.StateActive, 5, "1.1", "main")),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "True",
			degradedReason: licensehav1.ReasonVersionMismatch, phase: "Degraded"},
	}, {
		name: "ActiveActive: neither serves though both are up, connected and in sync", mode: aa,
		pods: pods(main(group.StateStandby, "backup"), backup(group.StateStandby, "main")), prevPhase: "Active",
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name: "ActiveActive: both servers crashed", mode: aa, prevPhase: "Active",
		pods: pods(crashed(main(group.StateActive, "backup")), crashed(backup(group.StateActive, "main"))),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name: "ActiveActive: forming, no pod runs", mode: aa, pods: pods(),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Forming"},
	}, {
		name: "ActivePassive: the main holds the Lease and serves", mode: ap,
		pods:  pods(main(group.StateActive, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("plant-main", 1),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "False",
			degradedReason: licensehav1.ReasonMembersHealthy, phase: "Active", active: "main"},
	}, {
		name: "ActivePassive: the backup took over from the main", mode: ap, prevPhase: "Active", prevSide: "main",
		pods:  pods(backup(group.StateActive)),
		lease: heldLease("plant-backup", 2),
		want: want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "True",
			degradedReason: licensehav1.ReasonMemberUnavailable, phase: "Degraded", active: "backup"},
	}, {
		name: "ActivePassive: the main reports active but nobody holds the Lease", mode: ap, prevPhase: "Active",
		pods:  pods(main(group.StateActive, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("", 1),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name: "ActivePassive: both stand by, connected and in sync", mode: ap, prevPhase: "Active",
		pods:  pods(main(group.StateStandby, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("plant-main", 1),
		want: want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Degraded"},
	}, {
		name: "ActivePassive: a licence Secret is gone while the main serves with full redundancy", mode: ap,
		prevPhase: "Active", blocked: licenceMissing,
		pods:  pods(main(group.StateActive, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("plant-main", 1),
		want: want{ready: "False", readyReason: licensehav1.ReasonSecretNotFound, degraded: "True",
			degradedReason: licensehav1.ReasonSecretNotFound, phase: "Degraded", active: "main"},
	}, {
		name: "ActiveActive: the backup's pod belongs to something else", mode: aa, blocked: otherGroupsPod,
		pods: pods(main(group.StateActive)),
		want: want{ready: "False", readyReason: licensehav1.ReasonMemberInOtherGroup, degraded: "True",
			degradedReason: licensehav1.ReasonMemberUnavailable, phase: "Failed"},
	}, {
		name: "ActivePassive: a predecessor's pods are being deleted", mode: ap, blocked: leftovers, pods: pods(),
		want: want{ready: "False", readyReason: licensehav1.ReasonPredecessorLeftovers, degraded: "True",
			degradedReason: licensehav1.ReasonNoActiveMember, phase: "Forming"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(2, tc.mode)
			p.Status = licensehav1.LicenseBackupPairStatus{Phase: tc.prevPhase, ActiveServer: tc.prevSide}
			st := pairStatusOf(t, p, pairInput{pods: tc.pods, lease: tc.lease, blocked: tc.blocked})
			got := want{phase: string(st.Phase), active: string(st.ActiveServer)}
			if c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionReady); c != nil {
				got.ready, got.readyReason = c.Status, c.Reason
			}
			if c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded); c != nil {
				got.degraded, got.degradedReason = c.Status, c.Reason
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			serving := st.Main.Serving || st.Backup.Serving
			if tc.mode == ap && serving != (st.ActiveServer != "") {
				t.Errorf("a server serves (main %v, backup %v) but activeServer is %q", st.Main.Serving, st.Backup.Serving, st.ActiveServer)
			}
			checkConsistent(t, st.Conditions, serving, string(st.Phase), "Active")
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 2 {
					t.Errorf("%s: observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

// checkConsistent holds every status to the rules that keep it from
// contradicting itself: nobody serving is never healthy.
func checkConsistent(t *testing.T, conds []metav1.Condition, serving bool, phase, activePhase string) {
	t.Helper()
	ready := meta.FindStatusCondition(conds, licensehav1.ConditionReady)
	degraded := meta.FindStatusCondition(conds, licensehav1.ConditionDegraded)
	if ready == nil || degraded == nil {
		t.Fatalf("Ready and Degraded must both be reported: %+v", conds)
	}
	if !serving && ready.Status != metav1.ConditionFalse {
		t.Errorf("nobody serves, yet Ready is %s (%s)", ready.Status, ready.Reason)
	}
	if !serving && (degraded.Status != metav1.ConditionTrue || degraded.Reason != licensehav1.ReasonNoActiveMember) {
		t.Errorf("nobody serves, yet Degraded is %s (%s: %s)", degraded.Status, degraded.Reason, degraded.Message)
	}
	if degraded.Status == metav1.ConditionFalse && ready.Status != metav1.ConditionTrue {
		t.Errorf("Degraded is False (%s) while Ready is %s (%s)", degraded.Reason, ready.Status, ready.Reason)
	}
	healthy := ready.Status == metav1.ConditionTrue && degraded.Status == metav1.ConditionFalse
	if (phase == activePhase) != healthy {
		t.Errorf("phase %s with Ready %s and Degraded %s", phase, ready.Status, degraded.Status)
	}
	// Stalled (kstatus' failure) is reported exactly in phase Failed.
	if stalled := meta.IsStatusConditionTrue(conds, licensehav1.ConditionStalled); stalled != (phase == "Failed") {
		t.Errorf("phase %s with Stalled %v", phase, stalled)
	}
	for _, c := range conds {
		if c.LastTransitionTime.IsZero() || c.Reason == "" {
			t.Errorf("condition %s lacks a transition time or a reason: %+v", c.Type, c)
		}
	}
}

// TestStatusIsPure: the same observations give the same status, and the
// group passed in is left as it was.
func TestStatusIsPure(t *testing.T) {
	triad := statusTriad(1)
	in := triadInput{pods: pods(triadMember("a", group.StateActive, 4, "b", "c"),
		triadMember("b", group.StateStandby, 4, "a", "c"), triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 2)}
	before := triad.DeepCopy()
	first := triadStatusOf(t, triad, in)
	if !reflect.DeepEqual(triad, before) {
		t.Errorf("computing the status changed the triad")
	}
	if second := triadStatusOf(t, triad, in); !reflect.DeepEqual(first, second) {
		t.Errorf("two computations differ:\n%+v\n%+v", first, second)
	}

	pair := statusPair(1, licensehav1.ActivePassive)
	pin := pairInput{pods: pods(pairMember("main", group.StateActive, 5, "1.0", "backup"),
		pairMember("backup", group.StateStandby, 5, "1.0", "main")), lease: heldLease("plant-main", 1)}
	pbefore := pair.DeepCopy()
	pfirst := pairStatusOf(t, pair, pin)
	if !reflect.DeepEqual(pair, pbefore) {
		t.Errorf("computing the status changed the pair")
	}
	if psecond := pairStatusOf(t, pair, pin); !reflect.DeepEqual(pfirst, psecond) {
		t.Errorf("two computations differ:\n%+v\n%+v", pfirst, psecond)
	}
	if pfirst.LastSyncTime == nil || !pfirst.LastSyncTime.Equal(&statusNow) {
		t.Errorf("lastSyncTime %v, want the observation time %v", pfirst.LastSyncTime, statusNow)
	}
}

// TestFailoversAreCounted: a takeover is counted once, from what was
// observed, with the observation time.
func TestFailoversAreCounted(t *testing.T) {
	triad := statusTriad(0)
	triad.Status = licensehav1.LicenseTriadStatus{Epoch: 1, ActiveMember: "a"}
	st := triadStatusOf(t, triad, triadInput{pods: pods(triadMember("b", group.StateActive, 4, "c"),
		triadMember("c", group.StateWitness, 4, "b")), lease: heldLease("plant-b", 2)})
	if st.ActiveMember != "b" || st.Failovers != 1 || st.LastFailoverTime == nil || !st.LastFailoverTime.Equal(&statusNow) {
		t.Errorf("triad after a takeover: active %q, failovers %d, last failover %v", st.ActiveMember, st.Failovers, st.LastFailoverTime)
	}

	pair := statusPair(0, licensehav1.ActivePassive)
	pair.Status = licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairActive, ActiveServer: licensehav1.SideMain}
	in := pairInput{pods: pods(pairMember("backup", group.StateActive, 5, "1.0")), lease: heldLease("plant-backup", 2)}
	pair.Status = pairStatusOf(t, pair, in)
	pair.Status = pairStatusOf(t, pair, in)
	if pair.Status.ActiveServer != licensehav1.SideBackup || pair.Status.Failovers != 1 {
		t.Errorf("pair after a takeover: active %q, failovers %d; want backup, 1", pair.Status.ActiveServer, pair.Status.Failovers)
	}
}

// triadInput and pairInput are the observations of one case; now is always
// statusNow.
type triadInput struct {
	pods    map[string]*corev1.Pod
	lease   *coordinationv1.Lease
	blocked *blocker
}

type pairInput = triadInput

func triadStatusOf(_ *testing.T, t *licensehav1.LicenseTriad, in triadInput) licensehav1.LicenseTriadStatus {
	return computeTriadStatus(t, observed{pods: in.pods, lease: in.lease, blocked: in.blocked, now: statusNow})
}

func pairStatusOf(_ *testing.T, p *licensehav1.LicenseBackupPair, in pairInput) licensehav1.LicenseBackupPairStatus {
	return computePairStatus(p, observed{pods: in.pods, lease: in.lease, blocked: in.blocked, now: statusNow})
}

// TestTriadQuorum: a member counts in the quorum when another member hears
// it and it is not still joining; the quorum string, the count, the
// QuorumSatisfied condition and the phase agree.
func TestTriadQuorum(t *testing.T) {
	joining := func(p *corev1.Pod) *corev1.Pod {
		var r group.MemberState
		_ = json.Unmarshal([]byte(p.Annotations[group.AnnotationMemberState]), &r)
		r.Joining = true
		raw, _ := json.Marshal(r)
		p.Annotations[group.AnnotationMemberState] = string(raw)
		return p
	}
	cases := []struct {
		name     string
		pods     map[string]*corev1.Pod
		lease    *coordinationv1.Lease
		quorum   string
		in       int32
		phase    licensehav1.TriadPhase
		synced   bool
		states   []licensehav1.MemberState
		revision int64
	}{{
		name: "all three hear each other",
		pods: pods(triadMember("a", group.StateActive, 4, "b", "c"), triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 1), quorum: "3/3", in: 3, phase: licensehav1.TriadActive, synced: true, revision: 4,
		states: []licensehav1.MemberState{licensehav1.MemberActive, licensehav1.MemberStandby, licensehav1.MemberWitness},
	}, {
		name: "b lags behind a's state",
		pods: pods(triadMember("a", group.StateActive, 4, "b", "c"), triadMember("b", group.StateStandby, 3, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 1), quorum: "3/3", in: 3, phase: licensehav1.TriadDegraded, revision: 4,
		states: []licensehav1.MemberState{licensehav1.MemberActive, licensehav1.MemberStandby, licensehav1.MemberWitness},
	}, {
		name: "c is still joining after a restart",
		pods: pods(triadMember("a", group.StateActive, 4, "b", "c"), triadMember("b", group.StateStandby, 4, "a", "c"),
			joining(triadMember("c", group.StateWitness, 4, "a", "b"))),
		lease: heldLease("plant-a", 1), quorum: "2/3", in: 2, phase: licensehav1.TriadDegraded, synced: true, revision: 4,
		states: []licensehav1.MemberState{licensehav1.MemberActive, licensehav1.MemberStandby, licensehav1.MemberWitness},
	}, {
		name: "c reports hearing a and b, but nobody hears c (a frozen last report)",
		pods: pods(triadMember("a", group.StateActive, 4, "b"), triadMember("b", group.StateStandby, 4, "a"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 1), quorum: "2/3", in: 2, phase: licensehav1.TriadDegraded, synced: true, revision: 4,
		states: []licensehav1.MemberState{licensehav1.MemberActive, licensehav1.MemberStandby, licensehav1.MemberWitness},
	}, {
		name: "the active crashed: its report no longer counts",
		pods: pods(crashed(triadMember("a", group.StateActive, 4, "b", "c")), triadMember("b", group.StateStandby, 4, "c"),
			triadMember("c", group.StateWitness, 4, "b")),
		lease: heldLease("plant-a", 1), quorum: "2/3", in: 2, phase: licensehav1.TriadDegraded,
		states: []licensehav1.MemberState{licensehav1.MemberUnhealthy, licensehav1.MemberStandby, licensehav1.MemberWitness},
	}, {
		name:  "one member alone",
		pods:  pods(triadMember("a", group.StateFenced, 4)),
		lease: heldLease("plant-a", 2), quorum: "0/3", in: 0, phase: licensehav1.TriadNoQuorum,
		states: []licensehav1.MemberState{licensehav1.MemberFenced, licensehav1.MemberPending, licensehav1.MemberPending},
	}, {
		name: "forming: no pod reports yet", pods: pods(), quorum: "0/3", in: 0, phase: licensehav1.TriadForming,
		states: []licensehav1.MemberState{licensehav1.MemberPending, licensehav1.MemberPending, licensehav1.MemberPending},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := triadStatusOf(t, statusTriad(5), triadInput{pods: tc.pods, lease: tc.lease})
			if st.Quorum != tc.quorum || st.MembersInQuorum != tc.in || st.Phase != tc.phase ||
				st.Sync.Synchronized != tc.synced || st.Sync.Revision != tc.revision {
				t.Errorf("quorum %s (%d), phase %s, synchronized %v at %d; want %s (%d), %s, %v at %d",
					st.Quorum, st.MembersInQuorum, st.Phase, st.Sync.Synchronized, st.Sync.Revision,
					tc.quorum, tc.in, tc.phase, tc.synced, tc.revision)
			}
			var states []licensehav1.MemberState
			for i, m := range st.Members {
				states = append(states, m.State)
				if want := "plant-" + testfixtures.TriadMembers[i]; m.Name != testfixtures.TriadMembers[i] || m.Pod != want {
					t.Errorf("member %d is %s (pod %s), want %s", i, m.Name, m.Pod, want)
				}
			}
			if !reflect.DeepEqual(states, tc.states) {
				t.Errorf("member states %v, want %v", states, tc.states)
			}
			q := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionQuorumSatisfied)
			if q == nil || (q.Status == metav1.ConditionTrue) != (tc.in >= 2) {
				t.Errorf("QuorumSatisfied %+v with %d members in quorum", q, tc.in)
			}
			s := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionSynchronized)
			if s == nil || (s.Status == metav1.ConditionTrue) != tc.synced {
				t.Errorf("Synchronized %+v, want %v", s, tc.synced)
			}
			checkConsistent(t, st.Conditions, st.ActiveMember != "", string(st.Phase), "Active")
		})
	}
}

// TestPairSyncState: the pair's four sync states follow from the two agents'
// reports; the Connected and Synchronized conditions agree with them.
func TestPairSyncState(t *testing.T) {
	member := func(side string, rev, filesRev int64, peers ...string) *corev1.Pod {
		return memberPod("plant", side, group.MemberState{State: group.StateActive, Revision: rev, FilesRevision: filesRev,
			ServerVersion: "1.0", Peers: peers})
	}
	for _, tc := range []struct {
		name      string
		pods      map[string]*corev1.Pod
		syncPaths bool
		want      licensehav1.SyncState
	}{
		{name: "connected, the backup holds the main's revision",
			pods: pods(member("main", 5, 0, "backup"), member("backup", 5, 0, "main")), want: licensehav1.ConnectedSynchronized},
		{name: "connected, the backup lags",
			pods: pods(member("main", 6, 0, "backup"), member("backup", 5, 0, "main")), want: licensehav1.ConnectedNotSynchronized},
		{name: "disconnected after syncing",
			pods: pods(member("main", 5, 0), member("backup", 5, 0)), want: licensehav1.DisconnectedSynchronized},
		{name: "the backup is down",
			pods: pods(member("main", 5, 0)), want: licensehav1.DisconnectedNotSynchronized},
		{name: "with sync paths, the files lag", syncPaths: true,
			pods: pods(member("main", 5, 3, "backup"), member("backup", 5, 2, "main")), want: licensehav1.ConnectedNotSynchronized},
		{name: "without sync paths, files are not compared",
			pods: pods(member("main", 5, 3, "backup"), member("backup", 5, 2, "main")), want: licensehav1.ConnectedSynchronized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, licensehav1.ActiveActive)
			if tc.syncPaths {
				p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "labels"}}
			}
			st := pairStatusOf(t, p, pairInput{pods: tc.pods})
			if st.SyncState != tc.want {
				t.Errorf("sync state %s, want %s", st.SyncState, tc.want)
			}
			connected := tc.want == licensehav1.ConnectedSynchronized || tc.want == licensehav1.ConnectedNotSynchronized
			synced := tc.want == licensehav1.ConnectedSynchronized || tc.want == licensehav1.DisconnectedSynchronized
			if st.Connected != connected || meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionConnected) != connected ||
				st.Synchronized != synced || meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionSynchronized) != synced {
				t.Errorf("connected %v, synchronized %v, conditions %+v", st.Connected, st.Synchronized, st.Conditions)
			}
			if synced != (st.LastSyncTime != nil) {
				t.Errorf("lastSyncTime %v with synchronized %v", st.LastSyncTime, synced)
			}
		})
	}
}
