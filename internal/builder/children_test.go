package builder

import (
	"slices"
	"testing"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

func childKeys(g Group) []string {
	var keys []string
	for _, c := range Children(g) {
		keys = append(keys, c.Key())
	}
	return keys
}

func TestChildrenNameEveryObjectOfAGroup(t *testing.T) {
	triad := testfixtures.Triad("ns", "plant")
	triad.Spec.Storage = &licensehav1.StorageSpec{}
	want := []string{
		"ServiceAccount/plant-agent", "Role/plant-agent", "RoleBinding/plant-agent",
		"Secret/plant-admin", "ConfigMap/plant-state", "Secret/plant-state", "Lease/plant-active",
		"PersistentVolumeClaim/plant-a-data", "PersistentVolumeClaim/plant-b-data", "PersistentVolumeClaim/plant-c-data",
		"Service/plant", "Service/plant-members", "ConfigMap/plant-config",
		"Pod/plant-a", "Pod/plant-b", "Pod/plant-c",
	}
	if got := childKeys(FromTriad(triad)); !slices.Equal(got, want) {
		t.Errorf("triad children:\n got %v\nwant %v", got, want)
	}

	pair := testfixtures.Pair("ns", "px")
	want = []string{
		"ServiceAccount/px-agent", "Role/px-agent", "RoleBinding/px-agent",
		"Secret/px-admin", "ConfigMap/px-state", "Secret/px-state", "Lease/px-active",
		"Service/px", "Service/px-main", "Service/px-backup", "ConfigMap/px-config",
		"Pod/px-main", "Pod/px-backup",
	}
	if got := childKeys(FromPair(pair)); !slices.Equal(got, want) {
		t.Errorf("pair children:\n got %v\nwant %v", got, want)
	}

	var retained []string
	for _, c := range Children(FromPair(pair)) {
		if c.Retained {
			retained = append(retained, c.Key())
		}
	}
	if want := []string{"ConfigMap/px-state", "Secret/px-state", "Lease/px-active"}; !slices.Equal(retained, want) {
		t.Errorf("retained: got %v, want %v", retained, want)
	}
}
