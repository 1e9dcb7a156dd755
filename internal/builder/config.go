package builder

import (
	"sort"
	"time"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// TriadConfig is the configuration the triad's agents run with. addresses
// maps member name to pod IP (missing until the pod has one).
func TriadConfig(t *licensehav1.LicenseTriad, addresses map[string]string) group.Config {
	f := t.Spec.Failover
	cfg := group.Config{
		Kind:                    group.KindTriad,
		Namespace:               t.Namespace,
		Name:                    t.Name,
		Generation:              t.Generation,
		PeerTimeoutMillis:       int64(orDefault(f.PeerTimeoutSeconds, group.Seconds(group.DefaultTriadPeerTimeout))) * 1000,
		HeartbeatIntervalMillis: int64(orDefault(f.HeartbeatIntervalMilliseconds, int32(group.DefaultHeartbeatInterval/time.Millisecond))),
		Failback:                string(f.Failback),
		FailbackDelaySeconds:    int64(f.FailbackDelaySeconds),
		SyncIntervalSeconds:     int64(orDefault(t.Spec.Sync.IntervalSeconds, group.Seconds(group.DefaultTriadSyncInterval))),
		ServerPort:              orDefault(t.Spec.Server.Port, licensehav1.DefaultServerPort),
		SyncStrict:              t.Spec.Sync.Strict,
		PreserveTimestamps:      t.Spec.Sync.PreserveTimestamps == nil || *t.Spec.Sync.PreserveTimestamps,
		SyncPaths:               syncPaths(t.Spec.Sync.Paths),
	}
	if cfg.Failback == "" {
		cfg.Failback = string(licensehav1.FailbackAutomatic)
	}
	for _, m := range t.Spec.Members {
		cfg.Members = append(cfg.Members, group.Member{
			Name: m.Name, Role: string(m.Role), Pod: group.PodName(t.Name, m.Name), Address: addresses[m.Name],
		})
	}
	// Stable order, so the ConfigMap only changes when the triad does.
	sort.Slice(cfg.Members, func(i, j int) bool { return cfg.Members[i].Name < cfg.Members[j].Name })
	return cfg
}

// PairConfig is the configuration the pair's agents run with.
func PairConfig(p *licensehav1.LicenseBackupPair, addresses map[string]string) group.Config {
	roles := p.Spec.Roles
	if p.Spec.Mode == licensehav1.ActivePassive && roles == "" {
		roles = licensehav1.RolesFixed
	}
	cfg := group.Config{
		Kind:                    group.KindBackupPair,
		Namespace:               p.Namespace,
		Name:                    p.Name,
		Generation:              p.Generation,
		PeerTimeoutMillis:       int64(orDefault(p.Spec.Failover.PeerTimeoutSeconds, group.Seconds(group.DefaultPairPeerTimeout))) * 1000,
		HeartbeatIntervalMillis: int64(group.DefaultHeartbeatInterval / time.Millisecond),
		SyncIntervalSeconds:     int64(orDefault(p.Spec.Sync.IntervalSeconds, group.Seconds(group.DefaultPairSyncInterval))),
		ServerPort:              orDefault(p.Spec.Server.Port, licensehav1.DefaultServerPort),
		Mode:                    string(p.Spec.Mode),
		Roles:                   string(roles),
		PreferredSide:           string(p.Spec.PreferredSide),
		SyncStrict:              p.Spec.Sync.Strict,
		PreserveTimestamps:      p.Spec.Sync.PreserveTimestamps == nil || *p.Spec.Sync.PreserveTimestamps,
	}
	if p.Spec.Disconnected != nil {
		// The sides cannot elect across clusters: the local side serves on
		// its own (the API allows only ActiveActive here). The remote side
		// stays in Members without an address, so the agent never probes
		// it and reports no peer.
		cfg.Mode, cfg.Roles, cfg.PreferredSide = string(licensehav1.ActiveActive), "", ""
	}
	for _, side := range []licensehav1.PairSide{licensehav1.SideMain, licensehav1.SideBackup} {
		addr := addresses[string(side)]
		if side == p.Spec.RemoteSide() {
			addr = "" // even while a pod of its name from before is on its way out
		}
		cfg.Members = append(cfg.Members, group.Member{
			Name: string(side), Role: string(side), Pod: group.PodName(p.Name, string(side)), Address: addr,
		})
	}
	for _, m := range p.Spec.LicenseMappings {
		cfg.LicenseMappings = append(cfg.LicenseMappings, group.LicenseMapping{Main: m.Main, Backup: m.Backup})
	}
	cfg.SyncPaths = syncPaths(p.Spec.Sync.Paths)
	return cfg
}

// syncPaths are spec.sync.paths as the agents' file sync walks them.
func syncPaths(paths []licensehav1.SyncPath) []group.SyncPath {
	var out []group.SyncPath
	for _, sp := range paths {
		out = append(out, group.SyncPath{Path: sp.Path, Include: sp.Include, Exclude: sp.Exclude})
	}
	return out
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
