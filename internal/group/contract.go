package group

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/licenseha/licenseha/pkg/election"
	"github.com/licenseha/licenseha/pkg/election/kubelease"
)

// The API's values as the agents see them in Config and write them to their
// pods: the agents use these names, never the CRD package's (the agent does
// not link it; TestContractMatchesTheAPI holds them to the API's).
const (
	// SideMain and SideBackup are a backup pair's members (Member.Name and
	// Member.Role).
	SideMain   = "main"
	SideBackup = "backup"
	// RolePrimary, RoleSecondary and RoleTertiary are a triad member's
	// configured role (Member.Role).
	RolePrimary   = "Primary"
	RoleSecondary = "Secondary"
	RoleTertiary  = "Tertiary"
	// ModeActivePassive is the pair mode in which one side serves
	// (Config.Mode); ActiveActive lets both serve.
	ModeActivePassive = "ActivePassive"
	// RolesSymmetric keeps whichever pair side holds the role
	// (Config.Roles); Fixed hands it back to the main.
	RolesSymmetric = "Symmetric"

	// LabelRole is the member pod label the agent keeps at the member's
	// current role, RoleLabelActive or RoleLabelStandby (the Services
	// select the active member by it).
	LabelRole          = "licenseha.io/role"
	RoleLabelActive    = "active"
	RoleLabelStandby   = "standby"
	RoleLabelWitness   = "witness"
	RoleLabelUnhealthy = "unhealthy"

	// DefaultDataPath is the server's data folder when spec.server.dataPath
	// is not set.
	DefaultDataPath = "/var/lib/licenseha"
)

// Defaults of the timing fields, set here once: the builder fills Config
// with them where the spec leaves a field out, and Config's accessors fall
// back to them. The CRDs' +kubebuilder:default markers must say the same
// (a test compares them).
const (
	DefaultTriadPeerTimeout  = election.DefaultPeerTimeout
	DefaultPairPeerTimeout   = election.DefaultPeerTimeout
	DefaultHeartbeatInterval = election.DefaultHeartbeatInterval
	DefaultTriadSyncInterval = 10 * time.Second
	DefaultPairSyncInterval  = 30 * time.Second
)

// The field managers of the programs that write to the API server (each
// also its user agent or event reporter): what `kubectl get --show-managed-
// fields` names as the owner of every field licenseha writes.
const (
	FieldManagerOperator = "licenseha-operator"
	FieldManagerAgent    = "licenseha-agent"
	FieldManagerPlugin   = "kubectl-licenseha"
)

// Lease annotations of the active role, as pkg/election/kubelease writes
// them.
const (
	// AnnotationLeaseEpoch holds the fencing epoch of the current term.
	AnnotationLeaseEpoch = kubelease.AnnotationEpoch
	// AnnotationLeaseReason says why the role last changed hands: Acquire,
	// Takeover, Switchover, Shutdown or Failback.
	AnnotationLeaseReason = kubelease.AnnotationReason
)

// RoleLabels are every value of LabelRole.
var RoleLabels = []string{RoleLabelActive, RoleLabelStandby, RoleLabelWitness, RoleLabelUnhealthy}

// Why the Lease says the role last moved (AnnotationLeaseReason), as the
// election writes it.
const (
	LeaseReasonAcquire    = string(election.ReasonAcquire)
	LeaseReasonTakeover   = string(election.ReasonTakeover)
	LeaseReasonSwitchover = string(election.ReasonSwitchover)
	LeaseReasonFailback   = string(election.ReasonFailback)
	LeaseReasonShutdown   = string(election.ReasonShutdown)
	LeaseReasonUnhealthy  = string(election.ReasonUnhealthy)
	LeaseReasonRoleChange = string(election.ReasonRoleChange)
)

// PeerTimeout is how long a member not heard from counts as gone: the
// spec's peerTimeoutSeconds, or the kind's default (a nil Config, not read
// yet, gets the longer pair default).
func (c *Config) PeerTimeout() time.Duration {
	switch {
	case c != nil && c.PeerTimeoutMillis > 0:
		return time.Duration(c.PeerTimeoutMillis) * time.Millisecond
	case c != nil && c.Kind == KindTriad:
		return DefaultTriadPeerTimeout
	}
	return DefaultPairPeerTimeout
}

// PriorPeerTimeout is the longest peer timeout the group ran with recently
// (0 when none is carried).
func (c *Config) PriorPeerTimeout() time.Duration {
	return time.Duration(c.PriorPeerTimeoutMillis) * time.Millisecond
}

// HeartbeatInterval is how often the agents send heartbeats.
func (c *Config) HeartbeatInterval() time.Duration {
	if c.HeartbeatIntervalMillis <= 0 {
		return DefaultHeartbeatInterval
	}
	return time.Duration(c.HeartbeatIntervalMillis) * time.Millisecond
}

// FailbackDelay is how long the primary must be back before it takes the
// role back.
func (c *Config) FailbackDelay() time.Duration {
	return time.Duration(c.FailbackDelaySeconds) * time.Second
}

// SyncInterval is how often state and data folders are synced (at least a
// second).
func (c *Config) SyncInterval() time.Duration {
	return time.Duration(max(c.SyncIntervalSeconds, 1)) * time.Second
}

// Seconds is a default as the spec's whole seconds.
func Seconds(d time.Duration) int32 { return int32(d / time.Second) }

// PodReady says whether a member pod counts as ready, for the operator's
// status and the plugin alike: running, not being deleted, and Ready.
func PodReady(p *corev1.Pod) bool {
	if p == nil || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
