package controllers

import (
	"context"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/pkg/licensing"
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
}

// CacheOptions restricts the operator's informers for Pods, Services,
// Leases, NetworkPolicies and the agents' objects to objects labelled with a group, so the operator's memory grows
// with the number of groups, not with the size of the cluster.
func CacheOptions() cache.Options {
	req, err := labels.NewRequirement(licensehav1.LabelGroup, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	sel := labels.NewSelector().Add(*req)
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   {Label: sel},
		&corev1.Service{}:               {Label: sel},
		&coordinationv1.Lease{}:         {Label: sel},
		&corev1.ServiceAccount{}:        {Label: sel},
		&corev1.PersistentVolumeClaim{}: {Label: sel},
		&networkingv1.NetworkPolicy{}:   {Label: sel},
	}}
}

// Setup registers the field indexes and both reconcilers with a manager.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("registering indexes: %w", err)
	}
	opts := builder.Options{Image: cfg.Image, OperatorNamespace: cfg.OperatorNamespace, ClusterDomain: cfg.ClusterDomain}
	var keys licensing.KeyRing
	if len(cfg.TrustedKeys) > 0 {
		var err error
		if keys, err = licensing.ParseTrustedKeys(cfg.TrustedKeys); err != nil {
			return fmt.Errorf("reading the trusted licence keys: %w", err)
		}
	}
	recorder := mgr.GetEventRecorder("licenseha-operator")
	base := groupReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    recorder,
		notifier:    &notifier{reader: mgr.GetAPIReader(), recorder: recorder},
		Options:     opts,
		TrustedKeys: cfg.TrustedKeys,
		Keys:        keys,
		cleared:     &sync.Map{},
	}
	if err := (&LicenseTriadReconciler{base}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LicenseTriad reconciler: %w", err)
	}
	if err := (&LicenseBackupPairReconciler{base}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LicenseBackupPair reconciler: %w", err)
	}
	return nil
}
