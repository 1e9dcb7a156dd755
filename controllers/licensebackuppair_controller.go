package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// LicenseBackupPairReconciler reconciles a LicenseBackupPair.
type LicenseBackupPairReconciler struct {
	client.Client
	// APIReader reads referenced Secrets and ConfigMaps uncached.
	APIReader client.Reader
	Recorder  events.EventRecorder
}

type pairStep struct {
	name string
	fn   func(ctx context.Context, p *licensehav1.LicenseBackupPair) (ctrl.Result, error)
}

// +kubebuilder:rbac:groups=licenseha.io,resources=licensebackuppairs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=licenseha.io,resources=licensebackuppairs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=licenseha.io,resources=licensebackuppairs/finalizers,verbs=update

// Reconcile moves a LicenseBackupPair towards its spec.
func (r *LicenseBackupPairReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	log := logf.FromContext(ctx)
	pair := &licensehav1.LicenseBackupPair{}
	if err := r.Get(ctx, req.NamespacedName, pair); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !pair.DeletionTimestamp.IsZero() {
		log.Info("Dissolving backup pair", "dissolvePolicy", pair.Spec.DissolvePolicy)
		return ctrl.Result{}, dissolve(ctx, r.Client, pair, pair.Spec.DissolvePolicy,
			[]string{pair.Spec.Main.LicenseSecretRef.Name, pair.Spec.Backup.LicenseSecretRef.Name})
	}
	if err := ensureFinalizer(ctx, r.Client, pair); err != nil {
		return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
	}

	before := pair.DeepCopy()
	defer func() {
		if err := patchStatus(ctx, r.Client, before, pair); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, fmt.Errorf("patching status: %w", err)})
		}
	}()

	steps := []pairStep{
		{"references", r.reconcileReferences},
	}
	for _, step := range steps {
		res, err := step.fn(ctx, pair)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("step %s: %w", step.name, err)
		}
		if !res.IsZero() {
			return res, nil
		}
	}
	pair.Status.ObservedGeneration = pair.Generation
	return ctrl.Result{}, nil
}

// reconcileReferences checks both licence Secrets and the settings ConfigMap.
func (r *LicenseBackupPairReconciler) reconcileReferences(ctx context.Context, p *licensehav1.LicenseBackupPair) (ctrl.Result, error) {
	refs := []reference{
		{field: "spec.main.licenseSecretRef", name: p.Spec.Main.LicenseSecretRef.Name, isSecret: true},
		{field: "spec.backup.licenseSecretRef", name: p.Spec.Backup.LicenseSecretRef.Name, isSecret: true},
	}
	if p.Spec.SettingsRef != nil {
		refs = append(refs, reference{field: "spec.settingsRef", name: p.Spec.SettingsRef.Name})
	}
	found, err := fetchReferences(ctx, r.APIReader, p.Namespace, refs)
	if err != nil {
		return ctrl.Result{}, err
	}
	licenseCond := referencesCondition(p.Generation, found)
	meta.SetStatusCondition(&p.Status.Conditions, licenseCond)

	if p.Status.Phase == "" || p.Status.Phase == licensehav1.PairForming || licenseCond.Status != metav1.ConditionTrue {
		p.Status.Phase = licensehav1.PairForming
		p.Status.SyncState = licensehav1.DisconnectedNotSynchronized
		meta.SetStatusCondition(&p.Status.Conditions, notReadyCondition(p.Generation, &licenseCond))
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the pair reconciler and its watches.
func (r *LicenseBackupPairReconciler) SetupWithManager(mgr ctrl.Manager) error {
	newList := func() client.ObjectList { return &licensehav1.LicenseBackupPairList{} }
	return ctrl.NewControllerManagedBy(mgr).
		For(&licensehav1.LicenseBackupPair{}).
		Named("licensebackuppair").
		WatchesMetadata(&corev1.Secret{},
			handler.EnqueueRequestsFromMapFunc(referencingGroups(mgr.GetClient(), indexSecretRefs, newList))).
		WatchesMetadata(&corev1.ConfigMap{},
			handler.EnqueueRequestsFromMapFunc(referencingGroups(mgr.GetClient(), indexConfigMapRefs, newList))).
		Complete(r)
}
