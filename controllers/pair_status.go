package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// syncStateOf combines the two flags into the pair's four states.
func syncStateOf(connected, synchronized bool) licensehav1.SyncState {
	switch {
	case connected && synchronized:
		return licensehav1.ConnectedSynchronized
	case connected:
		return licensehav1.ConnectedNotSynchronized
	case synchronized:
		return licensehav1.DisconnectedSynchronized
	}
	return licensehav1.DisconnectedNotSynchronized
}

// computePairStatus derives a pair's status from its pods and the Lease.
// Connected: both agents report hearing each other. Synchronized: the backup
// holds the settings revision the main last published and, with
// spec.sync.paths, the files revision too. A server serves when its agent
// reports it active and, in ActivePassive, it holds the Lease. It is a pure
// function: it reads the pair (spec, generation, the status it had) and obs,
// changes neither, and returns the new status.
func computePairStatus(p *licensehav1.LicenseBackupPair, obs observed) licensehav1.LicenseBackupPairStatus {
	prev := &p.Status
	st := p.Status.DeepCopy()
	holder, _ := leaseHolder(obs.lease)
	activePassive := p.Spec.Mode == licensehav1.ActivePassive
	reports := map[string]group.MemberState{}
	remote := p.Spec.RemoteSide()
	side := func(name string) licensehav1.PairServerStatus {
		out := licensehav1.PairServerStatus{Pod: group.PodName(p.Name, name), Licenses: sideLicenses(st, name)}
		out.Stopped = name == string(licensehav1.SideMain) && p.Spec.Main.Stopped ||
			name == string(licensehav1.SideBackup) && p.Spec.Backup.Stopped
		if name == string(remote) {
			// Runs in the other cluster: nothing of it is known here, and a
			// pod of its name (left from before the pair was disconnected)
			// is on its way out.
			return licensehav1.PairServerStatus{Remote: true, Licenses: out.Licenses}
		}
		pod := obs.pods[name]
		if pod == nil {
			if out.Stopped {
				out.Pod = ""
			}
			return out
		}
		out.PodIP, out.Ready = pod.Status.PodIP, group.PodReady(pod)
		if r, ok := group.ParseMemberState(pod.Annotations); ok && pod.Status.Phase == corev1.PodRunning && !podFailing(pod) {
			reports[name] = r
			out.Serving = r.State == group.StateActive && (!activePassive || holder == pod.Name)
			out.Version = r.ServerVersion
			out.SettingsHash = r.SettingsHash
		}
		return out
	}
	st.ClientPort, st.Endpoint = clientEndpoint(p.Namespace, group.ServiceName(p.Name), p.Spec.Server.Port)
	st.Main, st.Backup = side(string(licensehav1.SideMain)), side(string(licensehav1.SideBackup))

	mainR, mainOK := reports[string(licensehav1.SideMain)]
	backR, backOK := reports[string(licensehav1.SideBackup)]
	st.Connected = mainOK && backOK && len(mainR.Peers) > 0 && len(backR.Peers) > 0
	// Both report the settings their servers run: a backup whose settings
	// were changed on it (during a failover) is not synchronized until the
	// main's settings overwrite them. The synced folders are in step when
	// the side that applies holds the revision the other published (the
	// serving side of an ActivePassive pair publishes, whichever it is).
	st.Synchronized = mainOK && backOK && backR.Revision >= mainR.Revision &&
		(len(p.Spec.Sync.Paths) == 0 || backR.FilesRevision == mainR.FilesRevision) &&
		(mainR.SettingsHash == "" || backR.SettingsHash == "" || mainR.SettingsHash == backR.SettingsHash)
	hashes := map[string]string{}
	for name, r := range reports {
		hashes[name] = r.SettingsHash
	}
	settingsApplied(st.Settings, hashes)
	st.BundleRevision = 0
	var bundleMsg string
	if remote != "" {
		st.Connected = false
		st.BundleRevision = obs.bundleRevision
		st.Synchronized, bundleMsg = disconnectedSync(p.Spec.Disconnected.LocalSide, obs.bundleRevision, reports)
	}
	st.SyncState = syncStateOf(st.Connected, st.Synchronized)
	// lastSyncTime moves when the backup catches up with the main, not on a
	// timer, so a steady pair writes nothing.
	if st.Synchronized && (!prev.Synchronized || st.LastSyncTime == nil) {
		now := obs.now
		st.LastSyncTime = &now
	}

	st.ActiveServer = ""
	if activePassive {
		switch {
		case st.Main.Serving:
			st.ActiveServer = licensehav1.SideMain
		case st.Backup.Serving:
			st.ActiveServer = licensehav1.SideBackup
		}
		if st.ActiveServer == licensehav1.SideBackup && prev.ActiveServer != licensehav1.SideBackup {
			st.Failovers++
		}
	}
	serving := st.Main.Serving || st.Backup.Serving
	// A side that reports no version (a vendor server without an admin
	// API, an agent that has not polled its server yet) is not a mismatch.
	versionMismatch := mainOK && backOK && mainR.ServerVersion != "" && backR.ServerVersion != "" &&
		mainR.ServerVersion != backR.ServerVersion

	gen := p.Generation
	servingMsg := "Main and backup serve clients"
	switch {
	case activePassive:
		servingMsg = fmt.Sprintf("The %s serves clients", st.ActiveServer)
	case remote != "":
		servingMsg = fmt.Sprintf("The %s serves clients in this cluster; the %s runs in another cluster (disconnected pair)", p.Spec.Disconnected.LocalSide, remote)
	case !st.Backup.Serving:
		servingMsg = "Only the main serves clients"
	case !st.Main.Serving:
		servingMsg = "Only the backup serves clients"
	}
	h := health{
		serving:       serving,
		servingMsg:    servingMsg,
		notServingMsg: "Neither server serves",
		healthyMsg:    "Both servers are up, connected and in sync",
		blocked:       obs.blocked,
	}
	switch {
	case versionMismatch:
		h.lostReason = licensehav1.ReasonVersionMismatch
		h.lostMsg = fmt.Sprintf("Main runs server version %s and backup %s; both must run the same version and edition. Upgrade the backup first, then the main", mainR.ServerVersion, backR.ServerVersion)
		if compareVersions(mainR.ServerVersion, backR.ServerVersion) > 0 {
			// Upgraded in the wrong order: a failover moves the main's
			// clients to an older server, which may not read what the newer
			// main published.
			h.lostMsg += fmt.Sprintf(". The main is newer than the backup: a failover would move its clients to the older backup (%s); upgrade the backup", backR.ServerVersion)
		}
	case remote != "":
		// Disconnected on purpose: the other side is not "down"; what
		// degrades the pair is settings bundles that have not caught up.
		h.healthyMsg = fmt.Sprintf("The %s runs here and the %s in another cluster (disconnected pair); %s", p.Spec.Disconnected.LocalSide, remote, bundleMsg)
		if !st.Synchronized {
			h.lostReason, h.lostMsg = licensehav1.ReasonDisconnected, bundleMsg
		}
	case !st.Connected || !st.Synchronized:
		h.lostReason = licensehav1.ReasonMemberUnavailable
		h.lostMsg = "Serving without full redundancy: a server is down, disconnected or out of sync"
	}
	for _, sd := range []struct {
		name    licensehav1.PairSide
		stopped bool
	}{{licensehav1.SideMain, st.Main.Stopped}, {licensehav1.SideBackup, st.Backup.Stopped}} {
		if sd.stopped && sd.name != remote {
			// Stopped on purpose: say so rather than "down".
			h.lostReason = licensehav1.ReasonSideStopped
			h.lostMsg = fmt.Sprintf("The %s is stopped on purpose (spec.%s.stopped); the pair has no redundancy until it is resumed (kubectl licenseha resume %s --side %s)",
				sd.name, sd.name, p.Name, sd.name)
			break
		}
	}
	ready, degraded := readyAndDegraded(gen, obs.now, h)
	connected := boolCondition(gen, licensehav1.ConditionConnected, st.Connected, licensehav1.ReasonPeersConnected, licensehav1.ReasonPeersDisconnected,
		"Main and backup reach each other", "Main and backup do not reach each other")
	synchronized := boolCondition(gen, licensehav1.ConditionSynchronized, st.Synchronized, licensehav1.ReasonInSync, licensehav1.ReasonOutOfSync,
		"The backup holds the main's latest settings", "The backup does not hold the main's latest settings")
	if remote != "" {
		connected.Reason = licensehav1.ReasonDisconnected
		connected.Message = fmt.Sprintf("Disconnected pair (spec.disconnected): the %s runs in another cluster; settings travel as signed bundles (kubectl licenseha backup export, then import)", remote)
		synchronized.Message = bundleMsg
	}
	setConditions(&st.Conditions, obs.now, ready, connected, synchronized, degraded)

	idle := licensehav1.PairDegraded
	if prev.Phase == "" || prev.Phase == licensehav1.PairForming {
		idle = licensehav1.PairForming
	}
	st.Phase = servingPhase(serving, h.lostReason == "", idle, obs.blocked,
		phases[licensehav1.PairPhase]{licensehav1.PairActive, licensehav1.PairDegraded, licensehav1.PairFailed})
	setStalled(&st.Conditions, gen, obs.now, obs.blocked)
	return *st
}

func sideLicenses(st *licensehav1.LicenseBackupPairStatus, side string) []licensehav1.LicenseStatus {
	if side == string(licensehav1.SideMain) {
		return st.Main.Licenses
	}
	return st.Backup.Licenses
}

// disconnectedSync says whether a disconnected pair's settings bundles have
// caught up, as far as this cluster can know: in the main's cluster, the
// last bundle exported carries the settings revision the main runs; in the
// backup's, the backup has applied the last bundle imported. The message
// says so, or what to do.
func disconnectedSync(local licensehav1.PairSide, bundleRev int64, reports map[string]group.MemberState) (bool, string) {
	r, ok := reports[string(local)]
	switch {
	case local == licensehav1.SideMain && bundleRev == 0:
		return false, "No settings bundle exported yet: run kubectl licenseha backup export here and import the bundle in the backup's cluster"
	case local == licensehav1.SideMain && !ok:
		return false, fmt.Sprintf("Bundle revision %d exported; the main does not report its settings revision yet", bundleRev)
	case local == licensehav1.SideMain && r.Revision > bundleRev:
		return false, fmt.Sprintf("The main's settings (revision %d) changed since the last exported bundle (revision %d): export a new bundle and import it in the backup's cluster", r.Revision, bundleRev)
	case local == licensehav1.SideMain:
		return true, fmt.Sprintf("The last exported bundle (revision %d) carries the main's current settings", bundleRev)
	case bundleRev == 0:
		return false, "No settings bundle imported yet: export one in the main's cluster and run kubectl licenseha backup import here"
	case !ok || r.Revision < bundleRev:
		return false, fmt.Sprintf("The backup has not applied the imported bundle (revision %d) yet", bundleRev)
	}
	return true, fmt.Sprintf("The backup runs the settings of the last imported bundle (revision %d)", bundleRev)
}
