package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	return reconcileKind(ctx, &r.groupReconciler, req, triadKind, r.reconcileReferences, r.reconcileMembers)
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
// and records the result in LicenseValid (see checkReferences).
func (r *LicenseTriadReconciler) reconcileReferences(ctx context.Context, t *licensehav1.LicenseTriad) (ctrl.Result, error) {
	return r.checkReferences(ctx, t, referenced{
		licenseSecrets: []reference{{field: "spec.licenseSecretRef", name: t.Spec.LicenseSecretRef.Name, isSecret: true}},
		spec:           &t.Spec.GroupSpec,
		status:         &t.Status.GroupStatus,
		verify: func(secrets []*corev1.Secret) (metav1.Condition, ctrl.Result) {
			check := checkLicences(secrets[0], r.Keys, t.Namespace+"/"+t.Name, time.Now())
			t.Status.Licenses = check.statuses
			var res ctrl.Result
			if !check.nextChange.IsZero() {
				// Look again when a licence expires or starts.
				res.RequeueAfter = time.Until(check.nextChange) + time.Second
			}
			return licenceCondition(t.Generation, len(r.Keys.IDs()) > 0, "spec.licenseSecretRef", check, true), res
		},
	})
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
	return setupKind(mgr, &r.groupReconciler, triadKind, r)
}
