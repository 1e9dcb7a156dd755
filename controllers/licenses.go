package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// licenceCheck is the verification of the licence files of one Secret.
type licenceCheck struct {
	statuses []licensehav1.LicenseStatus
	// valid are the licences that verified.
	valid []*licensing.License
	// problems name each refused file with its reason.
	problems []string
	// wrongGroup is true when a file is bound to another group.
	wrongGroup bool
	// nextChange is when a valid licence expires or a future one starts,
	// so the group is reconciled again then; zero when none.
	nextChange time.Time
}

// checkLicences verifies every licence file of a Secret against the trusted
// keys and the group it must be bound to, the way the license servers do
// (licensing.VerifyFiles, which also refuses a licence present twice).
func checkLicences(s *corev1.Secret, keys licensing.KeyRing, group string, now time.Time) licenceCheck {
	var c licenceCheck
	soonest := func(t time.Time) {
		if t.After(now) && (c.nextChange.IsZero() || t.Before(c.nextChange)) {
			c.nextChange = t
		}
	}
	files := map[string][]byte{}
	for _, key := range licenseFileKeys(s) {
		files[key] = s.Data[key]
	}
	for _, r := range licensing.VerifyFiles(files, keys, group, now) {
		st := licensehav1.LicenseStatus{ID: r.Name, Valid: r.Err == nil}
		if l := r.License; l != nil {
			// Terms are shown whenever the signature checks out, also for a
			// refused licence (expired, bound elsewhere, not valid yet).
			st.ID, st.Product, st.Edition, st.Printers = l.ID, l.Product, string(l.Edition), int32(l.Printers)
			exp := metav1.NewTime(l.NotAfter)
			st.Expires = &exp
			soonest(l.NotBefore)
		}
		if r.Err != nil {
			st.Message = r.Err.Error()
			c.problems = append(c.problems, fmt.Sprintf("%s: %v", r.Name, r.Err))
			c.wrongGroup = c.wrongGroup || errors.Is(r.Err, licensing.ErrWrongGroup)
		} else {
			c.valid = append(c.valid, r.License)
			soonest(r.License.NotAfter)
		}
		c.statuses = append(c.statuses, st)
	}
	return c
}

// hasEnterprise says whether a verified Enterprise licence is among them.
func (c licenceCheck) hasEnterprise() bool {
	for _, l := range c.valid {
		if l.Edition == licensing.EditionEnterprise {
			return true
		}
	}
	return false
}

// licenceCondition turns the checks of a group's Secrets into LicenseValid.
// needEnterprise is the rule of the kind: a triad needs an Enterprise
// licence, a pair needs one on at least one side (checked by the caller).
func licenceCondition(generation int64, hasKeys bool, field string, c licenceCheck, needEnterprise bool) metav1.Condition {
	cond := metav1.Condition{Type: licensehav1.ConditionLicenseValid, ObservedGeneration: generation, Status: metav1.ConditionFalse}
	switch {
	case !hasKeys:
		cond.Reason = licensehav1.ReasonLicenseInvalid
		cond.Message = "The operator has no trusted licence-signing keys (--trusted-keys-file), so no licence can be verified"
	case c.wrongGroup && len(c.valid) == 0:
		cond.Reason = licensehav1.ReasonWrongGroup
		cond.Message = fmt.Sprintf("Licences in %s are bound to another group: %s", field, strings.Join(c.problems, "; "))
	case len(c.valid) == 0:
		cond.Reason = licensehav1.ReasonLicenseInvalid
		cond.Message = fmt.Sprintf("No licence in %s verifies: %s", field, strings.Join(c.problems, "; "))
	case needEnterprise && !c.hasEnterprise():
		cond.Reason = licensehav1.ReasonEditionNotAllowed
		cond.Message = fmt.Sprintf("A triad needs an Enterprise licence; %s holds none that verifies", field)
	default:
		cond.Status = metav1.ConditionTrue
		cond.Reason = licensehav1.ReasonLicensesPresent
		cond.Message = fmt.Sprintf("%d licence(s) verified", len(c.valid))
		if len(c.problems) > 0 {
			cond.Message += fmt.Sprintf("; refused: %s", strings.Join(c.problems, "; "))
		}
	}
	return cond
}
