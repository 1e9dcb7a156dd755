package controllers

import (
	"context"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/notify"
)

// Config is what the reconcilers need from the operator's flags.
type Config struct {
	// Image is the licenseha image (agent, default server).
	Image string
	// TrustedKeys are the PEM public keys licences must be signed with.
	TrustedKeys []byte
	// OperatorNamespace is where the operator runs: groups' NetworkPolicies
	// admit metrics scrapers from it by default.
	OperatorNamespace string
	// ClusterDomain is the cluster's DNS domain (default cluster.local),
	// for the names in client certificates.
	ClusterDomain string
	// Notify says which webhook and mail targets notifications may reach.
	Notify notify.Policy
	// ExposeServerToken lets the members' license servers read their pods'
	// service-account tokens (see builder.Options).
	ExposeServerToken bool
	// MaxConcurrentReconciles is how many groups of each kind are reconciled
	// at once (at least 1). A reconcile mostly waits for the API server, so a
	// few in parallel bring many new groups up faster even on one core; one
	// group is never reconciled twice at once.
	MaxConcurrentReconciles int
	// ImagePullPolicy and ImagePullSecrets apply to the licenseha image in
	// every member pod (see builder.Options).
	ImagePullPolicy  corev1.PullPolicy
	ImagePullSecrets []string
}

// uncachedObjects are the kinds the reconcilers always read from the API
// server, never from an informer: Secrets and ConfigMaps. A typed Get of
// either through a cached client would make controller-runtime start an
// informer holding every Secret (or ConfigMap) of the watched namespaces,
// data included. The operator reads the few it needs directly, and watches
// both kinds as metadata only (see referencingGroups).
func uncachedObjects() []client.Object {
	return []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}
}

// isUncached reports whether obj is of a kind in uncachedObjects.
func isUncached(obj client.Object) bool {
	switch obj.(type) {
	case *corev1.Secret, *corev1.ConfigMap:
		return true
	}
	return false
}

// CacheOptions configures the operator's informers:
//   - Pods, Services, Leases, ServiceAccounts, PVCs, NetworkPolicies and the
//     agents' Roles and RoleBindings only when labelled
//     with a group, so memory grows with the number of groups, not with the
//     size of the cluster;
//   - Secrets and ConfigMaps as metadata only (the watches in
//     referencingGroups), with annotations and managed fields dropped: a
//     client-side `kubectl apply` leaves a Secret's data in the
//     last-applied-configuration annotation;
//   - no managed fields for anything else either;
//   - only the given namespaces when there are any (--watch-namespaces),
//     otherwise all.
func CacheOptions(namespaces ...string) cache.Options {
	req, err := labels.NewRequirement(licensehav1.LabelGroup, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	sel := labels.NewSelector().Add(*req)
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   {Label: sel},
			&corev1.Service{}:               {Label: sel},
			&coordinationv1.Lease{}:         {Label: sel},
			&corev1.ServiceAccount{}:        {Label: sel},
			&corev1.PersistentVolumeClaim{}: {Label: sel},
			&networkingv1.NetworkPolicy{}:   {Label: sel},
			&rbacv1.Role{}:                  {Label: sel},
			&rbacv1.RoleBinding{}:           {Label: sel},
			&corev1.Secret{}:                {Transform: identityOnly},
			&corev1.ConfigMap{}:             {Transform: identityOnly},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// identityOnly reduces the metadata of a Secret or ConfigMap to what the
// watches need (name, namespace, UID, resourceVersion, labels, owners)
// before it enters the cache.
func identityOnly(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.Annotations = nil
		m.ManagedFields = nil
	}
	return obj, nil
}

// Setup registers the field indexes and both reconcilers with a manager.
// The reconcilers get a client of their own that reads Secrets and
// ConfigMaps from the API server whatever the manager's client options are
// (uncachedObjects); everything else comes from the manager's cache.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("registering indexes: %w", err)
	}
	c, err := client.New(mgr.GetConfig(), client.Options{
		HTTPClient: mgr.GetHTTPClient(),
		Scheme:     mgr.GetScheme(),
		Mapper:     mgr.GetRESTMapper(),
		Cache:      &client.CacheOptions{Reader: mgr.GetCache(), DisableFor: uncachedObjects()},
	})
	if err != nil {
		return fmt.Errorf("creating the reconcilers' client: %w", err)
	}
	opts := builder.Options{Image: cfg.Image, ExposeServerToken: cfg.ExposeServerToken,
		ImagePullPolicy: cfg.ImagePullPolicy, ImagePullSecrets: cfg.ImagePullSecrets,
		OperatorNamespace: cfg.OperatorNamespace, ClusterDomain: cfg.ClusterDomain}
	var keys licensing.KeyRing
	if len(cfg.TrustedKeys) > 0 {
		if keys, err = licensing.ParseTrustedKeys(cfg.TrustedKeys); err != nil {
			return fmt.Errorf("reading the trusted licence keys: %w", err)
		}
	}
	recorder := mgr.GetEventRecorder(FieldManager)
	base := groupReconciler{
		Client:      c,
		APIReader:   mgr.GetAPIReader(),
		Cache:       mgr.GetCache(),
		Recorder:    recorder,
		notifier:    &notifier{reader: mgr.GetAPIReader(), recorder: recorder, policy: cfg.Notify},
		Options:     opts,
		TrustedKeys: cfg.TrustedKeys,
		Keys:        keys,
		cleared:     &sync.Map{},
		settings:    &sync.Map{},
		concurrency: max(1, cfg.MaxConcurrentReconciles),
	}
	if err := (&LicenseTriadReconciler{base}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LicenseTriad reconciler: %w", err)
	}
	if err := (&LicenseBackupPairReconciler{base}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LicenseBackupPair reconciler: %w", err)
	}
	return nil
}
