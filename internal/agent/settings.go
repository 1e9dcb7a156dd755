package agent

import (
	"context"
	"time"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// Settings of spec.settingsRef reach the members through the group
// configuration (group.Config.Settings, validated by the operator). The
// member that owns the settings — a triad's active member, a pair's main —
// applies them to its server whenever the server's settings differ; its
// server's revision moves, it publishes, and the others follow through the
// synced state. Every member reports the hash of the settings its server
// runs on its pod (MemberState.SettingsHash), which the operator shows in
// the group's status.

// settingsReadEvery bounds how often a member re-reads its server's
// settings while only its revision moves (checkouts move it too).
const settingsReadEvery = 2 * time.Second

// settingsRetry is the least time between two failed attempts to apply the
// desired settings.
const settingsRetry = 10 * time.Second

// settingsState is what the loop knows of its server's settings.
type settingsState struct {
	// hash of the server's settings as last read; "" while unknown.
	hash string
	// rev is the server's revision at that read, at when.
	rev uint64
	at  time.Time
	// want is the desired hash at that read.
	want string
	// applies is the syncer's count of applied publications at that read.
	applies uint64
	// failedAt is when applying the desired settings last failed.
	failedAt time.Time
}

// ownsSettings says whether this member applies spec.settingsRef to its
// server: a triad's publishing (active) member, a pair's main.
func (a *Agent) ownsSettings(want desired, st *server.State) bool {
	return a.publishes(want, st)
}

// syncSettings reads the server's settings when they may have changed,
// applies the desired ones when this member owns them, and returns the hash
// of what the server runs.
func (a *Agent) syncSettings(ctx context.Context, cfg *group.Config, want desired, st *server.State, now time.Time) string {
	ss := &a.settings
	desiredHash := ""
	if cfg != nil && cfg.Settings != nil {
		desiredHash = cfg.SettingsHash
	}
	// Synced state applied since the last read changes the settings at once.
	stale := ss.hash == "" || desiredHash != ss.want || a.sync.appliedCount() != ss.applies ||
		(st.Revision != ss.rev && now.Sub(ss.at) >= settingsReadEvery)
	if stale {
		cur, err := a.admin.Settings(ctx)
		if err != nil {
			a.log.V(1).Info("Reading the server's settings failed; will retry", "error", err.Error())
			return ss.hash
		}
		ss.hash, ss.rev, ss.at, ss.want = server.SettingsHash(*cur), st.Revision, now, desiredHash
		ss.applies = a.sync.appliedCount()
	}
	if desiredHash == "" || ss.hash == desiredHash || !a.ownsSettings(want, st) {
		return ss.hash
	}
	if !ss.failedAt.IsZero() && now.Sub(ss.failedAt) < settingsRetry {
		return ss.hash
	}
	if err := a.admin.SetSettings(ctx, *cfg.Settings); err != nil {
		ss.failedAt = now
		a.log.Error(err, "Applying the settings of spec.settingsRef failed; the server keeps its settings", "hash", desiredHash)
		return ss.hash
	}
	a.log.Info("Applied the settings of spec.settingsRef", "hash", desiredHash, "previous", ss.hash)
	ss.hash, ss.failedAt = desiredHash, time.Time{}
	// Read again on the next pass: the revision moved.
	ss.at = time.Time{}
	return ss.hash
}
