package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
)

// Setup registers the field indexes and both reconcilers with a manager.
func Setup(ctx context.Context, mgr ctrl.Manager) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("registering indexes: %w", err)
	}
	if err := (&LicenseTriadReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("licenseha-operator"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LicenseTriad reconciler: %w", err)
	}
	if err := (&LicenseBackupPairReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("licenseha-operator"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LicenseBackupPair reconciler: %w", err)
	}
	return nil
}
