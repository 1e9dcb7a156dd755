package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0}, {"1.9", "1.10", -1}, {"v2.0.1", "2.0.0", 1}, {"1.0", "1.0.1", -1},
		{"2024.1", "2023.4", 1}, {"1.0-rc1", "1.0-rc2", -1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := compareVersions(c.b, c.a); got != -c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func TestVersionMismatchMessage(t *testing.T) {
	if msg := versionMismatch(map[string]string{"a": "1.0", "b": "1.0", "c": ""}, "a", []string{"a", "b"}, ""); msg != "" {
		t.Fatalf("same versions (and an unknown one) must not mismatch: %q", msg)
	}
	msg := versionMismatch(map[string]string{"a": "2.0", "b": "1.0", "c": "1.0"}, "a", []string{"a", "b"}, "hint")
	for _, want := range []string{"a runs 2.0, b runs 1.0, c runs 1.0", "A failover would move clients from a (2.0) to an older server: b (1.0)", ". hint"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "c (1.0)") {
		t.Errorf("the tertiary never takes over, so it is no failover target: %q", msg)
	}
	msg = versionMismatch(map[string]string{"a": "1.0", "b": "2.0"}, "a", []string{"a", "b"}, "")
	if strings.Contains(msg, "older server") {
		t.Errorf("a failover to a newer member is the upgrade order, not a warning: %q", msg)
	}
}

func TestTriadStatusVersionMismatch(t *testing.T) {
	tr := statusTriad(1)
	ps := pods(
		memberPod("plant", "a", group.MemberState{State: group.StateActive, Revision: 4, Peers: []string{"b", "c"}, ServerVersion: "2.0"}),
		memberPod("plant", "b", group.MemberState{State: group.StateStandby, Revision: 4, Peers: []string{"a", "c"}, ServerVersion: "1.0"}),
		memberPod("plant", "c", group.MemberState{State: group.StateWitness, Revision: 4, Peers: []string{"a", "b"}, ServerVersion: "2.0"}),
	)
	st := computeTriadStatus(tr, observed{pods: ps, lease: heldLease("plant-a", 1), now: statusNow})
	deg := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded)
	if deg == nil || deg.Reason != licensehav1.ReasonVersionMismatch || deg.Status != "True" {
		t.Fatalf("Degraded %+v", deg)
	}
	if !strings.Contains(deg.Message, "b runs 1.0") || !strings.Contains(deg.Message, "to an older server: b (1.0)") {
		t.Fatalf("message %q", deg.Message)
	}
	if st.Phase != licensehav1.TriadDegraded {
		t.Fatalf("phase %s", st.Phase)
	}
	if st.Members[1].Version != "1.0" || st.Members[0].Version != "2.0" {
		t.Fatalf("member versions %+v", st.Members)
	}
	if st.ClientPort != 5160 || st.Endpoint != "plant.ns.svc:5160" {
		t.Fatalf("endpoint %d %q", st.ClientPort, st.Endpoint)
	}
}

func TestPairStatusWarnsOfAWrongUpgradeOrder(t *testing.T) {
	p := statusPair(1, licensehav1.ActiveActive)
	p.Spec.Server.Port = 7000
	ps := pods(
		memberPod("plant", "main", group.MemberState{State: group.StateActive, Revision: 5, Peers: []string{"backup"}, ServerVersion: "1.1"}),
		memberPod("plant", "backup", group.MemberState{State: group.StateActive, Revision: 5, Peers: []string{"main"}, ServerVersion: "1.0"}),
	)
	st := computePairStatus(p, observed{pods: ps, now: statusNow})
	deg := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded)
	if deg == nil || deg.Reason != licensehav1.ReasonVersionMismatch || !strings.Contains(deg.Message, "The main is newer than the backup") {
		t.Fatalf("Degraded %+v", deg)
	}
	if st.ClientPort != 7000 || st.Endpoint != "plant.ns.svc:7000" {
		t.Fatalf("endpoint %d %q", st.ClientPort, st.Endpoint)
	}
	ps["backup"] = memberPod("plant", "backup", group.MemberState{State: group.StateActive, Revision: 5, Peers: []string{"main"}, ServerVersion: "1.2"})
	st = computePairStatus(p, observed{pods: ps, now: statusNow})
	deg = meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded)
	if deg == nil || deg.Reason != licensehav1.ReasonVersionMismatch || strings.Contains(deg.Message, "newer than the backup") ||
		!strings.Contains(deg.Message, "Upgrade the backup first") {
		t.Fatalf("backup upgraded first: Degraded %+v", deg)
	}
}

func TestDissolvePlans(t *testing.T) {
	tr := statusTriad(1)
	tr.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
	tr.Status.ActiveMember = "b"
	if p := triadDissolvePlan(tr); p.keepOn != "b" || p.keepOnWhy != "the active member" || len(p.licenseSecrets("b")) != 0 {
		t.Fatalf("triad KeepOnActive %+v, deletable %v", p, p.licenseSecrets("b"))
	}
	tr.Status.ActiveMember = ""
	if p := triadDissolvePlan(tr); p.keepOn != "a" {
		t.Fatalf("triad KeepOnActive without an active member must keep the primary: %+v", p)
	}
	tr.Spec.DissolvePolicy = licensehav1.DissolveRetain
	if p := triadDissolvePlan(tr); p.keepOn != "" {
		t.Fatalf("Retain keeps on no member: %+v", p)
	}
	if p := triadDissolvePlan(tr); strings.Join(p.licenseSecrets(""), ",") != "plant-licenses" {
		t.Fatalf("Delete would delete %v", p.licenseSecrets(""))
	}

	pr := statusPair(1, licensehav1.ActiveActive)
	pr.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
	pr.Status.Backup.Serving = true
	p := pairDissolvePlan(pr)
	if p.keepOn != "backup" || strings.Join(p.licenseSecrets(p.keepOn), ",") != pr.Spec.Main.LicenseSecretRef.Name {
		t.Fatalf("ActiveActive, only the backup serves: %+v, deletable %v", p, p.licenseSecrets(p.keepOn))
	}
	pr.Status.Main.Serving = true
	if p := pairDissolvePlan(pr); p.keepOn != "main" {
		t.Fatalf("ActiveActive, both serve: the main keeps: %+v", p)
	}
	pr = statusPair(1, licensehav1.ActivePassive)
	pr.Spec.DissolvePolicy = licensehav1.DissolveKeepOnActive
	pr.Status.ActiveServer = licensehav1.SideBackup
	if p := pairDissolvePlan(pr); p.keepOn != "backup" {
		t.Fatalf("ActivePassive, the backup serves: %+v", p)
	}
	pr.Status.ActiveServer = ""
	if p := pairDissolvePlan(pr); p.keepOn != "main" || p.keepOnWhy != "neither side served, so the main" {
		t.Fatalf("ActivePassive, nobody serves: %+v", p)
	}
	pr.Spec.DissolvePolicy, pr.Spec.DissolveMoveTo = licensehav1.DissolveMoveTo, licensehav1.SideBackup
	pr.Status.ActiveServer = licensehav1.SideMain
	if p := pairDissolvePlan(pr); p.keepOn != "backup" || p.keepOnWhy != "named by spec.dissolveMoveTo" {
		t.Fatalf("MoveTo backup: %+v", p)
	}
	// A pair whose sides share a Secret never deletes the kept side's.
	pr.Spec.Main.LicenseSecretRef.Name = pr.Spec.Backup.LicenseSecretRef.Name
	if p := pairDissolvePlan(pr); len(p.licenseSecrets(p.keepOn)) != 0 {
		t.Fatalf("shared Secret deletable: %v", p.licenseSecrets(p.keepOn))
	}
}
