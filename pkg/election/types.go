package election

import (
	"fmt"
	"time"
)

// MemberID names a triad member (spec.members[].name).
type MemberID string

// Role is a member's configured role. The values match the API's MemberRole.
type Role string

// Roles of a triad.
const (
	Primary   Role = "Primary"
	Secondary Role = "Secondary"
	Tertiary  Role = "Tertiary"
)

// FailbackPolicy matches the API's failover.failback.
type FailbackPolicy string

// Failback policies.
const (
	FailbackAutomatic FailbackPolicy = "Automatic"
	FailbackManual    FailbackPolicy = "Manual"
)

// Reason says why the Lease changed hands; the operator turns it into Events
// (FailedOver, SwitchedOver, FailedBack).
type Reason string

// Reasons recorded in the Lease.
const (
	// ReasonAcquire: the Lease was free (new triad, or released without a
	// usable target) and a member took it.
	ReasonAcquire Reason = "Acquire"
	// ReasonTakeover: the secondary (or primary) displaced a holder that
	// neither it nor the tertiary could reach.
	ReasonTakeover Reason = "Takeover"
	// ReasonSwitchover: a planned switchover requested by an administrator.
	ReasonSwitchover Reason = "Switchover"
	// ReasonFailback: the secondary handed the role back to the primary.
	ReasonFailback Reason = "Failback"
	// ReasonShutdown: the active member was shutting down and handed over.
	ReasonShutdown Reason = "Shutdown"
	// ReasonUnhealthy: the active member's license server could not serve,
	// and it handed the role to a member whose server can.
	ReasonUnhealthy Reason = "ServerUnhealthy"
	// ReasonRoleChange: the spec's roles changed (the holder is no longer
	// the primary, or no longer a candidate) and it handed over.
	ReasonRoleChange Reason = "RoleChange"
)

// LeaseRecord is the content of the Lease <triad>-active that the protocol
// reads and writes. The LeaseStore maps it onto coordination/v1: Holder to
// holderIdentity, the other fields to annotations; it also maintains
// renewTime, acquireTime and leaseTransitions, which the protocol does not
// read.
type LeaseRecord struct {
	// Holder is the member holding the Lease; empty when released.
	Holder MemberID
	// HolderIncarnation identifies the holder's process: a restarted member
	// never resumes the term of its former incarnation.
	HolderIncarnation uint64
	// Epoch is the fencing epoch: it increases by one on every acquisition
	// and stays the same on renewal and release.
	Epoch int64
	// HandoffTo names the member a releasing holder hands the role to.
	HandoffTo MemberID
	// Reason is why the Lease last changed hands.
	Reason Reason
	// AfterRelease is true when this epoch began from a released Lease:
	// the previous holder had stopped serving before it released, so voters
	// may drop the grant they gave it at once.
	AfterRelease bool
	// ServeFor (pairs only) is how long after sending this write, on its
	// own clock, the holder may serve on the Lease alone, without a grant
	// from its peer (0: it serves only on grants). A member taking the
	// Lease over from such a record waits until that has certainly passed.
	ServeFor time.Duration `json:",omitempty"`
	// Version is the store's resourceVersion, used for compare-and-swap.
	// Set by the store; ignored in heartbeats.
	Version string
}

// rank orders what members know about the Lease: a higher epoch is newer,
// and the release of an epoch is newer than its holding.
func (r LeaseRecord) rank() int64 {
	if r.Holder == "" && r.Epoch > 0 {
		return 2*r.Epoch + 1
	}
	return 2 * r.Epoch
}

func (r LeaseRecord) String() string {
	if r.Holder == "" {
		return fmt.Sprintf("released@%d(to=%s,%s)", r.Epoch, r.HandoffTo, r.Reason)
	}
	return fmt.Sprintf("%s/%d@%d(%s)", r.Holder, r.HolderIncarnation, r.Epoch, r.Reason)
}

// Grant is a voter's promise to a lease holder: "I heard your heartbeat sent
// at SentAt (your clock) while I considered you the holder of Epoch, and I
// will not grant anyone else until that heartbeat is hold(ValidFor) old on
// my clock". The holder may serve until SentAt+min(its PeerTimeout,
// ValidFor) on its own clock. ValidFor is the voter's peer timeout: a grant
// binds the voter for exactly what the grantee may use, also while the two
// run different timings (a spec edit that reached one of them first).
type Grant struct {
	Incarnation uint64
	SentAt      time.Duration
	Epoch       int64
	ValidFor    time.Duration
}

// Heartbeat is the only peer message. Members send one to each peer every
// HeartbeatInterval and at once when its content changes.
type Heartbeat struct {
	From MemberID
	// To is the receiver; a heartbeat addressed to someone else is dropped.
	To MemberID
	// Incarnation identifies the sender's process. Its high 32 bits are a
	// counter that only grows (a restarted member learns its former value
	// from the peers' Echo and continues above it); its low 32 bits are
	// random per process. Heartbeats of an older incarnation are ignored.
	Incarnation uint64
	// Seq numbers the sender's heartbeats within its incarnation; a
	// heartbeat counts only when its Seq is above every one seen before, so a
	// replayed or reordered old heartbeat refreshes nothing.
	Seq uint64
	// Echo is the receiver's incarnation as the sender last heard it (0:
	// never). A heartbeat counts as contact only when it echoes the
	// receiver's current incarnation: the sender has heard this process.
	Echo uint64
	// SentAt is the sender's monotonic clock when it sent the heartbeat.
	SentAt time.Duration
	// PeerTimeout and FenceDelay are the sender's timing: voters bind
	// themselves for the longest a grantee may serve.
	PeerTimeout time.Duration
	FenceDelay  time.Duration
	// View is the newest Lease content the sender knows.
	View LeaseRecord
	// Holding is the epoch the sender holds in this incarnation, 0 if none.
	Holding int64
	// Serving is true while the sender serves (informational).
	Serving bool
	// Eligible is true when the sender can take the active role if handed
	// to it: it is the primary or the secondary in its configuration, is
	// not shutting down, its license server is healthy and its Lease calls
	// succeed.
	Eligible bool
	// Hears lists the members the sender heard from within PeerTimeout
	// (sorted): the tertiary's vote on a takeover.
	Hears []MemberID
	// Grant, when set, is the sender's grant to the receiver.
	Grant *Grant
}

// LeaseOp is a Lease store operation.
type LeaseOp int

// Lease store operations.
const (
	// LeaseGet reads the Lease.
	LeaseGet LeaseOp = iota + 1
	// LeaseCreate creates the Lease; it fails with Conflict if it exists.
	LeaseCreate
	// LeaseUpdate replaces the Lease if its resourceVersion still equals
	// Record.Version; it fails with Conflict otherwise.
	LeaseUpdate
)

func (o LeaseOp) String() string {
	switch o {
	case LeaseGet:
		return "Get"
	case LeaseCreate:
		return "Create"
	case LeaseUpdate:
		return "Update"
	}
	return "?"
}

// LeaseCommand asks the driver to perform one Lease operation and to report
// its result with Machine.LeaseResult, carrying the same ID. At most one
// command is outstanding at a time; the driver must always report a result
// (Unreachable on timeout), or the machine stops using the Lease.
type LeaseCommand struct {
	ID     uint64
	Op     LeaseOp
	Record LeaseRecord
}

// LeaseOutcome classifies a Lease operation's result.
type LeaseOutcome int

// Lease operation outcomes.
const (
	// LeaseOK: the operation succeeded; Record is the stored Lease.
	LeaseOK LeaseOutcome = iota + 1
	// LeaseNotFound: Get found no Lease, or Update found it deleted.
	LeaseNotFound
	// LeaseConflict: Create found an existing Lease, or Update found a
	// different resourceVersion.
	LeaseConflict
	// LeaseUnreachable: the store did not answer in time. The operation may
	// or may not have taken effect.
	LeaseUnreachable
)

func (o LeaseOutcome) String() string {
	switch o {
	case LeaseOK:
		return "OK"
	case LeaseNotFound:
		return "NotFound"
	case LeaseConflict:
		return "Conflict"
	case LeaseUnreachable:
		return "Unreachable"
	}
	return "?"
}

// LeaseResult reports a LeaseCommand's outcome.
type LeaseResult struct {
	ID      uint64
	Outcome LeaseOutcome
	Record  LeaseRecord
}

// Mode is what the member's license server must do.
type Mode int

// Server modes.
const (
	// Fence: refuse checkouts and role changes (the member is a standby
	// that may become active later).
	Fence Mode = iota
	// Serve: serve clients with Epoch until Until.
	Serve
	// Witness: the tertiary's server never serves.
	Witness
)

func (m Mode) String() string {
	switch m {
	case Serve:
		return "Serve"
	case Witness:
		return "Witness"
	}
	return "Fence"
}

// ServerState is the desired state of the member's license server.
type ServerState struct {
	// Seq grows with every change of the desired state. The driver passes
	// it to the server, which refuses a request older than one it applied
	// (a late Serve never undoes a Fence), and reports confirmations with
	// Machine.ServerResult.
	Seq  uint64
	Mode Mode
	// Epoch is the fencing epoch the server must carry (Serve) or last
	// carried (Fence); the server and the synced state refuse anything
	// older than the highest epoch they have seen.
	Epoch int64
	// Until is the member's monotonic clock reading at which a Serve ends
	// unless a later ServerState extends it. The server must stop serving
	// by then on its own, even if the agent is stuck (see Config.FenceDelay).
	Until time.Duration
}

// Label is the value of the pod label licenseha.io/role.
type Label string

// Role labels.
const (
	LabelActive    Label = "active"
	LabelStandby   Label = "standby"
	LabelWitness   Label = "witness"
	LabelUnhealthy Label = "unhealthy"
)

// Output is what a machine wants done after an input. Apply it in this
// order: Server first (a fence must reach the server before anything else
// leaves the member), then Lease, then Messages.
type Output struct {
	// Server is the desired server state (always set; unchanged in most
	// steps).
	Server ServerState
	// Label is the role label to publish.
	Label Label
	// Lease is a Lease command to execute, or nil.
	Lease *LeaseCommand
	// Messages are heartbeats to send (each names its receiver), best
	// effort.
	Messages []Heartbeat
	// NextWake is the clock reading at which the machine next needs Tick,
	// if no other input arrives earlier.
	NextWake time.Duration
	// Done is true once Shutdown has completed: the member has stopped
	// serving and handed over (or had nothing to hand over); the agent may
	// exit.
	Done bool
}
