package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/settings"
	"github.com/licenseha/licenseha/pkg/server"
)

// The settings of spec.settingsRef: the references step validates the
// ConfigMap's document and records SettingsValid and status.settings; the
// members step hands the valid settings (or, while the document is invalid,
// the last valid ones, kept in the group configuration) to the agents
// through group.Config.Settings; the status step counts the members whose
// servers run them.

// checkSettings validates the settings ConfigMap of ref (nil: none or not
// found) and updates status and conditions. It returns the valid settings,
// or nil when there are none to hand out from this document.
func checkSettings(generation int64, ref *licensehav1.LocalObjectReference, cm *corev1.ConfigMap,
	status **licensehav1.SettingsStatus, conds *[]metav1.Condition) *server.Settings {
	if ref == nil {
		*status = nil
		meta.RemoveStatusCondition(conds, licensehav1.ConditionSettingsValid)
		return nil
	}
	if cm == nil {
		// LicenseValid reports the missing ConfigMap.
		return nil
	}
	st := *status
	if st == nil || st.ConfigMap != ref.Name {
		st = &licensehav1.SettingsStatus{ConfigMap: ref.Name}
	} else {
		st = st.DeepCopy()
	}
	st.ObservedResourceVersion = cm.ResourceVersion
	*status = st
	cond := metav1.Condition{Type: licensehav1.ConditionSettingsValid, ObservedGeneration: generation}
	s, err := settings.FromConfigMap(cm)
	if err != nil {
		cond.Status, cond.Reason = metav1.ConditionFalse, licensehav1.ReasonInvalidSettings
		var se *settings.Error
		if errors.As(err, &se) {
			cond.Message = fmt.Sprintf("ConfigMap %q named by spec.settingsRef: %s", ref.Name, se.Error())
		} else {
			cond.Message = fmt.Sprintf("ConfigMap %q named by spec.settingsRef: %v", ref.Name, err)
		}
		if st.Hash != "" {
			cond.Message += "; the members keep the last valid settings (hash " + shortHash(st.Hash) + ")"
		} else {
			cond.Message += "; the members keep the settings they hold"
		}
		meta.SetStatusCondition(conds, cond)
		return nil
	}
	st.Hash = server.SettingsHash(s)
	cond.Status, cond.Reason = metav1.ConditionTrue, licensehav1.ReasonSettingsAccepted
	cond.Message = fmt.Sprintf("ConfigMap %q named by spec.settingsRef holds valid settings (hash %s)", ref.Name, shortHash(st.Hash))
	meta.SetStatusCondition(conds, cond)
	return &s
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// rememberSettings keeps the valid settings for the members step of the
// same reconcile (nil forgets them).
func (r *groupReconciler) rememberSettings(key string, s *server.Settings) {
	if r.settings == nil {
		return
	}
	if s == nil {
		r.settings.Delete(key)
		return
	}
	r.settings.Store(key, *s)
}

// groupSettings sets cfg.Settings: the settings checkSettings accepted
// (hash status.Hash), else the ones the group configuration already holds
// under that hash (the last valid settings). Nothing without settingsRef.
func (r *groupReconciler) groupSettings(ctx context.Context, g builder.Group, key string, status *licensehav1.SettingsStatus, cfg *group.Config) {
	if status == nil || status.Hash == "" {
		return
	}
	if r.settings != nil {
		if v, ok := r.settings.Load(key); ok {
			if s := v.(server.Settings); server.SettingsHash(s) == status.Hash {
				cfg.Settings, cfg.SettingsHash = &s, status.Hash
				return
			}
		}
	}
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, ctrl.ObjectKey{Namespace: g.Namespace, Name: group.ConfigName(g.Name)}, cm); err != nil {
		return
	}
	var cur group.Config
	if json.Unmarshal([]byte(cm.Data[group.ConfigKey]), &cur) == nil && cur.Settings != nil && cur.SettingsHash == status.Hash {
		cfg.Settings, cfg.SettingsHash = cur.Settings, cur.SettingsHash
	}
}

// settingsApplied fills the members that run the settings in effect:
// hashes maps each running member (with a report) to the hash its server
// runs.
func settingsApplied(st *licensehav1.SettingsStatus, hashes map[string]string) {
	if st == nil {
		return
	}
	st.AppliedMembers = nil
	for name, h := range hashes {
		if h != "" && h == st.Hash {
			st.AppliedMembers = append(st.AppliedMembers, name)
		}
	}
	sort.Strings(st.AppliedMembers)
	st.Synchronized = st.Hash != "" && len(hashes) > 0 && len(st.AppliedMembers) == len(hashes)
}
