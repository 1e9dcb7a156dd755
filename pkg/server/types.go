package server

import (
	"time"
)

// Role is what a member does in its group. Only the active member serves
// checkouts; the member's supervisor (the licenseha agent) sets the role.
type Role string

// Roles a server can hold.
const (
	RoleActive  Role = "active"
	RoleStandby Role = "standby"
	RoleWitness Role = "witness"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleActive || r == RoleStandby || r == RoleWitness
}

// Error codes, stable for clients and scripts, carried in Error.Code.
const (
	CodeBadRequest       = "bad_request"
	CodeNotActive        = "not_active"
	CodeNoSeat           = "no_seat"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeStaleEpoch       = "stale_epoch"
	CodeStaleSequence    = "stale_sequence"
	CodeStaleSnapshot    = "stale_snapshot"
	CodeTooManyCheckouts = "too_many_checkouts"
	CodeUnknownLicense   = "unknown_license"
	CodeLicenseInvalid   = "license_invalid"
	CodeTooLarge         = "too_large"
	CodeStateFull        = "state_full"
	CodeInternal         = "internal"
)

// Error is the body of every error response.
type Error struct {
	// Code is one of the Code* constants.
	Code string `json:"code"`
	// Message explains the error to a person. A member that does not serve
	// answers "not active".
	Message string `json:"error"`
	// Field names the request field at fault, for bad_request (and "seq"
	// for stale_sequence).
	Field string `json:"field,omitempty"`
	// Active is the member name of the active member when known, for not_active.
	Active string `json:"active,omitempty"`
}

// CheckoutRequest asks for a printer seat (POST /v1/checkouts) or heartbeats
// and re-asserts one (PUT /v1/checkouts/{id}). Each field is 1 to
// MaxNameBytes bytes of printable UTF-8 characters.
type CheckoutRequest struct {
	// Client identifies the user or program.
	Client string `json:"client"`
	// Printer names the printer the seat is for; OtherPrinter ("*") is
	// reserved.
	Printer string `json:"printer"`
	// License is a licence id, a product name, or (on backup pairs) the id of
	// the peer's licence mapped by an alias.
	License string `json:"license"`
}

// Checkout is a granted printer seat.
type Checkout struct {
	// ID identifies the checkout; it stays the same across heartbeats,
	// re-assertions and failovers.
	ID string `json:"id"`
	// License is the id of the local licence that serves the seat.
	License string `json:"license"`
	// ExpiresAt is when the seat is freed unless a heartbeat arrives.
	ExpiresAt time.Time `json:"expiresAt"`
	// Member is the member that granted or last renewed the checkout.
	Member string `json:"member"`
}

// UsageReport adds printed jobs and labels to a checkout's usage statistics
// (POST /v1/checkouts/{id}/usage). Both must not be negative; the counters
// they add to stop at the int64 maximum.
type UsageReport struct {
	Jobs   int64 `json:"jobs"`
	Labels int64 `json:"labels"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Role      Role              `json:"role"`
	Member    string            `json:"member"`
	Group     string            `json:"group"`
	Active    string            `json:"active,omitempty"`
	Epoch     uint64            `json:"epoch"`
	Licenses  []LicenseStatus   `json:"licenses"`
	Checkouts int               `json:"checkouts"`
	Aliases   map[string]string `json:"aliases,omitempty"`
}

// LicenseStatus describes one licence file the server found.
type LicenseStatus struct {
	// File is the file name in the licence directory.
	File string `json:"file"`
	// ID, Product, Edition, Printers and NotAfter are empty when the file
	// could not be read.
	ID        string    `json:"id,omitempty"`
	Product   string    `json:"product,omitempty"`
	Edition   string    `json:"edition,omitempty"`
	Printers  int       `json:"printers,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	// InUse counts the printer seats held.
	InUse int `json:"inUse"`
	// Valid tells whether the licence serves checkouts.
	Valid bool `json:"valid"`
	// Reason explains why an invalid licence is refused.
	Reason string `json:"reason,omitempty"`
}

// State is the body of GET /admin/v1/state, polled by the supervisor.
type State struct {
	Role     Role   `json:"role"`
	Epoch    uint64 `json:"epoch"`
	Revision uint64 `json:"revision"`
	Member   string `json:"member"`
	Group    string `json:"group"`
	// Active is the member name of the active member when known.
	Active  string `json:"active,omitempty"`
	Version string `json:"version"`
	// Corrections counts what the server corrected, since it started, to
	// keep its state within its bounds; omitted while nothing was.
	Corrections *Corrections `json:"corrections,omitempty"`
}

// Corrections counts values the server corrected instead of refusing or
// overflowing. Counters are per server process.
type Corrections struct {
	// SaturatedCounts counts usage counters that stopped at the int64
	// maximum instead of wrapping around.
	SaturatedCounts uint64 `json:"saturatedCounts,omitempty"`
	// ClampedCounts counts negative counts of imported or stored usage
	// statistics that were set to 0.
	ClampedCounts uint64 `json:"clampedCounts,omitempty"`
	// MergedUsageRows counts duplicate rows of imported or stored usage
	// statistics added into one.
	MergedUsageRows uint64 `json:"mergedUsageRows,omitempty"`
	// OverflowUsage counts checkouts and usage reports of printers without
	// a row of their own in the month (beyond the row cap or the size
	// budget), counted under the printer "*" row of their licence.
	OverflowUsage uint64 `json:"overflowUsage,omitempty"`
	// UncountedUsage counts checkouts and usage reports not counted at all
	// because not even a "*" row fitted the size budget.
	UncountedUsage uint64 `json:"uncountedUsage,omitempty"`
	// FoldedUsageRows counts rows added into the "*" row of their licence
	// and month: months before the previous one, rows beyond the row cap
	// or size budget in imported or stored statistics.
	FoldedUsageRows uint64 `json:"foldedUsageRows,omitempty"`
	// DroppedUsageRows counts usage rows removed: months past retention, or
	// beyond the size budget.
	DroppedUsageRows uint64 `json:"droppedUsageRows,omitempty"`
}

// RoleRequest is the body of PUT /admin/v1/role.
type RoleRequest struct {
	Role Role `json:"role"`
	// Epoch is the fencing epoch of the decision. Role active with an epoch
	// older than the server's is refused with stale_epoch; a fence (standby,
	// witness) is applied whatever its epoch, and the server keeps the
	// highest epoch it has seen.
	Epoch uint64 `json:"epoch"`
	// Seq orders the requests of one supervisor process, which increments
	// it with every request it sends (retries included). The server keeps
	// the highest seq it applied and refuses a request whose seq is not
	// greater with stale_sequence, so a request that arrives late (a
	// renewal of role active overtaken by a fence) cannot undo a newer one.
	// 0 means unsequenced: a fence without seq is applied, but role active
	// without seq is refused once the server has applied a sequenced
	// request (once sequenced, always sequenced). The server holds the
	// highest seq in memory only: a new server process accepts any seq,
	// which is right because the server is its supervisor's child and
	// restarts with it, together with the supervisor's counter.
	Seq uint64 `json:"seq,omitempty"`
	// Active is the member name of the active member, a hint the server
	// passes on to clients in not_active answers.
	Active string `json:"active,omitempty"`
	// ServeUntilBoottime, for role active, is the instant (CLOCK_BOOTTIME
	// of the node, in nanoseconds, as read by boottime.Now) at which the
	// server stops serving unless a later request extends it. The server
	// fences itself then even if its supervisor is stuck, the whole pod was
	// frozen and resumed, or the node was suspended: CLOCK_BOOTTIME keeps
	// counting through all of these. Being an absolute instant on a clock
	// both processes share, it does not move when the request itself is
	// delayed. 0 serves without a bound.
	ServeUntilBoottime int64 `json:"serveUntilBoottime,omitempty"`
}

// Settings are the administrator's rules, synchronised across a group.
type Settings struct {
	// Access decides who may check out.
	Access AccessRules `json:"access"`
	// PrinterGroups names sets of printers by glob patterns (path.Match syntax).
	PrinterGroups map[string][]string `json:"printerGroups,omitempty"`
	// Partitions caps seats per printer group and licence:
	// printer group → licence id → maximum seats.
	Partitions map[string]map[string]int `json:"partitions,omitempty"`
	// AllowedPrinters, when not empty, restricts checkouts to printers
	// matching one of these glob patterns.
	AllowedPrinters []string `json:"allowedPrinters,omitempty"`
	// ClientGroups names sets of clients, for reservations.
	ClientGroups map[string]ClientGroup `json:"clientGroups,omitempty"`
	// Reservations keep seats of a licence for a client group:
	// client group → licence id → seats. Other clients get a seat only
	// while the seats not held by a group stay enough for every group's
	// unused reservation.
	Reservations map[string]map[string]int `json:"reservations,omitempty"`
}

// ClientGroup selects clients by id and by address. A client is a member
// when its id matches one of Clients (or Clients is empty) and its address
// is in one of Addresses (or Addresses is empty); at least one must be set.
// Client ids are whatever clients claim; addresses are the connections'
// remote addresses, which clients cannot choose as freely.
type ClientGroup struct {
	// Clients are glob patterns (path.Match syntax) of client ids.
	Clients []string `json:"clients,omitempty"`
	// Addresses are CIDRs or single addresses.
	Addresses []string `json:"addresses,omitempty"`
}

// AccessRules allow or deny checkouts by client id (glob patterns) and by
// client address (CIDR). A deny rule wins; when an allow list is not empty
// the client must match it.
type AccessRules struct {
	AllowUsers     []string `json:"allowUsers,omitempty"`
	DenyUsers      []string `json:"denyUsers,omitempty"`
	AllowAddresses []string `json:"allowAddresses,omitempty"`
	DenyAddresses  []string `json:"denyAddresses,omitempty"`
}

// Aliases maps licence ids of the peer server of a backup pair to local
// licence ids (PUT /admin/v1/aliases).
type Aliases struct {
	Aliases map[string]string `json:"aliases"`
}

// UsageRecord holds the statistics of one printer on one licence in one
// month. Printer OtherPrinter ("*") counts the printers beyond the month's
// row cap, and, for months before the previous one, all printers of the
// licence.
type UsageRecord struct {
	License string `json:"license"`
	Printer string `json:"printer"`
	// Period is the month, "YYYY-MM" in UTC. Records without one (written
	// by older servers) take the month of LastUse.
	Period    string    `json:"period"`
	Checkouts Count     `json:"checkouts"`
	Jobs      Count     `json:"jobs"`
	Labels    Count     `json:"labels"`
	LastUse   time.Time `json:"lastUse"`
}

// CheckoutRecord is a checkout as carried in a snapshot.
type CheckoutRecord struct {
	ID        string    `json:"id"`
	Client    string    `json:"client"`
	Printer   string    `json:"printer"`
	Requested string    `json:"requested"`
	License   string    `json:"license"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Address is the remote address of the connection that created the
	// checkout, for the per-address limit and client groups; empty when
	// unknown.
	Address string `json:"address,omitempty"`
}

// SnapshotFormatVersion is the snapshot format this server writes and reads.
const SnapshotFormatVersion = 1

// Snapshot is the state a group synchronises between its members
// (GET and PUT /admin/v1/snapshot).
type Snapshot struct {
	FormatVersion int    `json:"formatVersion"`
	Group         string `json:"group"`
	Member        string `json:"member"`
	// Revision increases on every change of settings, usage or checkouts.
	Revision uint64 `json:"revision"`
	// Epoch is the fencing epoch of the member that took the snapshot.
	Epoch     uint64           `json:"epoch"`
	TakenAt   time.Time        `json:"takenAt"`
	Settings  Settings         `json:"settings"`
	Usage     []UsageRecord    `json:"usage"`
	Checkouts []CheckoutRecord `json:"checkouts"`
}
