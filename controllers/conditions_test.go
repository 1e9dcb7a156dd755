package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// The condition helpers both kinds share, tested as the pure functions they
// are.

// TestReadyAndDegradedNeverContradict runs readyAndDegraded over every
// combination of what the members tell it and checks the rules of its
// documentation.
func TestReadyAndDegradedNeverContradict(t *testing.T) {
	blockers := map[string]*blocker{
		"none":        nil,
		"in progress": {reason: licensehav1.ReasonPredecessorLeftovers, message: "deleting leftovers"},
		"failed":      {reason: licensehav1.ReasonMemberInOtherGroup, message: "a pod belongs to another group", failed: true},
	}
	for _, serving := range []bool{false, true} {
		for _, lost := range []string{"", licensehav1.ReasonMemberUnavailable, licensehav1.ReasonVersionMismatch} {
			for bname, b := range blockers {
				h := health{serving: serving, servingMsg: "m serves", notServingMsg: "nobody serves",
					lostReason: lost, lostMsg: "lost " + lost, healthyMsg: "healthy", blocked: b}
				ready, degraded := readyAndDegraded(9, statusNow, h)
				name := map[bool]string{true: "serving", false: "not serving"}[serving] + ", lost " + lost + ", blocker " + bname

				wantReady := metav1.ConditionFalse
				if serving && b == nil {
					wantReady = metav1.ConditionTrue
				}
				wantDegraded := metav1.ConditionTrue
				if serving && lost == "" && b == nil {
					wantDegraded = metav1.ConditionFalse
				}
				var wantReadyReason, wantDegradedReason string
				switch {
				case b != nil:
					wantReadyReason = b.reason
				case serving:
					wantReadyReason = licensehav1.ReasonServing
				default:
					wantReadyReason = licensehav1.ReasonNotServing
				}
				switch {
				case !serving:
					wantDegradedReason = licensehav1.ReasonNoActiveMember
				case lost != "":
					wantDegradedReason = lost
				case b != nil:
					wantDegradedReason = b.reason
				default:
					wantDegradedReason = licensehav1.ReasonMembersHealthy
				}
				if ready.Type != licensehav1.ConditionReady || degraded.Type != licensehav1.ConditionDegraded ||
					ready.Status != wantReady || ready.Reason != wantReadyReason ||
					degraded.Status != wantDegraded || degraded.Reason != wantDegradedReason {
					t.Errorf("%s: Ready %s (%s), Degraded %s (%s); want Ready %s (%s), Degraded %s (%s)", name,
						ready.Status, ready.Reason, degraded.Status, degraded.Reason,
						wantReady, wantReadyReason, wantDegraded, wantDegradedReason)
				}
				if ready.Status == degraded.Status && ready.Status == metav1.ConditionTrue && lost == "" && serving {
					t.Errorf("%s: Ready and Degraded both True without a lost redundancy", name)
				}
				if ready.Status == metav1.ConditionFalse && degraded.Status == metav1.ConditionFalse {
					t.Errorf("%s: not ready yet not degraded", name)
				}
				for _, c := range []metav1.Condition{ready, degraded} {
					if c.ObservedGeneration != 9 || !c.LastTransitionTime.Equal(&statusNow) || c.Message == "" {
						t.Errorf("%s: %s has generation %d, time %v, message %q", name, c.Type, c.ObservedGeneration, c.LastTransitionTime, c.Message)
					}
				}
			}
		}
	}
}

func TestReferencesCondition(t *testing.T) {
	secret := func(name string, keys ...string) reference {
		s := &corev1.Secret{Data: map[string][]byte{}}
		for _, k := range keys {
			s.Data[k] = []byte("x")
		}
		return reference{field: "spec.licenseSecretRef", name: name, isSecret: true, secret: s}
	}
	missingSecret := reference{field: "spec.backup.licenseSecretRef", name: "plant-backup", isSecret: true}
	missingSettings := reference{field: "spec.settingsRef", name: "plant-settings"}
	settings := reference{field: "spec.settingsRef", name: "plant-settings", configMap: &corev1.ConfigMap{}}
	for _, tc := range []struct {
		name   string
		refs   []reference
		status metav1.ConditionStatus
		reason string
		inMsg  []string
	}{
		{name: "one Secret with two licence files", refs: []reference{secret("plant-licenses", "a.lic", "b.lic", "README")},
			status: "True", reason: licensehav1.ReasonLicensesPresent, inMsg: []string{"2 licence file(s)"}},
		{name: "two Secrets and settings", refs: []reference{secret("plant-main", "a.lic"), secret("plant-backup", "b.lic"), settings},
			status: "True", reason: licensehav1.ReasonLicensesPresent, inMsg: []string{"2 licence file(s)"}},
		{name: "a Secret is missing", refs: []reference{secret("plant-main", "a.lic"), missingSecret},
			status: "False", reason: licensehav1.ReasonSecretNotFound, inMsg: []string{`"plant-backup"`, "spec.backup.licenseSecretRef", ".lic"}},
		{name: "a Secret holds no licence file", refs: []reference{secret("plant-licenses", "license.txt")},
			status: "False", reason: licensehav1.ReasonNoLicenseFiles, inMsg: []string{`"plant-licenses"`, "no licence file"}},
		{name: "the settings ConfigMap is missing", refs: []reference{secret("plant-licenses", "a.lic"), missingSettings},
			status: "False", reason: licensehav1.ReasonSettingsNotFound, inMsg: []string{`ConfigMap "plant-settings"`, "spec.settingsRef"}},
		{name: "the first problem decides", refs: []reference{secret("plant-main"), missingSecret},
			status: "False", reason: licensehav1.ReasonNoLicenseFiles, inMsg: []string{`"plant-main"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := referencesCondition(4, tc.refs)
			if c.Type != licensehav1.ConditionLicenseValid || c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != 4 {
				t.Errorf("condition %+v, want %s %s at generation 4", c, tc.status, tc.reason)
			}
			for _, s := range tc.inMsg {
				if !strings.Contains(c.Message, s) {
					t.Errorf("message %q lacks %q", c.Message, s)
				}
			}
			if again := referencesCondition(4, tc.refs); again != c {
				t.Errorf("the condition changes between reconciles: %+v, %+v", c, again)
			}
		})
	}
}

func TestLicenceBlocker(t *testing.T) {
	if b := licenceBlocker(nil); b == nil || b.reason != licensehav1.ReasonForming || b.failed {
		t.Errorf("unchecked licences: %+v, want a Forming blocker that is no failure", b)
	}
	bad := &metav1.Condition{Type: licensehav1.ConditionLicenseValid, Status: metav1.ConditionFalse,
		Reason: licensehav1.ReasonSecretNotFound, Message: `Secret "x" does not exist`}
	if b := licenceBlocker(bad); b == nil || b.reason != licensehav1.ReasonSecretNotFound ||
		b.message != `LicenseValid: Secret "x" does not exist` {
		t.Errorf("invalid licences: %+v", b)
	}
	good := &metav1.Condition{Type: licensehav1.ConditionLicenseValid, Status: metav1.ConditionTrue, Reason: licensehav1.ReasonLicensesPresent}
	if b := licenceBlocker(good); b != nil {
		t.Errorf("valid licences block: %+v", b)
	}
}

// TestStalled: Stalled is True exactly while a failure blocks the group,
// and a condition whose status stays keeps its transition time.
func TestStalled(t *testing.T) {
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	failed := &blocker{reason: licensehav1.ReasonMemberInOtherGroup, message: "pod plant-c belongs to another group", failed: true}
	var conds []metav1.Condition
	setStalled(&conds, 1, earlier, failed)
	c := meta.FindStatusCondition(conds, licensehav1.ConditionStalled)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != failed.reason || c.Message != failed.message || c.ObservedGeneration != 1 {
		t.Fatalf("Stalled %+v, want True with the blocker's reason and message", c)
	}
	setStalled(&conds, 2, statusNow, failed)
	if c := meta.FindStatusCondition(conds, licensehav1.ConditionStalled); !c.LastTransitionTime.Equal(&earlier) || c.ObservedGeneration != 2 {
		t.Errorf("a Stalled that stays True moved its transition time to %v (generation %d)", c.LastTransitionTime, c.ObservedGeneration)
	}
	setStalled(&conds, 2, statusNow, &blocker{reason: licensehav1.ReasonPredecessorLeftovers, message: "in progress"})
	if meta.FindStatusCondition(conds, licensehav1.ConditionStalled) != nil {
		t.Error("Stalled stays while the blocker is no failure")
	}
	setStalled(&conds, 2, statusNow, failed)
	setStalled(&conds, 2, statusNow, nil)
	if len(conds) != 0 {
		t.Errorf("conditions %+v after the failure is gone, want none", conds)
	}
}
