package controllers

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// computePairStatus, as a pure function: the phase and Ready/Degraded for
// each situation (checked against checkConsistent), the sync states, and
// what it derives for each side and for the pair. Run with
// go test ./controllers/ -run 'TestPurePair'.

// pureSide describes a side as "<pod>/<ip>/<ready|notready>/<serving|idle>/<version>/<settings hash>/<licences>".
func pureSide(s licensehav1.PairServerStatus) string {
	ready, serving := "notready", "idle"
	if s.Ready {
		ready = "ready"
	}
	if s.Serving {
		serving = "serving"
	}
	var lic []string
	for _, l := range s.Licenses {
		lic = append(lic, l.ID)
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s/%s/%v", s.Pod, s.PodIP, ready, serving, s.Version, s.SettingsHash, lic)
}

func sidePod(side string, r group.MemberState) *corev1.Pod { return memberPod("plant", side, r) }

func TestPurePairStatus(t *testing.T) {
	const (
		aa = licensehav1.ActiveActive
		ap = licensehav1.ActivePassive
	)
	main := func(state string, peers ...string) *corev1.Pod { return pairMember("main", state, 5, "1.0", peers...) }
	backup := func(state string, peers ...string) *corev1.Pod {
		return pairMember("backup", state, 5, "1.0", peers...)
	}
	cases := []struct {
		name      string
		mode      licensehav1.PairMode
		pods      map[string]*corev1.Pod
		lease     *coordinationv1.Lease
		blocked   *blocker
		prevPhase licensehav1.PairPhase
		prevSide  licensehav1.PairSide
		want      want
	}{{
		name: "ActiveActive: both serve, connected and in sync", mode: aa,
		pods: pods(main(group.StateActive, "backup"), backup(group.StateActive, "main")),
		want: wantServing(licensehav1.ReasonMembersHealthy, "Active", ""),
	}, {
		name: "ActiveActive: both serve, disconnected", mode: aa,
		pods: pods(main(group.StateActive), backup(group.StateActive)),
		want: wantServing(licensehav1.ReasonMemberUnavailable, "Degraded", ""),
	}, {
		name: "ActiveActive: the backup is down", mode: aa,
		pods: pods(main(group.StateActive)),
		want: wantServing(licensehav1.ReasonMemberUnavailable, "Degraded", ""),
	}, {
		name: "ActiveActive: different server versions", mode: aa,
		pods: pods(main(group.StateActive, "backup"), pairMember("backup", group.StateActive, 5, "1.1", "main")),
		want: wantServing(licensehav1.ReasonVersionMismatch, "Degraded", ""),
	}, {
		name: "ActiveActive: neither serves though both are up, connected and in sync", mode: aa,
		pods: pods(main(group.StateStandby, "backup"), backup(group.StateStandby, "main")), prevPhase: "Active",
		want: wantNotServing(nil, "Degraded"),
	}, {
		name: "ActiveActive: both servers crashed", mode: aa, prevPhase: "Active",
		pods: pods(crashed(main(group.StateActive, "backup")), crashed(backup(group.StateActive, "main"))),
		want: wantNotServing(nil, "Degraded"),
	}, {
		name: "ActiveActive: forming, no pod runs", mode: aa, pods: pods(),
		want: wantNotServing(nil, "Forming"),
	}, {
		name: "ActivePassive: the main holds the Lease and serves", mode: ap,
		pods:  pods(main(group.StateActive, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("plant-main", 1),
		want:  wantServing(licensehav1.ReasonMembersHealthy, "Active", "main"),
	}, {
		name: "ActivePassive: the backup took over from the main", mode: ap, prevPhase: "Active", prevSide: "main",
		pods:  pods(backup(group.StateActive)),
		lease: heldLease("plant-backup", 2),
		want:  wantServing(licensehav1.ReasonMemberUnavailable, "Degraded", "backup"),
	}, {
		name: "ActivePassive: the main reports active but nobody holds the Lease", mode: ap, prevPhase: "Active",
		pods:  pods(main(group.StateActive, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("", 1),
		want:  wantNotServing(nil, "Degraded"),
	}, {
		name: "ActivePassive: both stand by, connected and in sync", mode: ap, prevPhase: "Active",
		pods:  pods(main(group.StateStandby, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("plant-main", 1),
		want:  wantNotServing(nil, "Degraded"),
	}, {
		name: "ActivePassive: a licence Secret is gone while the main serves with full redundancy", mode: ap,
		prevPhase: "Active", blocked: licenceMissing,
		pods:  pods(main(group.StateActive, "backup"), backup(group.StateStandby, "main")),
		lease: heldLease("plant-main", 1),
		want:  wantBlocked(licenceMissing, licensehav1.ReasonSecretNotFound, "Degraded", "main"),
	}, {
		name: "ActiveActive: the backup's pod belongs to something else", mode: aa, blocked: otherGroupsPod,
		pods: pods(main(group.StateActive)),
		want: wantBlocked(otherGroupsPod, licensehav1.ReasonMemberUnavailable, "Failed", ""),
	}, {
		name: "ActivePassive: a predecessor's pods are being deleted", mode: ap, blocked: leftovers, pods: pods(),
		want: wantNotServing(leftovers, "Forming"),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(2, tc.mode)
			p.Status = licensehav1.LicenseBackupPairStatus{Phase: tc.prevPhase, ActiveServer: tc.prevSide}
			st := pairStatusOf(t, p, pairInput{pods: tc.pods, lease: tc.lease, blocked: tc.blocked})
			if got := gotWant(st.Conditions, string(st.Phase), string(st.ActiveServer)); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			serving := st.Main.Serving || st.Backup.Serving
			if tc.mode == ap && serving != (st.ActiveServer != "") {
				t.Errorf("a server serves (main %v, backup %v) but activeServer is %q", st.Main.Serving, st.Backup.Serving, st.ActiveServer)
			}
			checkConsistent(t, st.Conditions, serving, string(st.Phase), "Active")
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 2 {
					t.Errorf("%s: observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

// TestPurePairSyncState: the pair's four sync states follow from the two agents'
// reports; the Connected and Synchronized conditions agree with them.
func TestPurePairSyncState(t *testing.T) {
	member := func(side string, rev, filesRev int64, peers ...string) *corev1.Pod {
		return memberPod("plant", side, group.MemberState{State: group.StateActive, Revision: rev, FilesRevision: filesRev,
			ServerVersion: "1.0", Peers: peers})
	}
	for _, tc := range []struct {
		name      string
		pods      map[string]*corev1.Pod
		syncPaths bool
		want      licensehav1.SyncState
	}{
		{name: "connected, the backup holds the main's revision",
			pods: pods(member("main", 5, 0, "backup"), member("backup", 5, 0, "main")), want: licensehav1.ConnectedSynchronized},
		{name: "connected, the backup lags",
			pods: pods(member("main", 6, 0, "backup"), member("backup", 5, 0, "main")), want: licensehav1.ConnectedNotSynchronized},
		{name: "disconnected after syncing",
			pods: pods(member("main", 5, 0), member("backup", 5, 0)), want: licensehav1.DisconnectedSynchronized},
		{name: "the backup is down",
			pods: pods(member("main", 5, 0)), want: licensehav1.DisconnectedNotSynchronized},
		{name: "with sync paths, the files lag", syncPaths: true,
			pods: pods(member("main", 5, 3, "backup"), member("backup", 5, 2, "main")), want: licensehav1.ConnectedNotSynchronized},
		{name: "without sync paths, files are not compared",
			pods: pods(member("main", 5, 3, "backup"), member("backup", 5, 2, "main")), want: licensehav1.ConnectedSynchronized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, licensehav1.ActiveActive)
			if tc.syncPaths {
				p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "labels"}}
			}
			st := pairStatusOf(t, p, pairInput{pods: tc.pods})
			if st.SyncState != tc.want {
				t.Errorf("sync state %s, want %s", st.SyncState, tc.want)
			}
			connected := tc.want == licensehav1.ConnectedSynchronized || tc.want == licensehav1.ConnectedNotSynchronized
			synced := tc.want == licensehav1.ConnectedSynchronized || tc.want == licensehav1.DisconnectedSynchronized
			if st.Connected != connected || meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionConnected) != connected ||
				st.Synchronized != synced || meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionSynchronized) != synced {
				t.Errorf("connected %v, synchronized %v, conditions %+v", st.Connected, st.Synchronized, st.Conditions)
			}
			if synced != (st.LastSyncTime != nil) {
				t.Errorf("lastSyncTime %v with synchronized %v", st.LastSyncTime, synced)
			}
		})
	}
}

func TestPurePairSides(t *testing.T) {
	const (
		aa = licensehav1.ActiveActive
		ap = licensehav1.ActivePassive
	)
	active := func(side string, peers ...string) *corev1.Pod {
		return sidePod(side, group.MemberState{State: group.StateActive, Revision: 3, ServerVersion: "2.1", SettingsHash: "s1", Peers: peers})
	}
	standby := func(side string, peers ...string) *corev1.Pod {
		return sidePod(side, group.MemberState{State: group.StateStandby, Revision: 3, ServerVersion: "2.1", SettingsHash: "s1", Peers: peers})
	}
	// memberPod's IPs: main 10.0.0.4, backup 10.0.0.6.
	for _, tc := range []struct {
		name         string
		mode         licensehav1.PairMode
		pods         map[string]*corev1.Pod
		lease        *coordinationv1.Lease
		main, backup string
		activeServer licensehav1.PairSide
	}{{
		name: "no pods: names only, licences kept", mode: aa, pods: pods(),
		main: "plant-main//notready/idle///[LIC-M]", backup: "plant-backup//notready/idle///[LIC-B]",
	}, {
		name: "ActiveActive: both serve without a Lease", mode: aa, pods: pods(active("main", "backup"), active("backup", "main")),
		main:   "plant-main/10.0.0.4/ready/serving/2.1/s1/[LIC-M]",
		backup: "plant-backup/10.0.0.6/ready/serving/2.1/s1/[LIC-B]",
	}, {
		name: "ActivePassive: only the Lease holder serves", mode: ap,
		pods:  pods(active("main", "backup"), active("backup", "main")),
		lease: heldLease("plant-backup", 2), activeServer: licensehav1.SideBackup,
		main:   "plant-main/10.0.0.4/ready/idle/2.1/s1/[LIC-M]",
		backup: "plant-backup/10.0.0.6/ready/serving/2.1/s1/[LIC-B]",
	}, {
		name: "ActivePassive: the holder stands by: nobody serves", mode: ap,
		pods:  pods(standby("main", "backup"), standby("backup", "main")),
		lease: heldLease("plant-main", 1),
		main:  "plant-main/10.0.0.4/ready/idle/2.1/s1/[LIC-M]", backup: "plant-backup/10.0.0.6/ready/idle/2.1/s1/[LIC-B]",
	}, {
		name: "a crashed server reports nothing", mode: aa,
		pods: pods(crashed(active("main", "backup")), active("backup", "main")),
		main: "plant-main/10.0.0.4/notready/idle///[LIC-M]", backup: "plant-backup/10.0.0.6/ready/serving/2.1/s1/[LIC-B]",
	}, {
		name: "a pending pod: its IP, no report", mode: ap,
		pods:  pods(active("main", "backup"), pendingPod(standby("backup", "main"))),
		lease: heldLease("plant-main", 1), activeServer: licensehav1.SideMain,
		main: "plant-main/10.0.0.4/ready/serving/2.1/s1/[LIC-M]", backup: "plant-backup/10.0.0.6/notready/idle///[LIC-B]",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, tc.mode)
			p.Status.Main.Licenses = []licensehav1.LicenseStatus{{ID: "LIC-M"}}
			p.Status.Backup.Licenses = []licensehav1.LicenseStatus{{ID: "LIC-B"}}
			st := pairStatusOf(t, p, pairInput{pods: tc.pods, lease: tc.lease})
			if got := pureSide(st.Main); got != tc.main {
				t.Errorf("main\n got %s\nwant %s", got, tc.main)
			}
			if got := pureSide(st.Backup); got != tc.backup {
				t.Errorf("backup\n got %s\nwant %s", got, tc.backup)
			}
			if st.ActiveServer != tc.activeServer {
				t.Errorf("activeServer %q, want %q", st.ActiveServer, tc.activeServer)
			}
		})
	}
}

// TestPurePairSynchronized: the backup holds the main's settings, and with sync
// paths both sides hold the files revision the serving side published.
func TestPurePairSynchronized(t *testing.T) {
	type rep struct {
		rev, files int64
		hash       string
	}
	for _, tc := range []struct {
		name         string
		main, backup *rep // nil: no report
		paths        bool
		want         bool
	}{
		{name: "same revision", main: &rep{rev: 4}, backup: &rep{rev: 4}, want: true},
		{name: "backup ahead (it served during a failover)", main: &rep{rev: 4}, backup: &rep{rev: 5}, want: true},
		{name: "backup behind", main: &rep{rev: 5}, backup: &rep{rev: 4}},
		{name: "main without a report", backup: &rep{rev: 4}},
		{name: "backup without a report", main: &rep{rev: 4}},
		{name: "settings differ", main: &rep{rev: 4, hash: "m"}, backup: &rep{rev: 4, hash: "b"}},
		{name: "settings equal", main: &rep{rev: 4, hash: "m"}, backup: &rep{rev: 4, hash: "m"}, want: true},
		{name: "the backup's settings unknown yet: not compared", main: &rep{rev: 4, hash: "m"}, backup: &rep{rev: 4}, want: true},
		{name: "files behind, with sync paths", paths: true, main: &rep{rev: 4, files: 2}, backup: &rep{rev: 4, files: 1}},
		{name: "files in step, with sync paths", paths: true, main: &rep{rev: 4, files: 3}, backup: &rep{rev: 4, files: 3}, want: true},
		{name: "files ahead (the serving backup published, the main has not applied it)", paths: true, main: &rep{rev: 4, files: 2}, backup: &rep{rev: 4, files: 3}},
		{name: "files behind, without sync paths", main: &rep{rev: 4, files: 2}, backup: &rep{rev: 4, files: 1}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, licensehav1.ActiveActive)
			if tc.paths {
				p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "labels"}}
			}
			var ps []*corev1.Pod
			for side, r := range map[string]*rep{"main": tc.main, "backup": tc.backup} {
				if r != nil {
					peer := map[string]string{"main": "backup", "backup": "main"}[side]
					ps = append(ps, sidePod(side, group.MemberState{State: group.StateActive, Revision: r.rev, FilesRevision: r.files,
						SettingsHash: r.hash, ServerVersion: "1", Peers: []string{peer}}))
				}
			}
			st := pairStatusOf(t, p, pairInput{pods: pods(ps...)})
			if st.Synchronized != tc.want {
				t.Errorf("synchronized %v, want %v", st.Synchronized, tc.want)
			}
			c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionSynchronized)
			wantReason := licensehav1.ReasonOutOfSync
			if tc.want {
				wantReason = licensehav1.ReasonInSync
			}
			if c == nil || c.Reason != wantReason {
				t.Errorf("Synchronized condition %+v, want reason %s", c, wantReason)
			}
		})
	}
}

// TestPurePairConnected: connected when both agents report hearing a peer.
func TestPurePairConnected(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		mainPeers, backupPeers []string
		backupDown             bool
		want                   bool
	}{
		{name: "both hear each other", mainPeers: []string{"backup"}, backupPeers: []string{"main"}, want: true},
		{name: "only the main hears", mainPeers: []string{"backup"}},
		{name: "only the backup hears", backupPeers: []string{"main"}},
		{name: "neither", want: false},
		{name: "the backup's pod crashed", mainPeers: []string{"backup"}, backupPeers: []string{"main"}, backupDown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sidePod("main", group.MemberState{State: group.StateActive, Revision: 1, ServerVersion: "1", Peers: tc.mainPeers})
			b := sidePod("backup", group.MemberState{State: group.StateActive, Revision: 1, ServerVersion: "1", Peers: tc.backupPeers})
			if tc.backupDown {
				b = crashed(b)
			}
			st := pairStatusOf(t, statusPair(1, licensehav1.ActiveActive), pairInput{pods: pods(m, b)})
			c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionConnected)
			if st.Connected != tc.want || c == nil || (c.Status == metav1.ConditionTrue) != tc.want {
				t.Errorf("connected %v, condition %+v; want %v", st.Connected, c, tc.want)
			}
			wantReason, wantMsg := licensehav1.ReasonPeersDisconnected, "Main and backup do not reach each other"
			if tc.want {
				wantReason, wantMsg = licensehav1.ReasonPeersConnected, "Main and backup reach each other"
			}
			if c.Reason != wantReason || c.Message != wantMsg {
				t.Errorf("Connected %s %q, want %s %q", c.Reason, c.Message, wantReason, wantMsg)
			}
		})
	}
}

// TestPurePairLastSyncTime: lastSyncTime moves when the backup catches up,
// not while it stays caught up, and is kept when sync is lost.
func TestPurePairLastSyncTime(t *testing.T) {
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	inSync := pods(pairMember("main", group.StateActive, 5, "1", "backup"), pairMember("backup", group.StateActive, 5, "1", "main"))
	behind := pods(pairMember("main", group.StateActive, 6, "1", "backup"), pairMember("backup", group.StateActive, 5, "1", "main"))
	for _, tc := range []struct {
		name string
		prev licensehav1.LicenseBackupPairStatus
		pods map[string]*corev1.Pod
		want *metav1.Time
	}{
		{name: "first sync", pods: inSync, want: &statusNow},
		{name: "catches up again", prev: licensehav1.LicenseBackupPairStatus{Synchronized: false, LastSyncTime: &earlier}, pods: inSync, want: &statusNow},
		{name: "stays in sync: time kept", prev: licensehav1.LicenseBackupPairStatus{Synchronized: true, LastSyncTime: &earlier}, pods: inSync, want: &earlier},
		{name: "in sync but no time recorded", prev: licensehav1.LicenseBackupPairStatus{Synchronized: true}, pods: inSync, want: &statusNow},
		{name: "falls behind: the last sync is kept", prev: licensehav1.LicenseBackupPairStatus{Synchronized: true, LastSyncTime: &earlier}, pods: behind, want: &earlier},
		{name: "never synced", pods: behind},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, licensehav1.ActiveActive)
			p.Status = tc.prev
			st := pairStatusOf(t, p, pairInput{pods: tc.pods})
			if (st.LastSyncTime == nil) != (tc.want == nil) || (tc.want != nil && !st.LastSyncTime.Equal(tc.want)) {
				t.Errorf("lastSyncTime %v, want %v", st.LastSyncTime, tc.want)
			}
		})
	}
}

// TestPurePairActiveServerAndFailovers: in ActivePassive the serving side is
// reported, and a move to the backup counts one failover; ActiveActive
// reports no active server.
func TestPurePairActiveServerAndFailovers(t *testing.T) {
	mainServes := pods(pairMember("main", group.StateActive, 5, "1", "backup"), pairMember("backup", group.StateStandby, 5, "1", "main"))
	backupServes := pods(pairMember("backup", group.StateActive, 5, "1"))
	nobody := pods(pairMember("main", group.StateStandby, 5, "1", "backup"), pairMember("backup", group.StateStandby, 5, "1", "main"))
	for _, tc := range []struct {
		name      string
		mode      licensehav1.PairMode
		prevSide  licensehav1.PairSide
		prevCount int32
		pods      map[string]*corev1.Pod
		lease     *coordinationv1.Lease
		side      licensehav1.PairSide
		failovers int32
	}{
		{name: "main serves", mode: licensehav1.ActivePassive, pods: mainServes, lease: heldLease("plant-main", 1), side: licensehav1.SideMain},
		{name: "backup takes over from main", mode: licensehav1.ActivePassive, prevSide: licensehav1.SideMain, prevCount: 2,
			pods: backupServes, lease: heldLease("plant-backup", 2), side: licensehav1.SideBackup, failovers: 3},
		{name: "backup takes over after a gap", mode: licensehav1.ActivePassive, prevSide: "", prevCount: 2,
			pods: backupServes, lease: heldLease("plant-backup", 2), side: licensehav1.SideBackup, failovers: 3},
		{name: "backup keeps serving: not counted again", mode: licensehav1.ActivePassive, prevSide: licensehav1.SideBackup, prevCount: 3,
			pods: backupServes, lease: heldLease("plant-backup", 2), side: licensehav1.SideBackup, failovers: 3},
		{name: "main serves again: failback is no failover", mode: licensehav1.ActivePassive, prevSide: licensehav1.SideBackup, prevCount: 3,
			pods: mainServes, lease: heldLease("plant-main", 3), side: licensehav1.SideMain, failovers: 3},
		{name: "nobody serves", mode: licensehav1.ActivePassive, prevSide: licensehav1.SideMain, prevCount: 1,
			pods: nobody, lease: heldLease("plant-main", 1), side: "", failovers: 1},
		{name: "ActiveActive: no active server, no failover", mode: licensehav1.ActiveActive, prevSide: licensehav1.SideMain, prevCount: 1,
			pods: backupServes, side: "", failovers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, tc.mode)
			p.Status = licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairActive, ActiveServer: tc.prevSide, GroupStatus: licensehav1.GroupStatus{Failovers: tc.prevCount}}
			st := pairStatusOf(t, p, pairInput{pods: tc.pods, lease: tc.lease})
			if st.ActiveServer != tc.side || st.Failovers != tc.failovers {
				t.Errorf("active %q failovers %d, want %q %d", st.ActiveServer, st.Failovers, tc.side, tc.failovers)
			}
		})
	}
}

// TestPurePairReadyMessages: who serves, as Ready's message says it.
func TestPurePairReadyMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  licensehav1.PairMode
		pods  map[string]*corev1.Pod
		lease *coordinationv1.Lease
		want  string
	}{
		{name: "ActiveActive, both", mode: licensehav1.ActiveActive,
			pods: pods(pairMember("main", group.StateActive, 1, "1", "backup"), pairMember("backup", group.StateActive, 1, "1", "main")),
			want: "Main and backup serve clients"},
		{name: "ActiveActive, main only", mode: licensehav1.ActiveActive,
			pods: pods(pairMember("main", group.StateActive, 1, "1")), want: "Only the main serves clients"},
		{name: "ActiveActive, backup only", mode: licensehav1.ActiveActive,
			pods: pods(pairMember("backup", group.StateActive, 1, "1")), want: "Only the backup serves clients"},
		{name: "ActivePassive, backup", mode: licensehav1.ActivePassive, lease: heldLease("plant-backup", 2),
			pods: pods(pairMember("backup", group.StateActive, 1, "1")), want: "The backup serves clients"},
		{name: "neither", mode: licensehav1.ActivePassive, pods: pods(), want: "Neither server serves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := pairStatusOf(t, statusPair(1, tc.mode), pairInput{pods: tc.pods, lease: tc.lease})
			if c := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionReady); c == nil || c.Message != tc.want {
				t.Errorf("Ready %+v, want message %q", c, tc.want)
			}
		})
	}
}

// TestPurePairPhases: the phase from serving, redundancy, the previous
// phase and blockers.
func TestPurePairPhases(t *testing.T) {
	healthy := pods(pairMember("main", group.StateActive, 1, "1", "backup"), pairMember("backup", group.StateActive, 1, "1", "main"))
	for _, tc := range []struct {
		name    string
		prev    licensehav1.PairPhase
		pods    map[string]*corev1.Pod
		blocked *blocker
		want    licensehav1.PairPhase
		stalled bool
	}{
		{name: "new pair, nobody serves yet", pods: pods(), want: licensehav1.PairForming},
		{name: "still forming", prev: licensehav1.PairForming, pods: pods(), want: licensehav1.PairForming},
		{name: "served before, nobody serves now", prev: licensehav1.PairActive, pods: pods(), want: licensehav1.PairDegraded},
		{name: "was Failed, the failure is gone, nobody serves", prev: licensehav1.PairFailed, pods: pods(), want: licensehav1.PairDegraded},
		{name: "healthy", prev: licensehav1.PairForming, pods: healthy, want: licensehav1.PairActive},
		{name: "healthy, blocked in progress", pods: healthy, blocked: licenceMissing, want: licensehav1.PairDegraded},
		{name: "healthy, failed", pods: healthy, blocked: otherGroupsPod, want: licensehav1.PairFailed, stalled: true},
		{name: "forming, failed", pods: pods(), blocked: otherGroupsPod, want: licensehav1.PairFailed, stalled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := statusPair(1, licensehav1.ActiveActive)
			p.Status.Phase = tc.prev
			st := pairStatusOf(t, p, pairInput{pods: tc.pods, blocked: tc.blocked})
			if st.Phase != tc.want {
				t.Errorf("phase %s, want %s", st.Phase, tc.want)
			}
			if got := meta.IsStatusConditionTrue(st.Conditions, licensehav1.ConditionStalled); got != tc.stalled {
				t.Errorf("Stalled %v, want %v", got, tc.stalled)
			}
		})
	}
}

// TestPurePairConditionSet: the pair sets exactly Ready, Connected,
// Synchronized and Degraded (and Stalled when failed), leaving conditions
// others set.
func TestPurePairConditionSet(t *testing.T) {
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	p := statusPair(3, licensehav1.ActivePassive)
	p.Status.Conditions = []metav1.Condition{{Type: licensehav1.ConditionLicenseValid, Status: "True",
		Reason: licensehav1.ReasonLicensesPresent, LastTransitionTime: earlier, ObservedGeneration: 2}}
	st := pairStatusOf(t, p, pairInput{pods: pods(pairMember("main", group.StateActive, 1, "1", "backup"),
		pairMember("backup", group.StateStandby, 1, "1", "main")), lease: heldLease("plant-main", 1)})
	got := map[string]string{}
	for _, c := range st.Conditions {
		got[c.Type] = string(c.Status) + " " + c.Reason
	}
	want := map[string]string{
		licensehav1.ConditionLicenseValid: "True " + licensehav1.ReasonLicensesPresent,
		licensehav1.ConditionReady:        "True " + licensehav1.ReasonServing,
		licensehav1.ConditionConnected:    "True " + licensehav1.ReasonPeersConnected,
		licensehav1.ConditionSynchronized: "True " + licensehav1.ReasonInSync,
		licensehav1.ConditionDegraded:     "False " + licensehav1.ReasonMembersHealthy,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("conditions\n got %v\nwant %v", got, want)
	}
	if lv := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionLicenseValid); lv.ObservedGeneration != 2 || !lv.LastTransitionTime.Equal(&earlier) {
		t.Errorf("LicenseValid was rewritten: %+v", lv)
	}
	if st.SyncState != licensehav1.ConnectedSynchronized || st.Phase != licensehav1.PairActive || st.ActiveServer != licensehav1.SideMain {
		t.Errorf("syncState %s phase %s active %s", st.SyncState, st.Phase, st.ActiveServer)
	}
}

// TestPurePairVersionMismatch: different server versions degrade a serving
// pair with reason VersionMismatch, taking precedence over a lost
// connection; equal versions do not.
func TestPurePairVersionMismatch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		main, back string
		backPeers  []string
		wantReason string
	}{
		{name: "equal", main: "2.0", back: "2.0", backPeers: []string{"main"}, wantReason: licensehav1.ReasonMembersHealthy},
		{name: "different", main: "2.0", back: "2.1", backPeers: []string{"main"}, wantReason: licensehav1.ReasonVersionMismatch},
		{name: "different and disconnected: the mismatch is named", main: "2.0", back: "2.1", wantReason: licensehav1.ReasonVersionMismatch},
		{name: "equal and disconnected", main: "2.0", back: "2.0", wantReason: licensehav1.ReasonMemberUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := pods(pairMember("main", group.StateActive, 1, tc.main, "backup"), pairMember("backup", group.StateActive, 1, tc.back, tc.backPeers...))
			st := pairStatusOf(t, statusPair(1, licensehav1.ActiveActive), pairInput{pods: ps})
			d := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded)
			if d == nil || d.Reason != tc.wantReason {
				t.Errorf("Degraded %+v, want reason %s", d, tc.wantReason)
			}
			if tc.wantReason == licensehav1.ReasonVersionMismatch {
				if st.Phase != licensehav1.PairDegraded {
					t.Errorf("phase %s, want Degraded", st.Phase)
				}
				if !containsAll(d.Message, tc.main, tc.back) {
					t.Errorf("message %q does not name both versions", d.Message)
				}
			}
		})
	}
}

// TestPurePairUnknownVersionIsNoMismatch: a side whose server reports no
// version (yet) is not a version mismatch; the triad's check
// (versionMismatch) leaves such members out.
func TestPurePairUnknownVersionIsNoMismatch(t *testing.T) {
	ps := pods(pairMember("main", group.StateActive, 1, "2.0", "backup"), pairMember("backup", group.StateActive, 1, "", "main"))
	st := pairStatusOf(t, statusPair(1, licensehav1.ActiveActive), pairInput{pods: ps})
	if d := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded); d.Reason == licensehav1.ReasonVersionMismatch {
		t.Errorf("Degraded %s: %s", d.Reason, d.Message)
	}
}

// A disconnected pair: never connected, the remote side reported as remote
// (even when a leftover pod of its name is still there), synchronized per
// the last bundle exported (main's cluster) or imported (backup's), and
// Degraded with reason Disconnected only while the bundles lag.
func TestPureDisconnectedPair(t *testing.T) {
	active := func(side string, rev int64) *corev1.Pod {
		return sidePod(side, group.MemberState{State: group.StateActive, Revision: rev, ServerVersion: "2.1"})
	}
	for _, tc := range []struct {
		name      string
		local     licensehav1.PairSide
		revision  int64 // reported by the local side
		bundleRev int64
		leftover  bool // a pod of the remote side's name exists
		synced    bool
		phase     licensehav1.PairPhase
		msg       string
	}{
		{"main, nothing exported", licensehav1.SideMain, 5, 0, false, false, licensehav1.PairDegraded, "No settings bundle exported yet"},
		{"main, exported current", licensehav1.SideMain, 5, 5, false, true, licensehav1.PairActive, "carries the main's current settings"},
		{"main, changed since export", licensehav1.SideMain, 6, 5, true, false, licensehav1.PairDegraded, "changed since the last exported bundle (revision 5)"},
		{"backup, nothing imported", licensehav1.SideBackup, 0, 0, false, false, licensehav1.PairDegraded, "No settings bundle imported yet"},
		{"backup, not applied yet", licensehav1.SideBackup, 4, 5, false, false, licensehav1.PairDegraded, "has not applied the imported bundle (revision 5)"},
		{"backup, applied", licensehav1.SideBackup, 5, 5, true, true, licensehav1.PairActive, "runs the settings of the last imported bundle (revision 5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &licensehav1.LicenseBackupPair{}
			p.Name, p.Namespace, p.Generation = "plant", "printing", 1
			p.Spec.Mode = licensehav1.ActiveActive
			p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: tc.local}
			remote := p.Spec.RemoteSide()
			pods := map[string]*corev1.Pod{string(tc.local): active(string(tc.local), tc.revision)}
			if tc.leftover {
				pods[string(remote)] = active(string(remote), 99)
			}
			st := computePairStatus(p, observed{pods: pods, now: statusNow, bundleRevision: tc.bundleRev})
			localSt, remoteSt := st.Main, st.Backup
			if tc.local == licensehav1.SideBackup {
				localSt, remoteSt = st.Backup, st.Main
			}
			if st.Connected || st.Synchronized != tc.synced || st.Phase != tc.phase || st.BundleRevision != tc.bundleRev {
				t.Errorf("connected %v synchronized %v phase %s bundleRevision %d", st.Connected, st.Synchronized, st.Phase, st.BundleRevision)
			}
			if want := syncStateOf(false, tc.synced); st.SyncState != want {
				t.Errorf("syncState %s, want %s", st.SyncState, want)
			}
			if !localSt.Serving || localSt.Remote || !remoteSt.Remote || remoteSt.Pod != "" || remoteSt.Serving || remoteSt.Ready {
				t.Errorf("local %+v remote %+v", localSt, remoteSt)
			}
			conn := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionConnected)
			if conn == nil || conn.Status != metav1.ConditionFalse || conn.Reason != licensehav1.ReasonDisconnected {
				t.Errorf("Connected = %+v", conn)
			}
			deg := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionDegraded)
			wantDeg, wantReason := metav1.ConditionTrue, licensehav1.ReasonDisconnected
			if tc.synced {
				wantDeg, wantReason = metav1.ConditionFalse, licensehav1.ReasonMembersHealthy
			}
			if deg == nil || deg.Status != wantDeg || deg.Reason != wantReason || !strings.Contains(deg.Message, tc.msg) {
				t.Errorf("Degraded = %+v, want %s/%s with %q", deg, wantDeg, wantReason, tc.msg)
			}
			if sync := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionSynchronized); sync == nil || !strings.Contains(sync.Message, tc.msg) {
				t.Errorf("Synchronized = %+v", sync)
			}
			if ready := meta.FindStatusCondition(st.Conditions, licensehav1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue ||
				!strings.Contains(ready.Message, "another cluster") {
				t.Errorf("Ready = %+v", ready)
			}
		})
	}
}

func TestPureSyncStateOf(t *testing.T) {
	for _, tc := range []struct {
		connected, synchronized bool
		want                    licensehav1.SyncState
	}{
		{true, true, licensehav1.ConnectedSynchronized},
		{true, false, licensehav1.ConnectedNotSynchronized},
		{false, true, licensehav1.DisconnectedSynchronized},
		{false, false, licensehav1.DisconnectedNotSynchronized},
	} {
		if got := syncStateOf(tc.connected, tc.synchronized); got != tc.want {
			t.Errorf("connected %v synchronized %v: %s, want %s", tc.connected, tc.synchronized, got, tc.want)
		}
	}
}

func TestPureSideLicenses(t *testing.T) {
	st := &licensehav1.LicenseBackupPairStatus{
		Main:   licensehav1.PairServerStatus{Licenses: []licensehav1.LicenseStatus{{ID: "LIC-M"}}},
		Backup: licensehav1.PairServerStatus{Licenses: []licensehav1.LicenseStatus{{ID: "LIC-B1"}, {ID: "LIC-B2"}}},
	}
	for _, tc := range []struct {
		side string
		want []string
	}{
		{side: "main", want: []string{"LIC-M"}},
		{side: "backup", want: []string{"LIC-B1", "LIC-B2"}},
	} {
		var got []string
		for _, l := range sideLicenses(st, tc.side) {
			got = append(got, l.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s licences %v, want %v", tc.side, got, tc.want)
		}
	}
}
