package controllers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// computeTriadStatus, as a pure function: the phase and Ready/Degraded for
// each situation (checked against checkConsistent), the quorum, and what it
// derives for each member and for the triad. Run with
// go test ./controllers/ -run 'TestPureTriad'.

// pureTriadMember describes a member status as
// "<name>/<role>/<pod>/<ip>/<ready|notready>/<state>[/<settings hash>]".
func pureTriadMember(m licensehav1.TriadMemberStatus) string {
	ready := "notready"
	if m.Ready {
		ready = "ready"
	}
	s := fmt.Sprintf("%s/%s/%s/%s/%s/%s", m.Name, m.Role, m.Pod, m.PodIP, ready, m.State)
	if m.SettingsHash != "" {
		s += "/" + m.SettingsHash
	}
	return s
}

func TestPureTriadStatus(t *testing.T) {
	steady := steadyTriad
	cases := []struct {
		name    string
		pods    map[string]*corev1.Pod
		lease   *coordinationv1.Lease
		blocked *blocker
		want    want
	}{{
		name: "a serves, all three in contact and in sync",
		pods: steady(), lease: heldLease("plant-a", 1),
		want: wantServing(licensehav1.ReasonMembersHealthy, "Active", "a"),
	}, {
		name:  "a serves, the witness is down",
		pods:  pods(triadMember("a", group.StateActive, 4, "b"), triadMember("b", group.StateStandby, 4, "a")),
		lease: heldLease("plant-a", 1),
		want:  wantServing(licensehav1.ReasonMemberUnavailable, "Degraded", "a"),
	}, {
		name: "a role edit left nobody active: all three up, in contact and holding the same state",
		pods: pods(triadMember("a", group.StateStandby, 4, "b", "c"),
			triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 3),
		want:  wantNotServing(nil, "Degraded"),
	}, {
		name: "a reports active but b holds the Lease",
		pods: steady(), lease: heldLease("plant-b", 2),
		want: wantNotServing(nil, "Degraded"),
	}, {
		name: "the Lease holder's server crashed",
		pods: pods(crashed(triadMember("a", group.StateActive, 4, "b", "c")),
			triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		lease: heldLease("plant-a", 1),
		want:  wantNotServing(nil, "Degraded"),
	}, {
		name:  "fewer than two members in contact",
		pods:  pods(triadMember("a", group.StateFenced, 4), triadMember("b", group.StateStandby, 4)),
		lease: heldLease("plant-a", 1),
		want:  wantNotServing(nil, "NoQuorum"),
	}, {
		name: "forming: no pod runs, nobody ever held the Lease",
		pods: pods(), lease: heldLease("", 0),
		want: wantNotServing(nil, "Forming"),
	}, {
		name: "forming: no Lease yet",
		pods: pods(),
		want: wantNotServing(nil, "Forming"),
	}, {
		name: "the licence Secret is gone while a serves with full redundancy",
		pods: steady(), lease: heldLease("plant-a", 1), blocked: licenceMissing,
		want: wantBlocked(licenceMissing, licensehav1.ReasonSecretNotFound, "Degraded", "a"),
	}, {
		name: "the licence Secret is missing and nobody serves",
		pods: pods(), blocked: licenceMissing,
		want: wantNotServing(licenceMissing, "Forming"),
	}, {
		name:  "a member's pod belongs to something else, a serves",
		pods:  pods(triadMember("a", group.StateActive, 4, "b"), triadMember("b", group.StateStandby, 4, "a")),
		lease: heldLease("plant-a", 1), blocked: otherGroupsPod,
		want: wantBlocked(otherGroupsPod, licensehav1.ReasonMemberUnavailable, "Failed", "a"),
	}, {
		name: "a predecessor's pods are being deleted",
		pods: pods(), lease: heldLease("plant-a", 7), blocked: leftovers,
		want: wantNotServing(leftovers, "NoQuorum"),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			triad := statusTriad(3)
			in := triadInput{pods: tc.pods, lease: tc.lease, blocked: tc.blocked}
			st := triadStatusOf(t, triad, in)
			if got := gotWant(st.Conditions, string(st.Phase), st.ActiveMember); got != tc.want {
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

// TestPureTriadQuorum: a member counts in the quorum when another member hears
// it and it is not still joining; the quorum string, the count, the
// QuorumSatisfied condition and the phase agree.
func TestPureTriadQuorum(t *testing.T) {
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
		name:  "all three hear each other",
		pods:  steadyTriad(),
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

func TestPureTriadMembers(t *testing.T) {
	a := func() *corev1.Pod { return triadMember("a", group.StateActive, 4, "b", "c") }
	b := func() *corev1.Pod { return triadMember("b", group.StateStandby, 4, "a", "c") }
	c := func() *corev1.Pod { return triadMember("c", group.StateWitness, 4, "a", "b") }
	// memberPod gives every pod the IP 10.0.0.<len(name)>: 10.0.0.1.
	for _, tc := range []struct {
		name   string
		pods   map[string]*corev1.Pod
		lease  *coordinationv1.Lease
		want   []string
		active string
	}{{
		name: "no pods: every member pending, in the spec's order",
		pods: pods(),
		want: []string{"a/Primary/plant-a//notready/Pending", "b/Secondary/plant-b//notready/Pending", "c/Tertiary/plant-c//notready/Pending"},
	}, {
		name: "steady: the states the agents report", pods: pods(a(), b(), c()), lease: heldLease("plant-a", 1), active: "a",
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Active", "b/Secondary/plant-b/10.0.0.1/ready/Standby", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}, {
		name: "a pod not yet running: pending, whatever its old report says",
		pods: pods(a(), b(), pendingPod(c())), lease: heldLease("plant-a", 1), active: "a",
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Active", "b/Secondary/plant-b/10.0.0.1/ready/Standby", "c/Tertiary/plant-c/10.0.0.1/notready/Pending"},
	}, {
		name: "a running pod without a report: pending, with its IP and readiness",
		pods: pods(a(), unreported(b()), c()), lease: heldLease("plant-a", 1), active: "a",
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Active", "b/Secondary/plant-b/10.0.0.1/ready/Pending", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}, {
		name: "a pod labelled unhealthy by the operator: unhealthy, not active",
		pods: pods(withRoleLabel(a(), licensehav1.RoleLabelUnhealthy), b(), c()), lease: heldLease("plant-a", 1),
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Unhealthy", "b/Secondary/plant-b/10.0.0.1/ready/Standby", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}, {
		name: "a running pod being deleted: unhealthy",
		pods: pods(a(), deletingPod(b()), c()), lease: heldLease("plant-a", 1), active: "a",
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Active", "b/Secondary/plant-b/10.0.0.1/notready/Unhealthy", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}, {
		name: "a fenced member",
		pods: pods(triadMember("a", group.StateFenced, 4), b(), c()), lease: heldLease("plant-b", 2),
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Fenced", "b/Secondary/plant-b/10.0.0.1/ready/Standby", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}, {
		name: "a Lease held by a pod of another group of a similar name: nobody active",
		pods: pods(a(), b(), c()), lease: heldLease("plant-a-old", 1),
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Active", "b/Secondary/plant-b/10.0.0.1/ready/Standby", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}, {
		name: "a pod of a member no longer in the spec is ignored",
		pods: pods(a(), b(), c(), triadMember("d", group.StateStandby, 4, "a")), lease: heldLease("plant-a", 1), active: "a",
		want: []string{"a/Primary/plant-a/10.0.0.1/ready/Active", "b/Secondary/plant-b/10.0.0.1/ready/Standby", "c/Tertiary/plant-c/10.0.0.1/ready/Witness"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			st := triadStatusOf(t, statusTriad(1), triadInput{pods: tc.pods, lease: tc.lease})
			var got []string
			for _, m := range st.Members {
				got = append(got, pureTriadMember(m))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("members\n got %q\nwant %q", got, tc.want)
			}
			if st.ActiveMember != tc.active {
				t.Errorf("active %q, want %q", st.ActiveMember, tc.active)
			}
		})
	}
}

// TestPureTriadRenamedMembers: members are reported by the spec's names and
// roles, with pods <triad>-<member>.
func TestPureTriadRenamedMembers(t *testing.T) {
	tr := statusTriad(1)
	tr.Name = "press"
	tr.Spec.Members = []licensehav1.TriadMember{
		{Name: "east", Role: licensehav1.RoleSecondary}, {Name: "west", Role: licensehav1.RolePrimary}, {Name: "dr", Role: licensehav1.RoleTertiary}}
	in := triadInput{pods: pods(
		memberPod("press", "west", group.MemberState{State: group.StateActive, Revision: 2, Peers: []string{"east", "dr"}}),
		memberPod("press", "east", group.MemberState{State: group.StateStandby, Revision: 2, Peers: []string{"west", "dr"}}),
		memberPod("press", "dr", group.MemberState{State: group.StateWitness, Revision: 2, Peers: []string{"west", "east"}}),
	), lease: heldLease("press-west", 1)}
	st := triadStatusOf(t, tr, in)
	var got []string
	for _, m := range st.Members {
		got = append(got, pureTriadMember(m))
	}
	want := []string{"east/Secondary/press-east/10.0.0.4/ready/Standby", "west/Primary/press-west/10.0.0.4/ready/Active",
		"dr/Tertiary/press-dr/10.0.0.2/ready/Witness"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("members\n got %q\nwant %q", got, want)
	}
	if st.ActiveMember != "west" || st.Phase != licensehav1.TriadActive || st.Quorum != "3/3" {
		t.Errorf("active %q phase %s quorum %s", st.ActiveMember, st.Phase, st.Quorum)
	}
}

// TestPureTriadEpochAndFailovers: the epoch comes from the Lease; failovers
// are epoch-1; lastFailoverTime moves only when the epoch grows past a
// known one.
func TestPureTriadEpochAndFailovers(t *testing.T) {
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	steady := func(holder string) map[string]*corev1.Pod {
		st := func(m string) string {
			if "plant-"+m == holder {
				return group.StateActive
			}
			return group.StateStandby
		}
		return pods(triadMember("a", st("a"), 4, "b", "c"), triadMember("b", st("b"), 4, "a", "c"), triadMember("c", group.StateWitness, 4, "a", "b"))
	}
	for _, tc := range []struct {
		name         string
		prev         licensehav1.LicenseTriadStatus
		lease        *coordinationv1.Lease
		epoch        int64
		failovers    int32
		lastFailover *metav1.Time
	}{
		{name: "no Lease", epoch: 0},
		{name: "first election: no failover", lease: heldLease("plant-a", 1), epoch: 1},
		{name: "first seen at epoch 3 (operator restarted): counted, not stamped", lease: heldLease("plant-b", 3),
			epoch: 3, failovers: 2},
		{name: "takeover seen: stamped now", prev: licensehav1.LicenseTriadStatus{Epoch: 1}, lease: heldLease("plant-b", 2),
			epoch: 2, failovers: 1, lastFailover: &statusNow},
		{name: "two takeovers between reconciles", prev: licensehav1.LicenseTriadStatus{Epoch: 2, GroupStatus: licensehav1.GroupStatus{Failovers: 1}, LastFailoverTime: &earlier},
			lease: heldLease("plant-a", 4), epoch: 4, failovers: 3, lastFailover: &statusNow},
		{name: "steady: the last failover time is kept", prev: licensehav1.LicenseTriadStatus{Epoch: 4, GroupStatus: licensehav1.GroupStatus{Failovers: 3}, LastFailoverTime: &earlier},
			lease: heldLease("plant-a", 4), epoch: 4, failovers: 3, lastFailover: &earlier},
		{name: "the Lease is gone: the count is kept", prev: licensehav1.LicenseTriadStatus{Epoch: 4, GroupStatus: licensehav1.GroupStatus{Failovers: 3}, LastFailoverTime: &earlier},
			epoch: 0, failovers: 3, lastFailover: &earlier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := statusTriad(1)
			tr.Status = tc.prev
			holder, _ := leaseHolder(tc.lease)
			st := triadStatusOf(t, tr, triadInput{pods: steady(holder), lease: tc.lease})
			if st.Epoch != tc.epoch || st.Failovers != tc.failovers {
				t.Errorf("epoch %d failovers %d, want %d %d", st.Epoch, st.Failovers, tc.epoch, tc.failovers)
			}
			if (st.LastFailoverTime == nil) != (tc.lastFailover == nil) ||
				(tc.lastFailover != nil && !st.LastFailoverTime.Equal(tc.lastFailover)) {
				t.Errorf("last failover %v, want %v", st.LastFailoverTime, tc.lastFailover)
			}
		})
	}
}

// TestPureTriadConditions: every condition the triad status sets, with
// status, reason and message, for the situations that word them
// differently.
func TestPureTriadConditions(t *testing.T) {
	type cond struct {
		status          metav1.ConditionStatus
		reason, message string
	}
	quorum := cond{"True", "Quorum", "At least two members are in contact"}
	noQuorum := cond{"False", "NoQuorum", "Fewer than two members are in contact; nobody may serve"}
	inSync := cond{"True", "InSync", "Every member holds the latest state"}
	// notServing is what nobody serving sets, saying why; Synchronized
	// follows from it.
	notServing := func(why string, quorumSatisfied cond) map[string]cond {
		return map[string]cond{
			"Ready":           {"False", "NotServing", why},
			"QuorumSatisfied": quorumSatisfied,
			"Synchronized":    {"False", "OutOfSync", "No member serves, so no member holds a latest state the others could follow"},
			"Degraded":        {"True", "NoActiveMember", why},
		}
	}
	steady := steadyTriad
	for _, tc := range []struct {
		name    string
		pods    map[string]*corev1.Pod
		lease   *coordinationv1.Lease
		blocked *blocker
		want    map[string]cond
	}{{
		name: "healthy", pods: steady(), lease: heldLease("plant-a", 1),
		want: map[string]cond{
			"Ready":           {"True", "Serving", "Member a serves"},
			"QuorumSatisfied": quorum,
			"Synchronized":    inSync,
			"Degraded":        {"False", "MembersHealthy", "All three members are up, in contact and in sync"},
		},
	}, {
		name: "serving, b behind", lease: heldLease("plant-a", 1),
		pods: pods(triadMember("a", group.StateActive, 4, "b", "c"), triadMember("b", group.StateStandby, 3, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		want: map[string]cond{
			"Ready":           {"True", "Serving", "Member a serves"},
			"QuorumSatisfied": quorum,
			"Synchronized":    {"False", "OutOfSync", "A member does not hold the latest state yet"},
			"Degraded": {"True", "MemberUnavailable",
				"Serving without full redundancy: a member is down, out of contact or out of sync"},
		},
	}, {
		name: "forming", pods: pods(),
		want: notServing("No member serves yet: the triad is forming", noQuorum),
	}, {
		name: "no quorum after having served", pods: pods(triadMember("a", group.StateFenced, 4)), lease: heldLease("plant-a", 2),
		want: notServing("No member serves: fewer than two members are in contact", noQuorum),
	}, {
		name: "quorum, nobody serves", lease: heldLease("plant-a", 2),
		pods: pods(triadMember("a", group.StateStandby, 4, "b", "c"), triadMember("b", group.StateStandby, 4, "a", "c"),
			triadMember("c", group.StateWitness, 4, "a", "b")),
		want: notServing("No member serves", quorum),
	}, {
		name: "a failure blocks a healthy triad", pods: steady(), lease: heldLease("plant-a", 1), blocked: otherGroupsPod,
		want: map[string]cond{
			"Ready":           {"False", otherGroupsPod.reason, otherGroupsPod.message},
			"QuorumSatisfied": quorum,
			"Synchronized":    inSync,
			"Degraded":        {"True", otherGroupsPod.reason, otherGroupsPod.message},
			"Stalled":         {"True", otherGroupsPod.reason, otherGroupsPod.message},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			st := triadStatusOf(t, statusTriad(8), triadInput{pods: tc.pods, lease: tc.lease, blocked: tc.blocked})
			got := map[string]cond{}
			for _, c := range st.Conditions {
				got[c.Type] = cond{c.Status, c.Reason, c.Message}
				if c.ObservedGeneration != 8 || !c.LastTransitionTime.Equal(&statusNow) {
					t.Errorf("%s: generation %d, time %v", c.Type, c.ObservedGeneration, c.LastTransitionTime)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("conditions\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPureTriadKeepsOtherConditionsAndTimes: conditions other code sets
// (LicenseValid) stay, a condition whose status is unchanged keeps its
// transition time, one that changes gets the observation time; the Stalled
// condition goes once the failure is gone.
func TestPureTriadKeepsOtherConditionsAndTimes(t *testing.T) {
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	tr := statusTriad(2)
	tr.Status.Epoch = 1
	tr.Status.Conditions = []metav1.Condition{
		{Type: licensehav1.ConditionLicenseValid, Status: "True", Reason: licensehav1.ReasonLicensesPresent, LastTransitionTime: earlier},
		{Type: licensehav1.ConditionReady, Status: "True", Reason: licensehav1.ReasonServing, LastTransitionTime: earlier},
		{Type: licensehav1.ConditionQuorumSatisfied, Status: "True", Reason: licensehav1.ReasonQuorum, LastTransitionTime: earlier},
		{Type: licensehav1.ConditionSynchronized, Status: "True", Reason: licensehav1.ReasonInSync, LastTransitionTime: earlier},
		{Type: licensehav1.ConditionDegraded, Status: "False", Reason: licensehav1.ReasonMembersHealthy, LastTransitionTime: earlier},
		{Type: licensehav1.ConditionStalled, Status: "True", Reason: licensehav1.ReasonMemberInOtherGroup, LastTransitionTime: earlier},
	}
	// b fell behind: Synchronized and Degraded flip, the rest stays.
	st := triadStatusOf(t, tr, triadInput{lease: heldLease("plant-a", 1), pods: pods(
		triadMember("a", group.StateActive, 4, "b", "c"), triadMember("b", group.StateStandby, 3, "a", "c"),
		triadMember("c", group.StateWitness, 4, "a", "b"))})
	want := map[string]metav1.Time{
		licensehav1.ConditionLicenseValid:    earlier,
		licensehav1.ConditionReady:           earlier,
		licensehav1.ConditionQuorumSatisfied: earlier,
		licensehav1.ConditionSynchronized:    statusNow,
		licensehav1.ConditionDegraded:        statusNow,
	}
	got := map[string]metav1.Time{}
	for _, c := range st.Conditions {
		got[c.Type] = c.LastTransitionTime
	}
	if len(got) != len(want) {
		t.Errorf("conditions %v, want %v", keysOf(got), keysOf(want))
	}
	for typ, w := range want {
		if g, ok := got[typ]; !ok || !g.Equal(&w) {
			t.Errorf("%s transition time %v, want %v", typ, g, w)
		}
	}
	if lv := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionLicenseValid); lv.ObservedGeneration != 0 {
		t.Errorf("LicenseValid was rewritten: %+v", lv)
	}
}

// TestPureTriadSync: the revision is the active member's; the triad is
// synchronized when every member reports and none is behind the active.
func TestPureTriadSync(t *testing.T) {
	for _, tc := range []struct {
		name     string
		revs     [3]int64 // a (active), b, c
		missing  string   // a member without a pod
		synced   bool
		revision int64
	}{
		{name: "all equal", revs: [3]int64{5, 5, 5}, synced: true, revision: 5},
		{name: "a standby ahead of the active still holds the latest", revs: [3]int64{5, 6, 5}, synced: true, revision: 5},
		{name: "the witness behind", revs: [3]int64{5, 5, 4}, revision: 5},
		{name: "a member without a report", revs: [3]int64{5, 5, 5}, missing: "c", revision: 5},
		{name: "zero revisions, all equal", revs: [3]int64{0, 0, 0}, synced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := []*corev1.Pod{
				triadMember("a", group.StateActive, tc.revs[0], "b", "c"),
				triadMember("b", group.StateStandby, tc.revs[1], "a", "c"),
				triadMember("c", group.StateWitness, tc.revs[2], "a", "b"),
			}
			var ps []*corev1.Pod
			for _, p := range all {
				if !strings.HasSuffix(p.Name, "-"+tc.missing) || tc.missing == "" {
					ps = append(ps, p)
				}
			}
			st := triadStatusOf(t, statusTriad(1), triadInput{pods: pods(ps...), lease: heldLease("plant-a", 1)})
			if st.Sync.Synchronized != tc.synced || st.Sync.Revision != tc.revision {
				t.Errorf("synchronized %v at %d, want %v at %d", st.Sync.Synchronized, st.Sync.Revision, tc.synced, tc.revision)
			}
			if got := meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionSynchronized); got != tc.synced {
				t.Errorf("Synchronized condition %v, want %v", got, tc.synced)
			}
		})
	}
}

// TestPureTriadSettings: status.settings lists the members whose servers
// run the settings document's hash; synchronized when every reporting
// member does.
func TestPureTriadSettings(t *testing.T) {
	withHash := func(p *corev1.Pod, hash string) *corev1.Pod {
		r, _ := group.ParseMemberState(p.Annotations)
		r.SettingsHash = hash
		return memberPod("plant", p.Labels[licensehav1.LabelMember], r)
	}
	for _, tc := range []struct {
		name    string
		hash    string
		hashes  [3]string
		applied []string
		synced  bool
	}{
		{name: "all applied", hash: "h1", hashes: [3]string{"h1", "h1", "h1"}, applied: []string{"a", "b", "c"}, synced: true},
		{name: "one runs older settings", hash: "h2", hashes: [3]string{"h2", "h1", "h2"}, applied: []string{"a", "c"}},
		{name: "one has not reported a hash", hash: "h1", hashes: [3]string{"h1", "", "h1"}, applied: []string{"a", "c"}},
		{name: "no document hash yet", hashes: [3]string{"h1", "h1", "h1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := statusTriad(1)
			tr.Status.Settings = &licensehav1.SettingsStatus{ConfigMap: "plant-settings", Hash: tc.hash, Synchronized: !tc.synced,
				AppliedMembers: []string{"stale"}}
			ps := pods(withHash(triadMember("a", group.StateActive, 4, "b", "c"), tc.hashes[0]),
				withHash(triadMember("b", group.StateStandby, 4, "a", "c"), tc.hashes[1]),
				withHash(triadMember("c", group.StateWitness, 4, "a", "b"), tc.hashes[2]))
			st := triadStatusOf(t, tr, triadInput{pods: ps, lease: heldLease("plant-a", 1)})
			if !reflect.DeepEqual(st.Settings.AppliedMembers, tc.applied) || st.Settings.Synchronized != tc.synced {
				t.Errorf("applied %v synchronized %v, want %v %v", st.Settings.AppliedMembers, st.Settings.Synchronized, tc.applied, tc.synced)
			}
			if tr.Status.Settings.AppliedMembers[0] != "stale" {
				t.Error("the triad's own status was changed")
			}
			for i, m := range st.Members {
				if m.SettingsHash != tc.hashes[i] {
					t.Errorf("member %s settings hash %q, want %q", m.Name, m.SettingsHash, tc.hashes[i])
				}
			}
		})
	}
	// Without spec.settingsRef there is no settings status to fill.
	st := triadStatusOf(t, statusTriad(1), triadInput{pods: pods(triadMember("a", group.StateActive, 4, "b")), lease: heldLease("plant-a", 1)})
	if st.Settings != nil {
		t.Errorf("settings status %+v without settings", st.Settings)
	}
}

// TestPureTriadBlockedPhases: what a blocker does to each phase.
func TestPureTriadBlockedPhases(t *testing.T) {
	steady := steadyTriad()
	for _, tc := range []struct {
		name    string
		pods    map[string]*corev1.Pod
		lease   *coordinationv1.Lease
		blocked *blocker
		phase   licensehav1.TriadPhase
		stalled bool
	}{
		{name: "forming, in progress", pods: pods(), blocked: leftovers, phase: licensehav1.TriadForming},
		{name: "forming, failed", pods: pods(), blocked: otherGroupsPod, phase: licensehav1.TriadFailed, stalled: true},
		{name: "active, in progress", pods: steady, lease: heldLease("plant-a", 1), blocked: licenceMissing, phase: licensehav1.TriadDegraded},
		{name: "active, failed", pods: steady, lease: heldLease("plant-a", 1), blocked: otherGroupsPod, phase: licensehav1.TriadFailed, stalled: true},
		{name: "licences not checked yet", pods: steady, lease: heldLease("plant-a", 1), blocked: licenceBlocker(nil), phase: licensehav1.TriadDegraded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := triadStatusOf(t, statusTriad(1), triadInput{pods: tc.pods, lease: tc.lease, blocked: tc.blocked})
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if got := meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionStalled); got != tc.stalled {
				t.Errorf("Stalled %v, want %v", got, tc.stalled)
			}
			ready := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionReady)
			if ready.Status != metav1.ConditionFalse || ready.Reason != tc.blocked.reason {
				t.Errorf("Ready %s (%s), want False with the blocker's reason %s", ready.Status, ready.Reason, tc.blocked.reason)
			}
		})
	}
}

func TestPureMemberStandingBy(t *testing.T) {
	tr := statusTriad(1)
	tr.Status.Members = []licensehav1.TriadMemberStatus{
		{Name: "a", Ready: true, State: licensehav1.MemberStandby},
		{Name: "b", Ready: false, State: licensehav1.MemberStandby},
		{Name: "c", Ready: true, State: licensehav1.MemberWitness},
	}
	for _, tc := range []struct {
		member string
		want   bool
	}{
		{member: "a", want: true},
		{member: "b"}, // not ready: it failed rather than handing over
		{member: "c"}, // a witness is not standing by to serve
		{member: "zz"},
	} {
		if got := memberStandingBy(tr, tc.member); got != tc.want {
			t.Errorf("member %s standing by: %v, want %v", tc.member, got, tc.want)
		}
	}
}
