package group

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// TestContractMatchesTheAPI: the names the agents read in their
// configuration and write to their pods are the API's, spelled once more
// here so that the agent does not link the CRD package.
func TestContractMatchesTheAPI(t *testing.T) {
	for name, c := range map[string][2]string{
		"SideMain":           {SideMain, string(licensehav1.SideMain)},
		"SideBackup":         {SideBackup, string(licensehav1.SideBackup)},
		"RolePrimary":        {RolePrimary, string(licensehav1.RolePrimary)},
		"RoleSecondary":      {RoleSecondary, string(licensehav1.RoleSecondary)},
		"RoleTertiary":       {RoleTertiary, string(licensehav1.RoleTertiary)},
		"ModeActivePassive":  {ModeActivePassive, string(licensehav1.ActivePassive)},
		"RolesSymmetric":     {RolesSymmetric, string(licensehav1.RolesSymmetric)},
		"LabelRole":          {LabelRole, licensehav1.LabelRole},
		"RoleLabelActive":    {RoleLabelActive, licensehav1.RoleLabelActive},
		"RoleLabelStandby":   {RoleLabelStandby, licensehav1.RoleLabelStandby},
		"RoleLabelWitness":   {RoleLabelWitness, licensehav1.RoleLabelWitness},
		"RoleLabelUnhealthy": {RoleLabelUnhealthy, licensehav1.RoleLabelUnhealthy},
		"DefaultDataPath":    {DefaultDataPath, licensehav1.DefaultDataPath},
		"LabelMountable":     {LabelMountable, licensehav1.LabelMountable},
	} {
		if c[0] != c[1] {
			t.Errorf("%s: the agents use %q, the API %q", name, c[0], c[1])
		}
	}
}

// crdDefault returns the default of a field of a CRD's spec, by path.
func crdDefault(t *testing.T, file string, path ...string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	props := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	for _, p := range path[:len(path)-1] {
		props = props.Properties[p]
	}
	leaf, ok := props.Properties[path[len(path)-1]]
	if !ok || leaf.Default == nil {
		t.Fatalf("%s: spec.%v has no default", file, path)
	}
	var v int64
	if err := json.Unmarshal(leaf.Default.Raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The defaults the agents fall back to are the ones the API server fills
// in: one value per field, whoever applies it.
func TestDefaultsMatchTheCRDs(t *testing.T) {
	for _, c := range []struct {
		file string
		path []string
		want time.Duration
		unit time.Duration
	}{
		{"licenseha.io_licensetriads.yaml", []string{"failover", "peerTimeoutSeconds"}, DefaultTriadPeerTimeout, time.Second},
		{"licenseha.io_licensetriads.yaml", []string{"failover", "heartbeatIntervalMilliseconds"}, DefaultHeartbeatInterval, time.Millisecond},
		{"licenseha.io_licensetriads.yaml", []string{"sync", "intervalSeconds"}, DefaultTriadSyncInterval, time.Second},
		{"licenseha.io_licensebackuppairs.yaml", []string{"failover", "peerTimeoutSeconds"}, DefaultPairPeerTimeout, time.Second},
		{"licenseha.io_licensebackuppairs.yaml", []string{"sync", "intervalSeconds"}, DefaultPairSyncInterval, time.Second},
	} {
		if got := time.Duration(crdDefault(t, c.file, c.path...)) * c.unit; got != c.want {
			t.Errorf("%s spec.%v: the CRD defaults to %s, the agents to %s", c.file, c.path, got, c.want)
		}
	}
}

func TestTimingAccessors(t *testing.T) {
	var none *Config
	if got := none.PeerTimeout(); got != DefaultPairPeerTimeout {
		t.Errorf("nil config: peer timeout %s, want %s", got, DefaultPairPeerTimeout)
	}
	triad := &Config{Kind: KindTriad}
	if got := triad.PeerTimeout(); got != DefaultTriadPeerTimeout {
		t.Errorf("triad without a timeout: %s, want %s", got, DefaultTriadPeerTimeout)
	}
	if got := triad.HeartbeatInterval(); got != DefaultHeartbeatInterval {
		t.Errorf("heartbeat interval %s, want %s", got, DefaultHeartbeatInterval)
	}
	if got := triad.SyncInterval(); got != time.Second {
		t.Errorf("sync interval of 0 s: %s, want at least 1 s", got)
	}
	c := &Config{Kind: KindBackupPair, PeerTimeoutMillis: 1500, PriorPeerTimeoutMillis: 5000, HeartbeatIntervalMillis: 100,
		FailbackDelaySeconds: 20, SyncIntervalSeconds: 30}
	for name, got := range map[string]time.Duration{
		"peer timeout": c.PeerTimeout(), "prior peer timeout": c.PriorPeerTimeout(), "heartbeat": c.HeartbeatInterval(),
		"failback delay": c.FailbackDelay(), "sync interval": c.SyncInterval(),
	} {
		want := map[string]time.Duration{"peer timeout": 1500 * time.Millisecond, "prior peer timeout": 5 * time.Second,
			"heartbeat": 100 * time.Millisecond, "failback delay": 20 * time.Second, "sync interval": 30 * time.Second}[name]
		if got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}
