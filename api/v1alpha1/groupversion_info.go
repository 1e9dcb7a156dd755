// Package v1alpha1 contains the licenseha.io/v1alpha1 API: LicenseTriad and
// LicenseBackupPair, the two ways licenseha runs license servers as a
// redundant group.
//
// +kubebuilder:object:generate=true
// +groupName=licenseha.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "licenseha.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
