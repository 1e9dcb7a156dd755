package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func mt(d time.Duration) *metav1.Time { t := metav1.NewTime(testNow.Add(-d)); return &t }

func testTriad() *licensehav1.LicenseTriad {
	return &licensehav1.LicenseTriad{
		ObjectMeta: metav1.ObjectMeta{Name: "plant-a", Namespace: "printing"},
		Spec: licensehav1.LicenseTriadSpec{Members: []licensehav1.TriadMember{
			{Name: "a", Role: licensehav1.RolePrimary}, {Name: "b", Role: licensehav1.RoleSecondary}, {Name: "c", Role: licensehav1.RoleTertiary}}},
		Status: licensehav1.LicenseTriadStatus{
			Phase: licensehav1.TriadDegraded, ActiveMember: "b", MembersInQuorum: 2, Quorum: "2/3", Epoch: 4,
			Members: []licensehav1.TriadMemberStatus{
				{Name: "a", Role: licensehav1.RolePrimary, Pod: "plant-a-a", State: licensehav1.MemberUnhealthy},
				{Name: "b", Role: licensehav1.RoleSecondary, Pod: "plant-a-b", PodIP: "10.0.0.2", State: licensehav1.MemberActive, Ready: true},
			},
			Licenses: []licensehav1.LicenseStatus{{ID: "LIC-0001", Product: "LabelDesigner", Edition: "Enterprise", Printers: 50,
				Expires: mt(-400 * 24 * time.Hour), Valid: true}},
			Sync: licensehav1.SyncStatus{Revision: 41, Synchronized: false, LastSyncTime: mt(12 * time.Second)},
			GroupStatus: licensehav1.GroupStatus{Failovers: 1, Conditions: []metav1.Condition{
				{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Serving", Message: "member b serves", LastTransitionTime: *mt(time.Hour)},
				{Type: "Degraded", Status: metav1.ConditionTrue, Reason: "MemberUnavailable", Message: "member a is unhealthy", LastTransitionTime: *mt(5 * time.Minute)},
			}},
		},
	}
}

func TestRenderTriad(t *testing.T) {
	g := triadStatus(testTriad())
	g.Events = groupEvents([]eventsv1.Event{
		{Regarding: corevRef("LicenseTriad", "plant-a"), Type: "Warning", Reason: "Failover", Note: "b took over from a", EventTime: metav1.NewMicroTime(testNow.Add(-5 * time.Minute))},
		{Regarding: corevRef("LicenseTriad", "other"), Type: "Normal", Reason: "Elsewhere", Note: "not ours", EventTime: metav1.NewMicroTime(testNow)},
		{Regarding: corevRef("LicenseBackupPair", "plant-a"), Type: "Normal", Reason: "OtherKind", Note: "not ours", EventTime: metav1.NewMicroTime(testNow)},
		{Regarding: corevRef("LicenseTriad", "plant-a"), Type: "Normal", Reason: "Created", Note: "created pods",
			Series: &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(testNow.Add(-time.Hour))}},
	}, g.Kind, g.Name, 10)
	var buf bytes.Buffer
	if err := renderStatus(&buf, []GroupStatus{*g}, testNow); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"LicenseTriad printing/plant-a",
		"Phase:          Degraded",
		"Active member:  b",
		"Quorum:         2/3",
		"revision 41, synchronized: no, last sync 12s ago",
		"MEMBER  ROLE       STATE      READY  POD        POD IP    ACTIVE",
		"a       Primary    Unhealthy  false  plant-a-a  -",
		"b       Secondary  Active     true   plant-a-b  10.0.0.2  *",
		"c       Tertiary   Pending    false  plant-a-c  -",
		"LIC-0001  LabelDesigner  Enterprise  50        2027-12-26  yes",
		"Degraded   True    MemberUnavailable  5m     member a is unhealthy",
		"60m (x3)  Normal   Created   created pods",
		"5m        Warning  Failover  b took over from a",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not ours") {
		t.Errorf("events of other objects shown:\n%s", out)
	}
	if strings.Index(out, "created pods") > strings.Index(out, "b took over") {
		t.Errorf("events not oldest first:\n%s", out)
	}
}

func corevRef(kind, name string) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: kind, Name: name, Namespace: "printing", APIVersion: "licenseha.io/v1alpha1"}
}

func TestRenderPair(t *testing.T) {
	p := &licensehav1.LicenseBackupPair{
		ObjectMeta: metav1.ObjectMeta{Name: "plant-b", Namespace: "printing"},
		Spec:       licensehav1.LicenseBackupPairSpec{Mode: licensehav1.ActivePassive},
		Status: licensehav1.LicenseBackupPairStatus{
			Phase: licensehav1.PairDegraded, SyncState: licensehav1.DisconnectedSynchronized, ActiveServer: licensehav1.SideBackup,
			Main:             licensehav1.PairServerStatus{Pod: "plant-b-main", Licenses: []licensehav1.LicenseStatus{{ID: "LIC-1", Edition: "Professional", Printers: 10, Valid: true}}},
			Backup:           licensehav1.PairServerStatus{Pod: "plant-b-backup", PodIP: "10.1.0.9", Ready: true, Serving: true, Licenses: []licensehav1.LicenseStatus{{ID: "LIC-101", Edition: "Professional", Printers: 5, Valid: false, Message: "expired"}}},
			UnmappedLicenses: []string{"LIC-2"},
		},
	}
	g := pairStatus(p)
	var buf bytes.Buffer
	if err := renderStatus(&buf, []GroupStatus{*g}, testNow); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"LicenseBackupPair printing/plant-b",
		"Mode:           ActivePassive",
		"Roles:          Fixed",
		"Active server:  backup",
		"Sync state:     DisconnectedSynchronized",
		"main    main    NotReady  false  plant-b-main    -",
		"backup  backup  Serving   true   plant-b-backup  10.1.0.9  *",
		"main    LIC-1",
		"backup  LIC-101",
		"no: expired",
		"Unmapped licences (their clients cannot fail over): LIC-2",
		"Conditions: none reported yet",
		"Events: none",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if g.Ready != "Unknown" || g.Active != "backup" || *g.Connected {
		t.Errorf("summary = %+v", g)
	}
}

func TestPlanSwitchover(t *testing.T) {
	members := testTriad().Spec.Members
	roles := func(ms []licensehav1.TriadMember) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Name+"="+string(m.Role))
		}
		return strings.Join(s, ",")
	}
	out, changes, err := planSwitchover(members, "b", false)
	if err != nil || roles(out) != "a=Secondary,b=Primary,c=Tertiary" || len(changes) != 2 {
		t.Fatalf("to b: %s %v %v", roles(out), changes, err)
	}
	if roles(members) != "a=Primary,b=Secondary,c=Tertiary" {
		t.Fatalf("input modified: %s", roles(members))
	}
	if _, _, err := planSwitchover(members, "c", false); err == nil || !strings.Contains(err.Error(), "Tertiary") || !strings.Contains(err.Error(), "--promote-tertiary") {
		t.Fatalf("to the tertiary: %v, want a refusal naming --promote-tertiary", err)
	}
	out, changes, err = planSwitchover(members, "c", true)
	if err != nil || roles(out) != "a=Secondary,b=Tertiary,c=Primary" || len(changes) != 3 {
		t.Fatalf("promote c: %s %v %v", roles(out), changes, err)
	}
	if _, changes, err := planSwitchover(members, "a", false); err != nil || len(changes) != 0 {
		t.Fatalf("to the primary: %v %v, want no change", changes, err)
	}
	if _, _, err := planSwitchover(members, "z", false); err == nil || !strings.Contains(err.Error(), "a, b, c") {
		t.Fatalf("unknown member: %v", err)
	}
}

// A disconnected pair's other side is shown as Remote, without a pod.
func TestRenderDisconnectedPair(t *testing.T) {
	p := &licensehav1.LicenseBackupPair{
		ObjectMeta: metav1.ObjectMeta{Name: "plant-b", Namespace: "printing"},
		Spec: licensehav1.LicenseBackupPairSpec{Mode: licensehav1.ActiveActive,
			Disconnected: &licensehav1.PairDisconnectedSpec{LocalSide: licensehav1.SideBackup}},
		Status: licensehav1.LicenseBackupPairStatus{
			Phase: licensehav1.PairActive, SyncState: licensehav1.DisconnectedSynchronized, BundleRevision: 41,
			Main:   licensehav1.PairServerStatus{Remote: true},
			Backup: licensehav1.PairServerStatus{Pod: "plant-b-backup", PodIP: "10.1.0.9", Ready: true, Serving: true},
		},
	}
	var buf bytes.Buffer
	if err := renderStatus(&buf, []GroupStatus{*pairStatus(p)}, testNow); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Sync state:  DisconnectedSynchronized",
		"main    main    Remote   false  -               -",
		"backup  backup  Serving  true   plant-b-backup  10.1.0.9  *",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}
