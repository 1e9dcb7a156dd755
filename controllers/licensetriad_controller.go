package controllers

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlbuilder "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// LicenseTriadReconciler reconciles a LicenseTriad.
type LicenseTriadReconciler struct {
	groupReconciler
}

// Reconcile moves a LicenseTriad towards its spec.
func (r *LicenseTriadReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	triad := &licensehav1.LicenseTriad{}
	if err := r.Get(ctx, req.NamespacedName, triad); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return reconcileGroup(ctx, r.Client, r.reader(), triad, groupFrame[*licensehav1.LicenseTriad]{
		dissolve: triadDissolvePlan(triad),
		kind:     "LicenseTriad",
		steps: []step[*licensehav1.LicenseTriad]{
			{"references", r.reconcileReferences},
			{"clientAccess", r.reconcileTriadClientAccess},
			{"members", r.reconcileMembers},
		},
		observed:   func() { triad.Status.ObservedGeneration = triad.Generation },
		dissolving: func() { r.forgetCleared(triad) },
		recorder:   r.Recorder,
	})
}

// triadDissolvePlan says what dissolving t keeps. All members share the
// licence Secret, so under KeepOnActive and MoveTo it stays with the kept
// member; what differs is whose volume claim survives. The active member
// is the one status last recorded.
func triadDissolvePlan(t *licensehav1.LicenseTriad) dissolvePlan {
	plan := dissolvePlan{policy: t.Spec.DissolvePolicy, storage: t.Spec.Storage != nil}
	primary := ""
	for _, m := range t.Spec.Members {
		plan.members = append(plan.members, dissolveMember{name: m.Name, licenseSecret: t.Spec.LicenseSecretRef.Name})
		if m.Role == licensehav1.RolePrimary {
			primary = m.Name
		}
	}
	plan.keepOn, plan.keepOnWhy = keepOnMember(plan.policy, t.Spec.DissolveMoveTo, t.Status.ActiveMember, primary)
	return plan
}

// reconcileReferences checks the licence Secret and the settings ConfigMap
// and records the result in LicenseValid. A missing object is not an error
// to retry: the watch on referenced objects brings the triad back as soon
// as it appears.
func (r *LicenseTriadReconciler) reconcileReferences(ctx context.Context, t *licensehav1.LicenseTriad) (ctrl.Result, error) {
	refs := []reference{{field: "spec.licenseSecretRef", name: t.Spec.LicenseSecretRef.Name, isSecret: true}}
	if t.Spec.SettingsRef != nil {
		refs = append(refs, reference{field: "spec.settingsRef", name: t.Spec.SettingsRef.Name})
	}
	found, err := fetchReferences(ctx, r.APIReader, t.Namespace, refs)
	if err != nil {
		return ctrl.Result{}, err
	}
	var settingsCM *corev1.ConfigMap
	if t.Spec.SettingsRef != nil {
		settingsCM = found[len(found)-1].configMap
	}
	r.rememberSettings(t.Namespace+"/"+t.Name,
		checkSettings(t.Generation, t.Spec.SettingsRef, settingsCM, &t.Status.Settings, &t.Status.Conditions))
	licenseCond := referencesCondition(t.Generation, found)
	var res ctrl.Result
	if licenseCond.Status == metav1.ConditionTrue {
		check := checkLicences(found[0].secret, r.Keys, t.Namespace+"/"+t.Name, time.Now())
		t.Status.Licenses = check.statuses
		licenseCond = licenceCondition(t.Generation, len(r.Keys.IDs()) > 0, "spec.licenseSecretRef", check, true)
		if !check.nextChange.IsZero() {
			// Look again when a licence expires or starts.
			res.RequeueAfter = time.Until(check.nextChange) + time.Second
		}
	}
	meta.SetStatusCondition(&t.Status.Conditions, licenseCond)
	return res, nil
}

// reconcileTriadClientAccess records ClientAccessReady (see
// reconcileClientAccess).
func (r *LicenseTriadReconciler) reconcileTriadClientAccess(ctx context.Context, t *licensehav1.LicenseTriad) (ctrl.Result, error) {
	return r.reconcileClientAccess(ctx, builder.FromTriad(t), t.Generation, &t.Status.Conditions)
}

// reconcileMembers brings up the triad's objects and pods, corrects role
// labels, and derives status from the pods and the Lease. Members need their
// licences: while LicenseValid is not True the operator writes nothing for
// the triad (no finalizer either), and it writes nothing while a deleted
// triad of the same name left objects behind, or a name the triad needs
// belongs to someone else (see prepareWrites). The members are still
// observed, so the status says what they do.
func (r *LicenseTriadReconciler) reconcileMembers(ctx context.Context, t *licensehav1.LicenseTriad) (ctrl.Result, error) {
	g := builder.FromTriad(t)
	m, err := r.beginMembers(ctx, t, g, t.Status.Conditions, t.Status.Settings, func(addresses map[string]string) group.Config {
		return builder.TriadConfig(t, addresses)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := fixRoleLabels(ctx, r.Client, m.pods, m.holder); err != nil {
		return ctrl.Result{}, err
	}
	if m.blocked == nil {
		if err := r.replaceMember(ctx, t, g, m.pods, m.have); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.reconcilePods(ctx, m); err != nil {
		return ctrl.Result{}, err
	}
	res, lease, pods, blocked := m.res, m.lease, m.pods, m.blocked
	before := t.Status.DeepCopy()
	t.Status = computeTriadStatus(t, observed{pods: pods, lease: lease, blocked: blocked, now: metav1.Now()})
	r.recordTransitions(ctx, t, before, leaseReason(lease))
	observeTriadMetrics(t)
	return res, nil
}

// replaceMember carries out the licenseha.io/replace-member annotation: the
// member's pod (and volume claim) is deleted, the pod comes back from the
// synced state on the next reconcile, and the annotation is removed so the
// request runs once. Licences are bound to the triad, so nothing is
// relicensed. Deleting an active member's pod hands the role over first.
func (r *LicenseTriadReconciler) replaceMember(ctx context.Context, t *licensehav1.LicenseTriad, g builder.Group, pods map[string]*corev1.Pod, have children) error {
	name, ok := t.Annotations[licensehav1.AnnotationReplaceMember]
	if !ok {
		return nil
	}
	log := logf.FromContext(ctx)
	if _, member := g.Member(name); member {
		if p := pods[name]; p != nil && p.DeletionTimestamp == nil {
			log.Info("Replacing member", "member", name, "pod", p.Name)
			if err := deleteExact(ctx, r.Client, p); err != nil {
				return err
			}
			delete(pods, name)
		}
		if pvc := builder.PVC(g, builder.Member{Name: name}); pvc != nil {
			// Only the triad's own claim, the one inspectChildren found.
			if f, ok := have["PersistentVolumeClaim/"+pvc.Name]; ok && !f.retained {
				pvc.UID = f.uid
				if err := deleteExact(ctx, r.Client, pvc); err != nil {
					return err
				}
			}
		}
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "ReplacingMember", "Replace", "Member %s is replaced; it starts again from the synced state", name)
	} else {
		r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "UnknownMember", "Replace", "%s names no member of the triad; ignored", licensehav1.AnnotationReplaceMember)
	}
	base := t.DeepCopy()
	delete(t.Annotations, licensehav1.AnnotationReplaceMember)
	return r.Patch(ctx, t, client.MergeFrom(base), client.FieldOwner(FieldManager))
}

// SetupWithManager registers the triad reconciler and its watches.
func (r *LicenseTriadReconciler) SetupWithManager(mgr ctrl.Manager) error {
	newList := func() client.ObjectList { return &licensehav1.LicenseTriadList{} }
	return ctrl.NewControllerManagedBy(mgr).
		For(&licensehav1.LicenseTriad{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.concurrency}).
		Named("licensetriad").
		Owns(&corev1.Pod{}).
		Owns(&corev1.Service{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&coordinationv1.Lease{}, ctrlbuilder.WithPredicates(leaseHolderChanged())).
		WatchesMetadata(&corev1.Secret{},
			handler.EnqueueRequestsFromMapFunc(referencingGroups(r.Client, indexSecretRefs, newList))).
		WatchesMetadata(&corev1.ConfigMap{},
			handler.EnqueueRequestsFromMapFunc(referencingGroups(r.Client, indexConfigMapRefs, newList))).
		Complete(r)
}
