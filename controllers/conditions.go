package controllers

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// LicenseFileSuffix marks the keys of a licence Secret that hold licence files.
const LicenseFileSuffix = ".lic"

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
		if strings.HasSuffix(k, LicenseFileSuffix) {
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
			cond.Message = fmt.Sprintf("Secret %q named by %s does not exist; create it with the licence files (keys ending in %s)", ref.name, ref.field, LicenseFileSuffix)
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
				cond.Message = fmt.Sprintf("Secret %q named by %s holds no licence file (no key ends in %s)", ref.name, ref.field, LicenseFileSuffix)
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

// formingReadyCondition is the Ready condition of a group that does not
// serve yet, with the reason taken from the blocking condition if any.
func notReadyCondition(generation int64, blocking *metav1.Condition) metav1.Condition {
	cond := metav1.Condition{
		Type:               licensehav1.ConditionReady,
		Status:             metav1.ConditionFalse,
		ObservedGeneration: generation,
		Reason:             licensehav1.ReasonForming,
		Message:            "Members are starting",
	}
	if blocking != nil && blocking.Status == metav1.ConditionFalse {
		cond.Reason = blocking.Reason
		cond.Message = blocking.Type + ": " + blocking.Message
	}
	return cond
}
