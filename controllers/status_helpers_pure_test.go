package controllers

import (
	"slices"
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
)

// Plain table tests of the small pure helpers the status functions of both
// kinds are built from. None needs a cluster: run them with
// go test ./controllers/ -run 'TestPure'.

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

func TestPureSyncStateOf(t *testing.T) {
	for _, tc := range []struct {
		connected, synchronized bool
		want                    licensehav1.SyncState
	}{
		{true, true, licensehav1.ConnectedSynchronized},
		{true, false, licensehav1.ConnectedNotSynchronized},
		{false, true, licensehav1.DisconnectedSynchronized},
		{false, false, licensehav1.DisconnectedNotSynchronized},
	} {
		if got := syncStateOf(tc.connected, tc.synchronized); got != tc.want {
			t.Errorf("connected %v synchronized %v: %s, want %s", tc.connected, tc.synchronized, got, tc.want)
		}
	}
}

func TestPureSideLicenses(t *testing.T) {
	st := &licensehav1.LicenseBackupPairStatus{
		Main:   licensehav1.PairServerStatus{Licenses: []licensehav1.LicenseStatus{{ID: "LIC-M"}}},
		Backup: licensehav1.PairServerStatus{Licenses: []licensehav1.LicenseStatus{{ID: "LIC-B1"}, {ID: "LIC-B2"}}},
	}
	for _, tc := range []struct {
		side string
		want []string
	}{
		{side: "main", want: []string{"LIC-M"}},
		{side: "backup", want: []string{"LIC-B1", "LIC-B2"}},
	} {
		var got []string
		for _, l := range sideLicenses(st, tc.side) {
			got = append(got, l.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s licences %v, want %v", tc.side, got, tc.want)
		}
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

// TestPureLeaseReason: why the role last changed hands, as recorded on the
// Lease by the agents.
func TestPureLeaseReason(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease *coordinationv1.Lease
		want  string
	}{
		{name: "no Lease"},
		{name: "no annotations", lease: &coordinationv1.Lease{}},
		{name: "Takeover", lease: &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
			Annotations: map[string]string{group.AnnotationLeaseReason: "Takeover"}}}, want: "Takeover"},
	} {
		if got := leaseReason(tc.lease); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
	}
}
