package group

import "encoding/json"

// AnnotationMemberState is the pod annotation in which a member's agent
// reports what it is doing; the operator derives the group's status from
// it. Agents write it only when it changes, never on a timer.
const AnnotationMemberState = "licenseha.io/member-state"

// Member states reported by agents.
const (
	StateActive  = "Active"
	StateStandby = "Standby"
	StateWitness = "Witness"
	StateFenced  = "Fenced"
)

// MemberState is a member agent's report.
type MemberState struct {
	// State is Active, Standby, Witness or Fenced.
	State string `json:"state"`
	// Epoch is the fencing epoch the member knows.
	Epoch int64 `json:"epoch,omitempty"`
	// Peers lists the members it heard from within the peer timeout.
	Peers []string `json:"peers,omitempty"`
	// Revision is the synced-state revision the member holds.
	Revision int64 `json:"revision,omitempty"`
	// ServerVersion is the version its license server reports.
	ServerVersion string `json:"serverVersion,omitempty"`
	// Edition is the best licence edition its server holds.
	Edition string `json:"edition,omitempty"`
	// FilesRevision is, for a group with sync paths, the revision of the
	// extra data folders the member last published (it serves, or is an
	// ActiveActive pair's main), or the one it fully holds.
	FilesRevision int64 `json:"filesRevision,omitempty"`
	// Joining is set while a triad member that just started cannot vote
	// yet: for one grant hold (about the peer timeout plus the fence
	// delay) it neither serves nor vouches for the active member, because
	// it cannot know what its previous run promised. Such a member does
	// not count in the quorum and its pod is not ready.
	Joining bool `json:"joining,omitempty"`
	// SettingsHash is server.SettingsHash of the settings the member's
	// server runs; empty while unknown.
	SettingsHash string `json:"settingsHash,omitempty"`
}

// ParseMemberState reads a member's report from its pod annotations; ok is
// false when there is none or it cannot be read.
func ParseMemberState(annotations map[string]string) (MemberState, bool) {
	raw, found := annotations[AnnotationMemberState]
	if !found {
		return MemberState{}, false
	}
	var s MemberState
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return MemberState{}, false
	}
	return s, true
}
