package controllers

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// The status of either kind, as pure functions of what the operator
// observes (the member pods with their agents' reports, the Lease, and what
// blocks the group): the fixtures the status tests of both kinds share
// (triad_status_test.go, pair_status_test.go), the rules that keep a status
// from contradicting itself (checkConsistent), and table tests of the small
// helpers both kinds' status is built from. None needs a cluster: run them
// with go test ./controllers/ -run 'TestPure'.

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

// withLabel, pending, deleting and unreported change a member pod.
func withRoleLabel(p *corev1.Pod, role string) *corev1.Pod {
	p.Labels[licensehav1.LabelRole] = role
	return p
}

func pendingPod(p *corev1.Pod) *corev1.Pod {
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	return p
}

func deletingPod(p *corev1.Pod) *corev1.Pod {
	p.DeletionTimestamp = &statusNow
	return p
}

func unreported(p *corev1.Pod) *corev1.Pod {
	delete(p.Annotations, group.AnnotationMemberState)
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

// steadyTriad is the pods of a steady triad: a serves, b stands by and c
// is the witness, all three in contact at revision 4.
func steadyTriad() map[string]*corev1.Pod {
	return pods(triadMember("a", group.StateActive, 4, "b", "c"), triadMember("b", group.StateStandby, 4, "a", "c"),
		triadMember("c", group.StateWitness, 4, "a", "b"))
}

func pairMember(side, state string, revision int64, version string, peers ...string) *corev1.Pod {
	return memberPod("plant", side, group.MemberState{State: state, Revision: revision, ServerVersion: version, Peers: peers})
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

// want is the part of a status the tables check.
type want struct {
	ready, degraded metav1.ConditionStatus
	readyReason     string
	degradedReason  string
	phase           string
	active          string
}

// gotWant is the part of a status the tables check.
func gotWant(conds []metav1.Condition, phase, active string) want {
	got := want{phase: phase, active: active}
	if c := meta.FindStatusCondition(conds, licensehav1.ConditionReady); c != nil {
		got.ready, got.readyReason = c.Status, c.Reason
	}
	if c := meta.FindStatusCondition(conds, licensehav1.ConditionDegraded); c != nil {
		got.degraded, got.degradedReason = c.Status, c.Reason
	}
	return got
}

// wantServing is a group where active serves (any member when ""): Ready
// True, and Degraded False with MembersHealthy, else True with
// degradedReason.
func wantServing(degradedReason, phase, active string) want {
	w := want{ready: "True", readyReason: licensehav1.ReasonServing, degraded: "True", degradedReason: degradedReason,
		phase: phase, active: active}
	if degradedReason == licensehav1.ReasonMembersHealthy {
		w.degraded = "False"
	}
	return w
}

// wantNotServing is a group nobody serves; with a blocker, Ready carries
// the blocker's reason.
func wantNotServing(b *blocker, phase string) want {
	w := want{ready: "False", readyReason: licensehav1.ReasonNotServing, degraded: "True",
		degradedReason: licensehav1.ReasonNoActiveMember, phase: phase}
	if b != nil {
		w.readyReason = b.reason
	}
	return w
}

// wantBlocked is a group that serves (active, or any member when "") but
// is blocked: Ready False with the blocker's reason, Degraded True with
// degradedReason.
func wantBlocked(b *blocker, degradedReason, phase, active string) want {
	return want{ready: "False", readyReason: b.reason, degraded: "True", degradedReason: degradedReason, phase: phase, active: active}
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

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestPureStatusIsPure: the same observations give the same status, and the
// group passed in is left as it was.
func TestPureStatusIsPure(t *testing.T) {
	in := triadInput{pods: steadyTriad(), lease: heldLease("plant-a", 2)}
	checkPure(t, "triad", statusTriad(1), func(tr *licensehav1.LicenseTriad) licensehav1.LicenseTriadStatus {
		return triadStatusOf(t, tr, in)
	})

	pin := pairInput{pods: pods(pairMember("main", group.StateActive, 5, "1.0", "backup"),
		pairMember("backup", group.StateStandby, 5, "1.0", "main")), lease: heldLease("plant-main", 1)}
	pfirst := checkPure(t, "pair", statusPair(1, licensehav1.ActivePassive), func(p *licensehav1.LicenseBackupPair) licensehav1.LicenseBackupPairStatus {
		return pairStatusOf(t, p, pin)
	})
	if pfirst.LastSyncTime == nil || !pfirst.LastSyncTime.Equal(&statusNow) {
		t.Errorf("lastSyncTime %v, want the observation time %v", pfirst.LastSyncTime, statusNow)
	}
}

// checkPure computes the status of g twice: g must be left as it was, and
// both results must be equal. It returns the first.
func checkPure[G interface{ DeepCopy() G }, S any](t *testing.T, kind string, g G, compute func(G) S) S {
	t.Helper()
	before := g.DeepCopy()
	first := compute(g)
	if !reflect.DeepEqual(g, before) {
		t.Errorf("computing the status changed the %s", kind)
	}
	if second := compute(g); !reflect.DeepEqual(first, second) {
		t.Errorf("two computations differ:\n%+v\n%+v", first, second)
	}
	return first
}

// TestPureFailoversAreCounted: a takeover is counted once, from what was
// observed, with the observation time.
func TestPureFailoversAreCounted(t *testing.T) {
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

// TestPurePodReadiness: what both kinds read from a member pod. Ready: running,
// not being deleted, and the kubelet says Ready. Failing: it can no longer
// serve (deleted, finished, or a container not running).
func TestPurePodReadiness(t *testing.T) {
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

// TestPureLeaseHolder: the holder and the fencing epoch the Lease names,
// and why the role last changed hands, as the agents record it there.
func TestPureLeaseHolder(t *testing.T) {
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
		{name: "a reason without a holder or an epoch", lease: &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
			Annotations: map[string]string{group.AnnotationLeaseReason: "Takeover"}}}, reason: "Takeover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder, epoch := leaseHolder(tc.lease)
			if holder != tc.holder || epoch != tc.epoch || leaseReason(tc.lease) != tc.reason {
				t.Errorf("holder %q epoch %d reason %q, want %q %d %q", holder, epoch, leaseReason(tc.lease), tc.holder, tc.epoch, tc.reason)
			}
		})
	}
}

func TestPureLicenseFileKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret *corev1.Secret
		want   []string
	}{
		{name: "no Secret", want: nil},
		{name: "no data", secret: &corev1.Secret{}, want: nil},
		{name: "only .lic keys, sorted", secret: &corev1.Secret{Data: map[string][]byte{
			"z.lic": nil, "a.lic": []byte("x"), "README": nil, "a.lic.bak": nil, "lic": nil, ".lic": nil, "b.LIC": nil}},
			want: []string{".lic", "a.lic", "z.lic"}},
		{name: "stringData is not read (the API server folds it into data)", secret: &corev1.Secret{StringData: map[string]string{"a.lic": "x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := licenseFileKeys(tc.secret); !slices.Equal(got, tc.want) {
				t.Errorf("keys %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPureReferenceFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		ref  reference
		want bool
	}{
		{name: "Secret present", ref: reference{isSecret: true, secret: &corev1.Secret{}}, want: true},
		{name: "Secret missing", ref: reference{isSecret: true}},
		{name: "Secret missing though a ConfigMap of the name exists", ref: reference{isSecret: true, configMap: &corev1.ConfigMap{}}},
		{name: "ConfigMap present", ref: reference{configMap: &corev1.ConfigMap{}}, want: true},
		{name: "ConfigMap missing though a Secret of the name exists", ref: reference{secret: &corev1.Secret{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ref.found(); got != tc.want {
				t.Errorf("found %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPureReferencesConditionMessages: the full messages, which tell a
// person what to create; an empty list of references is valid with zero
// files.
func TestPureReferencesConditionMessages(t *testing.T) {
	lic := func(name string, keys ...string) reference {
		s := &corev1.Secret{Data: map[string][]byte{}}
		for _, k := range keys {
			s.Data[k] = nil
		}
		return reference{field: "spec.main.licenseSecretRef", name: name, isSecret: true, secret: s}
	}
	for _, tc := range []struct {
		name        string
		refs        []reference
		status      metav1.ConditionStatus
		reason, msg string
	}{
		{name: "nothing referenced", status: "True", reason: licensehav1.ReasonLicensesPresent, msg: "0 licence file(s) present"},
		{name: "files counted across Secrets", refs: []reference{lic("m", "a.lic", "b.lic"), lic("b", "c.lic")},
			status: "True", reason: licensehav1.ReasonLicensesPresent, msg: "3 licence file(s) present"},
		{name: "missing Secret", refs: []reference{{field: "spec.licenseSecretRef", name: "plant-licenses", isSecret: true}},
			status: "False", reason: licensehav1.ReasonSecretNotFound,
			msg: `Secret "plant-licenses" named by spec.licenseSecretRef does not exist; create it with the licence files (keys ending in .lic)`},
		{name: "no licence file", refs: []reference{lic("m", "license.txt")},
			status: "False", reason: licensehav1.ReasonNoLicenseFiles,
			msg: `Secret "m" named by spec.main.licenseSecretRef holds no licence file (no key ends in .lic)`},
		{name: "missing settings after valid licences", refs: []reference{lic("m", "a.lic"), {field: "spec.settingsRef", name: "s"}},
			status: "False", reason: licensehav1.ReasonSettingsNotFound,
			msg: `ConfigMap "s" named by spec.settingsRef does not exist; create it or remove spec.settingsRef`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := referencesCondition(6, tc.refs)
			if c.Status != tc.status || c.Reason != tc.reason || c.Message != tc.msg {
				t.Errorf("got %s %s %q\nwant %s %s %q", c.Status, c.Reason, c.Message, tc.status, tc.reason, tc.msg)
			}
			if !c.LastTransitionTime.IsZero() {
				t.Errorf("transition time %v: setConditions stamps it", c.LastTransitionTime)
			}
		})
	}
}

func TestPureBoolCondition(t *testing.T) {
	for _, tc := range []struct {
		ok              bool
		status          metav1.ConditionStatus
		reason, message string
	}{
		{ok: true, status: metav1.ConditionTrue, reason: "Up", message: "all up"},
		{ok: false, status: metav1.ConditionFalse, reason: "Down", message: "one down"},
	} {
		c := boolCondition(7, "Thing", tc.ok, "Up", "Down", "all up", "one down")
		if c.Type != "Thing" || c.Status != tc.status || c.Reason != tc.reason || c.Message != tc.message || c.ObservedGeneration != 7 {
			t.Errorf("ok %v: %+v", tc.ok, c)
		}
	}
}

func TestPureBlockedPhase(t *testing.T) {
	inProgress := &blocker{reason: "R"}
	failed := &blocker{reason: "R", failed: true}
	for _, tc := range []struct {
		name    string
		phase   licensehav1.TriadPhase
		blocker *blocker
		want    licensehav1.TriadPhase
	}{
		{name: "no blocker keeps Active", phase: licensehav1.TriadActive, want: licensehav1.TriadActive},
		{name: "no blocker keeps NoQuorum", phase: licensehav1.TriadNoQuorum, want: licensehav1.TriadNoQuorum},
		{name: "a blocker makes Active Degraded", phase: licensehav1.TriadActive, blocker: inProgress, want: licensehav1.TriadDegraded},
		{name: "a blocker keeps Forming", phase: licensehav1.TriadForming, blocker: inProgress, want: licensehav1.TriadForming},
		{name: "a blocker keeps NoQuorum", phase: licensehav1.TriadNoQuorum, blocker: inProgress, want: licensehav1.TriadNoQuorum},
		{name: "a failure makes Active Failed", phase: licensehav1.TriadActive, blocker: failed, want: licensehav1.TriadFailed},
		{name: "a failure makes Forming Failed", phase: licensehav1.TriadForming, blocker: failed, want: licensehav1.TriadFailed},
		{name: "a failure makes NoQuorum Failed", phase: licensehav1.TriadNoQuorum, blocker: failed, want: licensehav1.TriadFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := blockedPhase(tc.phase, tc.blocker, licensehav1.TriadActive, licensehav1.TriadDegraded, licensehav1.TriadFailed)
			if got != tc.want {
				t.Errorf("phase %s, want %s", got, tc.want)
			}
		})
	}
	// The pair's phases, through the same function.
	if got := blockedPhase(licensehav1.PairActive, inProgress, licensehav1.PairActive, licensehav1.PairDegraded, licensehav1.PairFailed); got != licensehav1.PairDegraded {
		t.Errorf("pair phase %s, want Degraded", got)
	}
}

// TestPureSetConditions: a condition that keeps its status keeps its
// transition time; one that changes status gets the new time; other
// conditions are left alone.
func TestPureSetConditions(t *testing.T) {
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	start := func() []metav1.Condition {
		return []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Serving", LastTransitionTime: earlier, ObservedGeneration: 1},
			{Type: "LicenseValid", Status: metav1.ConditionTrue, Reason: "LicensesPresent", LastTransitionTime: earlier},
		}
	}
	for _, tc := range []struct {
		name     string
		set      metav1.Condition
		wantTime metav1.Time
	}{
		{name: "same status, new reason and generation: time kept",
			set: metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Other", ObservedGeneration: 2}, wantTime: earlier},
		{name: "status flips: new time",
			set: metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "NotServing", ObservedGeneration: 2}, wantTime: statusNow},
		{name: "a new condition: new time",
			set: metav1.Condition{Type: "Degraded", Status: metav1.ConditionFalse, Reason: "MembersHealthy"}, wantTime: statusNow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conds := start()
			setConditions(&conds, statusNow, tc.set)
			c := meta.FindStatusCondition(conds, tc.set.Type)
			if c == nil || !c.LastTransitionTime.Equal(&tc.wantTime) || c.Reason != tc.set.Reason ||
				c.Status != tc.set.Status || c.ObservedGeneration != tc.set.ObservedGeneration {
				t.Errorf("condition %+v, want %+v at %v", c, tc.set, tc.wantTime)
			}
			if lv := meta.FindStatusCondition(conds, "LicenseValid"); lv == nil || !lv.LastTransitionTime.Equal(&earlier) {
				t.Errorf("an unrelated condition changed: %+v", lv)
			}
		})
	}
}

func TestPureLowestRequeue(t *testing.T) {
	r := func(d time.Duration) ctrl.Result { return ctrl.Result{RequeueAfter: d} }
	for _, tc := range []struct {
		name string
		a, b ctrl.Result
		want time.Duration
	}{
		{name: "neither", want: 0},
		{name: "only a", a: r(time.Second), want: time.Second},
		{name: "only b", b: r(2 * time.Second), want: 2 * time.Second},
		{name: "a sooner", a: r(time.Second), b: r(time.Minute), want: time.Second},
		{name: "b sooner", a: r(time.Minute), b: r(time.Second), want: time.Second},
		{name: "equal", a: r(time.Second), b: r(time.Second), want: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lowestRequeue(tc.a, tc.b); got.RequeueAfter != tc.want {
				t.Errorf("requeue after %v, want %v", got.RequeueAfter, tc.want)
			}
		})
	}
}

// TestPureLeaseHolderChanged: renewals of the Lease cause no reconcile; a
// new holder or epoch does.
func TestPureLeaseHolderChanged(t *testing.T) {
	lease := func(holder *string, epoch string, renew int) *coordinationv1.Lease {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "plant-active", ResourceVersion: string(rune('0' + renew))}}
		if epoch != "" {
			l.Annotations = map[string]string{group.AnnotationLeaseEpoch: epoch}
		}
		l.Spec.HolderIdentity = holder
		now := metav1.NewMicroTime(statusNow.Add(time.Duration(renew) * time.Second))
		l.Spec.RenewTime = &now
		return l
	}
	a, b := ptr.To("plant-a"), ptr.To("plant-b")
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{name: "renewal", old: lease(a, "3", 1), new: lease(ptr.To("plant-a"), "3", 2)},
		{name: "new holder", old: lease(a, "3", 1), new: lease(b, "3", 2), want: true},
		{name: "same holder, new epoch", old: lease(a, "3", 1), new: lease(a, "4", 2), want: true},
		{name: "released", old: lease(a, "3", 1), new: lease(nil, "3", 2), want: true},
		{name: "first acquired", old: lease(nil, "", 1), new: lease(a, "1", 2), want: true},
		{name: "never held, renewed", old: lease(nil, "", 1), new: lease(nil, "", 2)},
		{name: "not a Lease", old: &corev1.ConfigMap{}, new: &corev1.ConfigMap{}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := event.UpdateEvent{}
			switch o := tc.old.(type) {
			case *coordinationv1.Lease:
				e.ObjectOld, e.ObjectNew = o, tc.new.(*coordinationv1.Lease)
			case *corev1.ConfigMap:
				e.ObjectOld, e.ObjectNew = o, tc.new.(*corev1.ConfigMap)
			}
			if got := leaseHolderChanged().Update(e); got != tc.want {
				t.Errorf("reconcile %v, want %v", got, tc.want)
			}
		})
	}
	p := leaseHolderChanged()
	if !p.Create(event.CreateEvent{Object: lease(a, "1", 1)}) || !p.Delete(event.DeleteEvent{Object: lease(a, "1", 1)}) {
		t.Error("a created or deleted Lease must reconcile")
	}
}
