package controllers

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// reference is one object a group reads, as found in the cluster.
type reference struct {
	// field is the spec path that names the object, for messages.
	field string
	name  string
	// secret or configMap is nil when the object does not exist; exactly
	// one of isSecret and !isSecret applies.
	isSecret  bool
	secret    *corev1.Secret
	configMap *corev1.ConfigMap
}

func (r reference) found() bool {
	if r.isSecret {
		return r.secret != nil
	}
	return r.configMap != nil
}

// licenseFileKeys lists the keys of a licence Secret that hold licence files.
func licenseFileKeys(s *corev1.Secret) []string {
	if s == nil {
		return nil
	}
	var keys []string
	for k := range s.Data {
		if strings.HasSuffix(k, licensing.FileSuffix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// referencesCondition derives the LicenseValid condition from the objects a
// group references: the first problem found decides the reason, and the
// message names the field and the object so a person knows what to create.
// Messages hold no time-varying text, so repeated reconciles write nothing.
func referencesCondition(generation int64, refs []reference) metav1.Condition {
	cond := metav1.Condition{
		Type:               licensehav1.ConditionLicenseValid,
		ObservedGeneration: generation,
	}
	licenceFiles := 0
	for _, ref := range refs {
		switch {
		case !ref.found() && ref.isSecret:
			cond.Status = metav1.ConditionFalse
			cond.Reason = licensehav1.ReasonSecretNotFound
			cond.Message = fmt.Sprintf("Secret %q named by %s does not exist; create it with the licence files (keys ending in %s)", ref.name, ref.field, licensing.FileSuffix)
			return cond
		case !ref.found():
			cond.Status = metav1.ConditionFalse
			cond.Reason = licensehav1.ReasonSettingsNotFound
			cond.Message = fmt.Sprintf("ConfigMap %q named by %s does not exist; create it or remove %s", ref.name, ref.field, ref.field)
			return cond
		case ref.isSecret:
			n := len(licenseFileKeys(ref.secret))
			if n == 0 {
				cond.Status = metav1.ConditionFalse
				cond.Reason = licensehav1.ReasonNoLicenseFiles
				cond.Message = fmt.Sprintf("Secret %q named by %s holds no licence file (no key ends in %s)", ref.name, ref.field, licensing.FileSuffix)
				return cond
			}
			licenceFiles += n
		}
	}
	cond.Status = metav1.ConditionTrue
	cond.Reason = licensehav1.ReasonLicensesPresent
	cond.Message = fmt.Sprintf("%d licence file(s) present", licenceFiles)
	return cond
}

// blocker is why a group cannot serve as specified whatever its members do:
// its licences are not usable, a deleted group of the same name left objects
// behind, or a member's pod belongs to something else. A blocker decides the
// Ready condition; the Degraded condition agrees with it.
type blocker struct {
	reason, message string
	// failed says only a change to the spec or to other objects helps:
	// the phase is Failed.
	failed bool
}

// licenceBlocker is the blocker a LicenseValid condition makes, or nil when
// the licences are usable.
func licenceBlocker(c *metav1.Condition) *blocker {
	switch {
	case c == nil:
		return &blocker{reason: licensehav1.ReasonForming, message: "The licences have not been checked yet"}
	case c.Status != metav1.ConditionTrue:
		return &blocker{reason: c.Reason, message: c.Type + ": " + c.Message}
	}
	return nil
}

// health is what both kinds tell readyAndDegraded about their members.
type health struct {
	// serving is true when a member serves clients: for a triad and an
	// ActivePassive pair the Lease holder reporting active, for an
	// ActiveActive pair either server reporting active.
	serving bool
	// servingMsg and notServingMsg say who serves, or that nobody does
	// (and why, when known).
	servingMsg, notServingMsg string
	// lostReason and lostMsg say which redundancy is missing; empty when
	// none is.
	lostReason, lostMsg string
	// healthyMsg describes full redundancy.
	healthyMsg string
	blocked    *blocker
}

// readyAndDegraded derives Ready and Degraded so that they never contradict
// each other or the members:
//   - nobody serves: Ready False (NotServing) and Degraded True
//     (NoActiveMember), whatever else is true of the members;
//   - a member serves: Ready True, and Degraded says whether redundancy is
//     lost;
//   - a blocker makes Ready False with its reason; Degraded is then True too
//     (with the blocker's reason if nothing else degrades the group), since
//     Degraded False means "serving as specified, with full redundancy".
func readyAndDegraded(generation int64, now metav1.Time, h health) (ready, degraded metav1.Condition) {
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, ObservedGeneration: generation, LastTransitionTime: now,
			Reason: reason, Message: msg}
	}
	switch {
	case !h.serving:
		ready = cond(licensehav1.ConditionReady, metav1.ConditionFalse, licensehav1.ReasonNotServing, h.notServingMsg)
		degraded = cond(licensehav1.ConditionDegraded, metav1.ConditionTrue, licensehav1.ReasonNoActiveMember, h.notServingMsg)
	case h.lostReason != "":
		ready = cond(licensehav1.ConditionReady, metav1.ConditionTrue, licensehav1.ReasonServing, h.servingMsg)
		degraded = cond(licensehav1.ConditionDegraded, metav1.ConditionTrue, h.lostReason, h.lostMsg)
	default:
		ready = cond(licensehav1.ConditionReady, metav1.ConditionTrue, licensehav1.ReasonServing, h.servingMsg)
		degraded = cond(licensehav1.ConditionDegraded, metav1.ConditionFalse, licensehav1.ReasonMembersHealthy, h.healthyMsg)
	}
	if b := h.blocked; b != nil {
		ready = cond(licensehav1.ConditionReady, metav1.ConditionFalse, b.reason, b.message)
		if degraded.Status == metav1.ConditionFalse {
			degraded = cond(licensehav1.ConditionDegraded, metav1.ConditionTrue, b.reason, b.message)
		}
	}
	return ready, degraded
}

// setStalled adds the Stalled condition while a blocker leaves the group
// Failed (only a change of spec or of other objects helps), with the
// blocker's reason and message, and removes it otherwise. kstatus (Flux)
// reads Stalled=True as a failure; Ready=False alone means "in progress".
func setStalled(conds *[]metav1.Condition, generation int64, now metav1.Time, b *blocker) {
	if b == nil || !b.failed {
		meta.RemoveStatusCondition(conds, licensehav1.ConditionStalled)
		return
	}
	setConditions(conds, now, metav1.Condition{Type: licensehav1.ConditionStalled, Status: metav1.ConditionTrue,
		ObservedGeneration: generation, Reason: b.reason, Message: b.message})
}

// setConditions sets conditions computed at now: a condition whose status
// does not change keeps its lastTransitionTime.
func setConditions(conds *[]metav1.Condition, now metav1.Time, cs ...metav1.Condition) {
	for _, c := range cs {
		c.LastTransitionTime = now
		meta.SetStatusCondition(conds, c)
	}
}

// boolCondition is a condition that is True or False with a reason and a
// message for each.
func boolCondition(generation int64, typ string, ok bool, reasonTrue, reasonFalse, msgTrue, msgFalse string) metav1.Condition {
	c := metav1.Condition{Type: typ, ObservedGeneration: generation, Status: metav1.ConditionTrue, Reason: reasonTrue, Message: msgTrue}
	if !ok {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, reasonFalse, msgFalse
	}
	return c
}

// blockedPhase is the phase a blocker leaves a group in: failed when only a
// change of spec or of other objects helps, degraded instead of active when
// the group serves but not as specified, otherwise phase.
func blockedPhase[P ~string](phase P, b *blocker, active, degraded, failed P) P {
	switch {
	case b != nil && b.failed:
		return failed
	case b != nil && phase == active:
		return degraded
	}
	return phase
}

// phases are the phases of a kind that servingPhase picks from.
type phases[P ~string] struct{ active, degraded, failed P }

// servingPhase is the phase of a group that serves, Active with full
// redundancy and Degraded without, or idle (what the kind makes of nobody
// serving); then what a blocker makes of it (blockedPhase).
func servingPhase[P ~string](serving, full bool, idle P, b *blocker, ph phases[P]) P {
	phase := idle
	switch {
	case serving && full:
		phase = ph.active
	case serving:
		phase = ph.degraded
	}
	return blockedPhase(phase, b, ph.active, ph.degraded, ph.failed)
}
