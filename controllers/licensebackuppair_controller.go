package controllers

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// LicenseBackupPairReconciler reconciles a LicenseBackupPair.
type LicenseBackupPairReconciler struct {
	groupReconciler
}

// Reconcile moves a LicenseBackupPair towards its spec.
func (r *LicenseBackupPairReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileKind(ctx, &r.groupReconciler, req, pairKind, r.reconcileReferences, r.reconcileMembers)
}

// pairDissolvePlan says what dissolving p keeps. Under KeepOnActive the
// side that serves keeps its licences: in ActivePassive the active server,
// in ActiveActive (both serve) the main unless only the backup serves, as
// status last recorded; the main when neither serves.
func pairDissolvePlan(p *licensehav1.LicenseBackupPair) dissolvePlan {
	plan := dissolvePlan{policy: p.Spec.DissolvePolicy, storage: p.Spec.Storage != nil, members: []dissolveMember{
		{name: string(licensehav1.SideMain), licenseSecret: p.Spec.Main.LicenseSecretRef.Name},
		{name: string(licensehav1.SideBackup), licenseSecret: p.Spec.Backup.LicenseSecretRef.Name},
	}}
	active := string(p.Status.ActiveServer)
	if p.Spec.Mode != licensehav1.ActivePassive {
		switch {
		case p.Status.Main.Serving:
			active = string(licensehav1.SideMain)
		case p.Status.Backup.Serving:
			active = string(licensehav1.SideBackup)
		}
	}
	plan.keepOn, plan.keepOnWhy = keepOnMember(plan.policy, string(p.Spec.DissolveMoveTo), active, string(licensehav1.SideMain))
	if plan.keepOnWhy == "no member served, so the primary" {
		plan.keepOnWhy = "neither side served, so the main"
	}
	return plan
}

// reconcileReferences checks both licence Secrets and the settings ConfigMap
// and records the result in LicenseValid (see checkReferences).
func (r *LicenseBackupPairReconciler) reconcileReferences(ctx context.Context, p *licensehav1.LicenseBackupPair) (ctrl.Result, error) {
	return r.checkReferences(ctx, p, referenced{
		licenseSecrets: []reference{
			{field: "spec.main.licenseSecretRef", name: p.Spec.Main.LicenseSecretRef.Name, isSecret: true},
			{field: "spec.backup.licenseSecretRef", name: p.Spec.Backup.LicenseSecretRef.Name, isSecret: true},
		},
		spec:   &p.Spec.GroupSpec,
		status: &p.Status.GroupStatus,
		verify: func(secrets []*corev1.Secret) (metav1.Condition, ctrl.Result) {
			return r.verifyLicences(p, secrets[0], secrets[1])
		},
	})
}

// verifyLicences checks both sides' licences: each must verify for this
// pair, at least one side must hold an Enterprise licence, and mapped ids
// must exist. Unmapped licences are listed, since their clients cannot fail
// over.
func (r *LicenseBackupPairReconciler) verifyLicences(p *licensehav1.LicenseBackupPair, mainSecret, backupSecret *corev1.Secret) (metav1.Condition, ctrl.Result) {
	groupKey := p.Namespace + "/" + p.Name
	now := time.Now()
	mainCheck := checkLicences(mainSecret, r.Keys, groupKey, now)
	backupCheck := checkLicences(backupSecret, r.Keys, groupKey, now)
	p.Status.Main.Licenses, p.Status.Backup.Licenses = mainCheck.statuses, backupCheck.statuses
	var res ctrl.Result
	for _, t := range []time.Time{mainCheck.nextChange, backupCheck.nextChange} {
		if !t.IsZero() {
			res = lowestRequeue(res, ctrl.Result{RequeueAfter: time.Until(t) + time.Second})
		}
	}
	hasKeys := len(r.Keys.IDs()) > 0
	for _, side := range []struct {
		field string
		check licenceCheck
	}{{"spec.main.licenseSecretRef", mainCheck}, {"spec.backup.licenseSecretRef", backupCheck}} {
		if cond := licenceCondition(p.Generation, hasKeys, side.field, side.check, false); cond.Status != metav1.ConditionTrue {
			return cond, res
		}
	}
	cond := metav1.Condition{Type: licensehav1.ConditionLicenseValid, ObservedGeneration: p.Generation,
		Status: metav1.ConditionTrue, Reason: licensehav1.ReasonLicensesPresent,
		Message: fmt.Sprintf("%d main and %d backup licence(s) verified", len(mainCheck.valid), len(backupCheck.valid))}
	if !mainCheck.hasEnterprise() && !backupCheck.hasEnterprise() {
		cond.Status, cond.Reason = metav1.ConditionFalse, licensehav1.ReasonEditionNotAllowed
		cond.Message = "A backup pair needs an Enterprise licence on at least one side; neither holds one that verifies"
		return cond, res
	}
	ids := func(c licenceCheck) map[string]bool {
		out := map[string]bool{}
		for _, l := range c.valid {
			out[l.ID] = true
		}
		return out
	}
	mainIDs, backupIDs := ids(mainCheck), ids(backupCheck)
	var missing []string
	mapped := map[string]bool{}
	for _, m := range p.Spec.LicenseMappings {
		if !mainIDs[m.Main] {
			missing = append(missing, "main "+m.Main)
		}
		if !backupIDs[m.Backup] {
			missing = append(missing, "backup "+m.Backup)
		}
		mapped[m.Main], mapped[m.Backup] = true, true
	}
	p.Status.UnmappedLicenses = nil
	for _, set := range []map[string]bool{mainIDs, backupIDs} {
		for id := range set {
			if !mapped[id] {
				p.Status.UnmappedLicenses = append(p.Status.UnmappedLicenses, id)
			}
		}
	}
	sort.Strings(p.Status.UnmappedLicenses)
	if len(missing) > 0 {
		sort.Strings(missing)
		cond.Status, cond.Reason = metav1.ConditionFalse, licensehav1.ReasonLicenseInvalid
		cond.Message = fmt.Sprintf("spec.licenseMappings names licences no side holds: %s", strings.Join(missing, ", "))
	}
	return cond, res
}

// reconcileMembers brings up the pair's objects and pods and derives
// status. While LicenseValid is not True, a deleted pair of the same name
// left objects behind, or a name the pair needs belongs to someone else,
// nothing is written (see prepareWrites), but the servers are still
// observed.
func (r *LicenseBackupPairReconciler) reconcileMembers(ctx context.Context, p *licensehav1.LicenseBackupPair) (ctrl.Result, error) {
	g := builder.FromPair(p)
	m, err := r.beginMembers(ctx, p, g, p.Status.Conditions, p.Status.Settings, func(addresses map[string]string) group.Config {
		return builder.PairConfig(p, addresses)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if p.Spec.Mode == licensehav1.ActivePassive {
		if err := fixRoleLabels(ctx, r.Client, m.pods, m.holder); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.reconcilePods(ctx, m); err != nil {
		return ctrl.Result{}, err
	}
	res, lease, pods, blocked := m.res, m.lease, m.pods, m.blocked
	obs := observed{pods: pods, lease: lease, blocked: blocked, now: metav1.Now()}
	if p.Spec.Disconnected != nil {
		if obs.bundleRevision, err = r.bundleRevision(ctx, p); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := p.Status.DeepCopy()
	p.Status = computePairStatus(p, obs)
	r.recordTransitions(ctx, p, before)
	observePairMetrics(p)
	return res, nil
}

// bundleRevision reads, for a disconnected pair, the revision of the last
// settings bundle exported from this cluster (local side main) or imported
// into it (local side backup) from the annotations kubectl licenseha backup
// export/import leave on the ConfigMap <pair>-state; 0 when there is none
// yet. ConfigMaps are not cached, so it is read from the API server.
func (r *LicenseBackupPairReconciler) bundleRevision(ctx context.Context, p *licensehav1.LicenseBackupPair) (int64, error) {
	cm := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: group.StateName(p.Name)}, cm)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	key := group.AnnotationExportedBundleRevision
	if p.Spec.Disconnected.LocalSide == licensehav1.SideBackup {
		key = group.AnnotationImportedBundleRevision
	}
	rev, _ := strconv.ParseInt(cm.Annotations[key], 10, 64)
	return max(rev, 0), nil
}

// SetupWithManager registers the pair reconciler and its watches.
func (r *LicenseBackupPairReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return setupKind(mgr, &r.groupReconciler, pairKind, r)
}
