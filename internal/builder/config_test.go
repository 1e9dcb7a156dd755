package builder

import (
	"reflect"
	"slices"
	"testing"

	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// TestTriadConfigFields: each triad spec field that the agents read, and its
// default, as it reaches group.Config; the members in a stable order with
// their pods and addresses.
func TestTriadConfigFields(t *testing.T) {
	type fields struct {
		kind, ns, name             string
		generation                 int64
		peerMs, heartbeatMs, syncS int64
		failback                   string
		failbackDelayS             int64
		port                       int32
		mode, roles                string
		strict, preserve           bool
		members                    []string // name/role/pod/address
		mappings, paths            int
		priorPeerMs                int64
	}
	summarise := func(c group.Config) fields {
		f := fields{kind: c.Kind, ns: c.Namespace, name: c.Name, generation: c.Generation,
			peerMs: c.PeerTimeoutMillis, heartbeatMs: c.HeartbeatIntervalMillis, syncS: c.SyncIntervalSeconds,
			failback: c.Failback, failbackDelayS: c.FailbackDelaySeconds, port: c.ServerPort, mode: c.Mode, roles: c.Roles,
			strict: c.SyncStrict, preserve: c.PreserveTimestamps, mappings: len(c.LicenseMappings), paths: len(c.SyncPaths),
			priorPeerMs: c.PriorPeerTimeoutMillis}
		for _, m := range c.Members {
			f.members = append(f.members, m.Name+"/"+m.Role+"/"+m.Pod+"/"+m.Address)
		}
		return f
	}
	defaults := func(members ...string) fields {
		return fields{kind: "LicenseTriad", ns: "printing", name: "plant", generation: 2, peerMs: 2000, heartbeatMs: 250, syncS: 10,
			failback: "Automatic", port: 5160, preserve: true, members: members}
	}
	abc := []string{"a/Primary/plant-a/", "b/Secondary/plant-b/", "c/Tertiary/plant-c/"}
	for _, tc := range []struct {
		name  string
		edit  func(*licensehav1.LicenseTriad)
		addrs map[string]string
		want  fields
	}{{
		name: "defaults, no addresses yet",
		edit: func(*licensehav1.LicenseTriad) {},
		want: defaults(abc...),
	}, {
		name:  "addresses of some members; unknown names ignored",
		edit:  func(*licensehav1.LicenseTriad) {},
		addrs: map[string]string{"b": "10.1.0.2", "zz": "10.9.9.9"},
		want:  defaults("a/Primary/plant-a/", "b/Secondary/plant-b/10.1.0.2", "c/Tertiary/plant-c/"),
	}, {
		name: "members sorted by name whatever the spec's order",
		edit: func(tr *licensehav1.LicenseTriad) {
			tr.Spec.Members = []licensehav1.TriadMember{{Name: "z", Role: licensehav1.RolePrimary},
				{Name: "m", Role: licensehav1.RoleTertiary}, {Name: "b", Role: licensehav1.RoleSecondary}}
		},
		addrs: map[string]string{"z": "10.0.0.26"},
		want:  defaults("b/Secondary/plant-b/", "m/Tertiary/plant-m/", "z/Primary/plant-z/10.0.0.26"),
	}, {
		name: "every timing set",
		edit: func(tr *licensehav1.LicenseTriad) {
			tr.Spec.Failover = licensehav1.FailoverSpec{PeerTimeoutSeconds: 7, HeartbeatIntervalMilliseconds: 100,
				Failback: licensehav1.FailbackManual, FailbackDelaySeconds: 45}
			tr.Spec.Sync.IntervalSeconds = 60
			tr.Spec.Server.Port = 27000
		},
		want: func() fields {
			f := defaults(abc...)
			f.peerMs, f.heartbeatMs, f.failback, f.failbackDelayS, f.syncS, f.port = 7000, 100, "Manual", 45, 60, 27000
			return f
		}(),
	}, {
		name: "explicit Automatic failback with a delay",
		edit: func(tr *licensehav1.LicenseTriad) {
			tr.Spec.Failover.Failback = licensehav1.FailbackAutomatic
			tr.Spec.Failover.FailbackDelaySeconds = 30
		},
		want: func() fields {
			f := defaults(abc...)
			f.failbackDelayS = 30
			return f
		}(),
	}, {
		name: "file sync of a vendor server's data folders",
		edit: func(tr *licensehav1.LicenseTriad) {
			tr.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "db"}, {Path: "settings", Include: []string{"*.xml"}}}
			tr.Spec.Sync.Strict = true
			tr.Spec.Sync.PreserveTimestamps = ptr.To(false)
		},
		want: func() fields {
			f := defaults(abc...)
			f.paths, f.strict, f.preserve = 2, true, false
			return f
		}(),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Generation = 2
			tc.edit(tr)
			if got := summarise(TriadConfig(tr, tc.addrs)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Sorting does not reorder the triad's own members.
	tr := fixtureTriad()
	tr.Spec.Members[0], tr.Spec.Members[2] = tr.Spec.Members[2], tr.Spec.Members[0]
	_ = TriadConfig(tr, nil)
	if tr.Spec.Members[0].Name != "c" || tr.Spec.Members[2].Name != "a" {
		t.Errorf("TriadConfig reordered the spec's members: %+v", tr.Spec.Members)
	}
}

// TestPairConfigFields: each pair spec field that the agents read, and its
// default, as it reaches group.Config.
func TestPairConfigFields(t *testing.T) {
	type fields struct {
		kind                       string
		peerMs, heartbeatMs, syncS int64
		failback                   string
		port                       int32
		mode, roles                string
		strict, preserve           bool
		members                    []string
		mappings                   []string
		paths                      []string
	}
	summarise := func(c group.Config) fields {
		f := fields{kind: c.Kind, peerMs: c.PeerTimeoutMillis, heartbeatMs: c.HeartbeatIntervalMillis, syncS: c.SyncIntervalSeconds,
			failback: c.Failback, port: c.ServerPort, mode: c.Mode, roles: c.Roles, strict: c.SyncStrict, preserve: c.PreserveTimestamps}
		for _, m := range c.Members {
			f.members = append(f.members, m.Name+"/"+m.Role+"/"+m.Pod+"/"+m.Address)
		}
		for _, m := range c.LicenseMappings {
			f.mappings = append(f.mappings, m.Main+"->"+m.Backup)
		}
		for _, p := range c.SyncPaths {
			f.paths = append(f.paths, p.Path+" +"+mustJSON(t, p.Include)+" -"+mustJSON(t, p.Exclude))
		}
		return f
	}
	sides := []string{"main/main/plant-main/", "backup/backup/plant-backup/"}
	base := fields{kind: "LicenseBackupPair", peerMs: 2000, heartbeatMs: 250, syncS: 30, port: 5160, preserve: true, members: sides}
	with := func(f func(*fields)) fields {
		out := base
		out.members = slices.Clone(base.members)
		f(&out)
		return out
	}
	for _, tc := range []struct {
		name  string
		edit  func(*licensehav1.LicenseBackupPair)
		addrs map[string]string
		want  fields
	}{{
		name: "defaults: mode left to the API server, no roles, timestamps preserved",
		edit: func(*licensehav1.LicenseBackupPair) {},
		want: base,
	}, {
		name: "ActiveActive keeps roles empty",
		edit: func(p *licensehav1.LicenseBackupPair) { p.Spec.Mode = licensehav1.ActiveActive },
		want: with(func(f *fields) { f.mode = "ActiveActive" }),
	}, {
		name: "ActivePassive defaults roles to Fixed",
		edit: func(p *licensehav1.LicenseBackupPair) { p.Spec.Mode = licensehav1.ActivePassive },
		want: with(func(f *fields) { f.mode, f.roles = "ActivePassive", "Fixed" }),
	}, {
		name: "ActivePassive, Symmetric",
		edit: func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Mode, p.Spec.Roles = licensehav1.ActivePassive, licensehav1.RolesSymmetric
		},
		want: with(func(f *fields) { f.mode, f.roles = "ActivePassive", "Symmetric" }),
	}, {
		name:  "addresses by side",
		edit:  func(*licensehav1.LicenseBackupPair) {},
		addrs: map[string]string{"backup": "10.2.0.9", "a": "10.0.0.1"},
		want:  with(func(f *fields) { f.members[1] = "backup/backup/plant-backup/10.2.0.9" }),
	}, {
		name: "sync settings, timestamps explicitly preserved",
		edit: func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Sync = licensehav1.PairSyncSpec{IntervalSeconds: 12, Strict: true, PreserveTimestamps: ptr.To(true),
				Paths: []licensehav1.SyncPath{{Path: "settings", Include: []string{"*.xml"}, Exclude: []string{"*.tmp"}}, {Path: "labels"}}}
		},
		want: with(func(f *fields) {
			f.syncS, f.strict = 12, true
			f.paths = []string{`settings +["*.xml"] -["*.tmp"]`, "labels +null -null"}
		}),
	}, {
		name: "timestamps not preserved",
		edit: func(p *licensehav1.LicenseBackupPair) { p.Spec.Sync.PreserveTimestamps = ptr.To(false) },
		want: with(func(f *fields) { f.preserve = false }),
	}, {
		name: "mappings in the spec's order; peer timeout and port",
		edit: func(p *licensehav1.LicenseBackupPair) {
			p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-2", Backup: "LIC-102"}, {Main: "LIC-1", Backup: "LIC-101"}}
			p.Spec.Failover.PeerTimeoutSeconds = 9
			p.Spec.Server.Port = 1055
		},
		want: with(func(f *fields) {
			f.mappings = []string{"LIC-2->LIC-102", "LIC-1->LIC-101"}
			f.peerMs, f.port = 9000, 1055
		}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := fixturePair()
			tc.edit(p)
			if got := summarise(PairConfig(p, tc.addrs)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestOrDefault: a zero value takes the default, any other value stays.
func TestOrDefault(t *testing.T) {
	for _, tc := range []struct{ v, def, want int32 }{
		{0, 5, 5}, {3, 5, 3}, {-1, 5, -1}, {0, 0, 0},
	} {
		if got := orDefault(tc.v, tc.def); got != tc.want {
			t.Errorf("orDefault(%d, %d) = %d, want %d", tc.v, tc.def, got, tc.want)
		}
	}
	for _, tc := range []struct{ v, def, want string }{
		{"", "x", "x"}, {"y", "x", "y"},
	} {
		if got := orDefault(tc.v, tc.def); got != tc.want {
			t.Errorf("orDefault(%q, %q) = %q, want %q", tc.v, tc.def, got, tc.want)
		}
	}
}

// A disconnected pair: the remote side is stopped and remote (no pod, no
// volume claim), and the agents run ActiveActive with no address for it,
// so the local side serves without waiting for a peer.
func TestDisconnectedPair(t *testing.T) {
	for _, local := range []licensehav1.PairSide{licensehav1.SideMain, licensehav1.SideBackup} {
		p := &licensehav1.LicenseBackupPair{}
		p.Namespace, p.Name = "printing", "plant"
		p.Spec.Mode = licensehav1.ActiveActive
		p.Spec.Storage = &licensehav1.StorageSpec{}
		p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: local}
		p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-M", Backup: "LIC-B"}}
		remote := p.Spec.RemoteSide()
		if remote == local || remote == "" {
			t.Fatalf("local %s: RemoteSide() = %q", local, remote)
		}
		g := FromPair(p)
		for _, m := range g.Members {
			isRemote := m.Name == string(remote)
			if m.Stopped != isRemote || m.Remote != isRemote {
				t.Errorf("local %s: member %s stopped %v remote %v", local, m.Name, m.Stopped, m.Remote)
			}
			if pvc := PVC(g, m); (pvc == nil) != isRemote {
				t.Errorf("local %s: member %s volume claim %v", local, m.Name, pvc)
			}
		}
		cfg := PairConfig(p, map[string]string{string(local): "10.0.0.1", string(remote): "10.0.0.2"})
		if cfg.Mode != string(licensehav1.ActiveActive) || cfg.Roles != "" || len(cfg.LicenseMappings) != 1 {
			t.Errorf("local %s: config mode %q roles %q mappings %v", local, cfg.Mode, cfg.Roles, cfg.LicenseMappings)
		}
		if m, ok := cfg.Member(string(remote)); !ok || m.Address != "" {
			t.Errorf("local %s: remote member in the config = %+v, %v", local, m, ok)
		}
		if m, _ := cfg.Member(string(local)); m.Address != "10.0.0.1" {
			t.Errorf("local %s: local member in the config = %+v", local, m)
		}
	}
	var connected licensehav1.LicenseBackupPairSpec
	if connected.RemoteSide() != "" {
		t.Error("a connected pair has no remote side")
	}
}
