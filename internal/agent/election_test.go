package agent

import (
	"testing"
	"time"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/election"
)

// TestMachineConfig maps both kinds' group configuration onto the
// election's: a triad by its members' roles, an ActivePassive pair with the
// preferred side as primary and its roles as the failback policy.
func TestMachineConfig(t *testing.T) {
	triad := &group.Config{Kind: group.KindTriad, PeerTimeoutMillis: 1000, HeartbeatIntervalMillis: 100,
		Failback: "Manual", FailbackDelaySeconds: 45, PriorPeerTimeoutMillis: 3000,
		Members: []group.Member{{Name: "a", Role: group.RoleSecondary}, {Name: "b", Role: group.RolePrimary}, {Name: "c", Role: group.RoleTertiary}}}
	pair := func(roles, preferred string) *group.Config {
		return &group.Config{Kind: group.KindBackupPair, Mode: group.ModeActivePassive, Roles: roles, PreferredSide: preferred}
	}
	cases := []struct {
		name string
		cfg  *group.Config
		want election.Config
	}{
		{"triad", triad, election.Config{Self: "a", Primary: "b", Secondary: "a", Tertiary: "c", PeerTimeout: time.Second,
			HeartbeatInterval: 100 * time.Millisecond, Failback: election.FailbackManual, FailbackDelay: 45 * time.Second,
			PriorPeerTimeout: 3 * time.Second}},
		{"pair, Fixed, defaults", pair("Fixed", ""), election.Config{Self: "a", Primary: "main", Secondary: "backup",
			PeerTimeout: 2 * time.Second, HeartbeatInterval: 250 * time.Millisecond, Failback: election.FailbackAutomatic}},
		{"pair, Symmetric: never fails back", pair(group.RolesSymmetric, ""), election.Config{Self: "a", Primary: "main", Secondary: "backup",
			PeerTimeout: 2 * time.Second, HeartbeatInterval: 250 * time.Millisecond, Failback: election.FailbackManual}},
		{"pair, switched over to the backup", pair("Fixed", group.SideBackup), election.Config{Self: "a", Primary: "backup", Secondary: "main",
			PeerTimeout: 2 * time.Second, HeartbeatInterval: 250 * time.Millisecond, Failback: election.FailbackAutomatic}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := machineConfig(c.cfg, "a")
			if got != c.want {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
			if err := got.WithDefaults().Validate(); err != nil {
				t.Fatalf("the election refuses it: %v", err)
			}
			if c.cfg.Kind == group.KindBackupPair && !got.Pair() {
				t.Fatal("a pair must run the election's pair mode")
			}
		})
	}
}
