// Package server implements the licenseha reference license server: printer
// seat checkouts with heartbeats, roles fenced by an epoch, settings with
// access rules and partitions, usage statistics, signed licence files and
// state snapshots that a supervisor synchronises across a redundancy group.
//
// ClientHandler serves the client API and AdminHandler the admin API; both
// are plain http.Handlers so they can be mounted on any listener. The
// AdminClient type is a typed client for the admin API.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// Options configure a Server.
type Options struct {
	// Group is the "<namespace>/<name>" of the redundancy group; licences must be bound to it.
	Group string
	// Member is this member's name within the group.
	Member string
	// Role is the initial role.
	Role Role
	// DataDir holds the durable store.
	DataDir string
	// LicenseDir holds the licence files (*.lic).
	LicenseDir string
	// TrustedKeys verify the licence signatures.
	TrustedKeys licensing.KeyRing
	// CheckoutTTL is how long a checkout lives without a heartbeat.
	CheckoutTTL time.Duration
	// MaxCheckoutsPerClient bounds the checkouts one client id may hold; 0 means no bound.
	MaxCheckoutsPerClient int
	// MaxCheckoutsPerAddress bounds the checkouts created from one source
	// address (the connection's remote address; IPv6 addresses count per
	// /64), whatever client ids they name. 0 means MaxCheckoutsPerClient;
	// a negative value means no bound.
	MaxCheckoutsPerAddress int
	// UsageRowsPerPeriod caps the usage rows of named printers per month;
	// 0 means DefaultUsageRowsPerPeriod.
	UsageRowsPerPeriod int
	// UsageMonths is how many months of usage statistics are kept, the
	// current one included; 0 means DefaultUsageMonths.
	UsageMonths int
	// LicenseCheckInterval is how often the licence directory is re-read.
	LicenseCheckInterval time.Duration
	// FlushInterval is how often usage statistics are written to the store.
	FlushInterval time.Duration
	// Version is reported in the admin state.
	Version string
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
	// BoottimeNow returns the node's CLOCK_BOOTTIME in nanoseconds, the
	// clock of RoleRequest.ServeUntilBoottime; nil means boottime.Now.
	BoottimeNow func() int64
}

// Server is a license server. It is safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// bootNow reads the clock of the serve bound (CLOCK_BOOTTIME).
	bootNow func() int64
	store   *store

	reloadMu sync.Mutex // serialises licence reloads
	mu       sync.Mutex // guards the fields below
	role     Role
	// serveUntil ends an active role that is not renewed (CLOCK_BOOTTIME
	// nanoseconds; zero: no end), read with bootNow.
	serveUntil int64
	seq        uint64 // highest RoleRequest.Seq applied (0: none yet)
	epoch      uint64
	revision   uint64
	active     string // member name of the active member, when known
	settings   Settings
	rules      *rules
	aliases    map[string]string

	licenses    map[string]*licensing.License // valid licences by id
	inventory   []LicenseStatus               // every file found, valid or not
	checkouts   map[string]*checkout          // by id
	seats       map[seatKey]*checkout
	inUse       map[string]int            // seats held per licence id
	perClient   map[string]int            // checkouts per client id
	perSource   map[string]int            // checkouts per source address, see sourceKey
	partUse     map[string]map[string]int // printer group → licence id → seats
	resUse      map[string]map[string]int // client group → licence id → seats
	usage       *usageTable
	usageDirty  bool
	metaDirty   bool
	corr        Corrections
	lastLicErrs map[string]string // file → last logged refusal, to log changes only

	// The checkouts' share of the synced state, see budget.go.
	coBudget  int    // CheckoutBudgetBytes; tests lower it
	coBytes   int    // upper bound of the checkouts' JSON
	coAdded   int64  // bytes added since start (with a margin per checkout), never decreasing
	coChanges uint64 // checkouts added or removed since start
	coImports uint64 // imports since start: they replace the checkouts
	coMeasure measurement
	measureMu sync.Mutex // one measurement at a time
}

type seatKey struct{ license, client, printer string }

type checkout struct {
	CheckoutRecord
	partitions []string // printer groups with partitions the printer belongs to
	group      string   // client group with reservations the client belongs to
	source     string   // sourceKey of Address
	bytes      int      // checkoutRowBytes
}

// New opens the store in opts.DataDir, restores durable state and loads the
// licence directory.
func New(opts Options) (*Server, error) {
	if err := licensing.ValidateGroup(opts.Group); err != nil {
		return nil, err
	}
	if opts.Member == "" {
		return nil, errors.New("member name is empty")
	}
	if opts.Role == "" {
		opts.Role = RoleActive
	}
	if !opts.Role.Valid() {
		return nil, fmt.Errorf("role %q is not one of active, standby, witness", opts.Role)
	}
	if opts.CheckoutTTL <= 0 {
		opts.CheckoutTTL = 30 * time.Second
	}
	if opts.LicenseCheckInterval <= 0 {
		opts.LicenseCheckInterval = 10 * time.Second
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 2 * time.Second
	}
	s := &Server{
		opts:        opts,
		log:         opts.Logger,
		now:         opts.Now,
		bootNow:     opts.BoottimeNow,
		role:        opts.Role,
		checkouts:   map[string]*checkout{},
		seats:       map[seatKey]*checkout{},
		inUse:       map[string]int{},
		perClient:   map[string]int{},
		perSource:   map[string]int{},
		partUse:     map[string]map[string]int{},
		resUse:      map[string]map[string]int{},
		licenses:    map[string]*licensing.License{},
		lastLicErrs: map[string]string{},
		coBudget:    CheckoutBudgetBytes,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.usage = newUsageTable(defaultUsageLimits(opts.UsageRowsPerPeriod, opts.UsageMonths), &s.corr, s.log)
	if s.now == nil {
		s.now = time.Now
	}
	if s.bootNow == nil {
		s.bootNow = boottime.Now
	}
	st, err := openStore(opts.DataDir)
	if err != nil {
		return nil, err
	}
	s.store = st
	d, err := st.load()
	if err != nil {
		_ = st.close()
		return nil, err
	}
	r, err := compileSettings(d.settings)
	if err != nil {
		_ = st.close()
		return nil, fmt.Errorf("stored settings: %w", err)
	}
	s.epoch, s.revision, s.settings, s.rules, s.aliases = d.epoch, d.revision, d.settings, r, d.aliases
	before := s.corr
	s.usage.load(d.usage, s.now())
	if s.corr != before {
		s.usageDirty = true
		s.logCorrections("Corrected stored usage statistics", before, s.corr)
	}
	if s.role == RoleActive {
		s.active = opts.Member
	}
	if s.inventory, err = st.inventory(); err != nil {
		_ = st.close()
		return nil, fmt.Errorf("reading the licence inventory: %w", err)
	}
	s.ReloadLicenses()
	return s, nil
}

// Run performs the periodic work (expiring checkouts, re-reading the licence
// directory, flushing usage statistics) until ctx ends, then flushes once more.
func (s *Server) Run(ctx context.Context) {
	expire := time.NewTicker(min(time.Second, s.opts.CheckoutTTL/4))
	licenses := time.NewTicker(s.opts.LicenseCheckInterval)
	flush := time.NewTicker(s.opts.FlushInterval)
	defer expire.Stop()
	defer licenses.Stop()
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-expire.C:
			s.ExpireCheckouts()
		case <-licenses.C:
			s.ReloadLicenses()
		case <-flush.C:
			s.flush()
		}
	}
}

// Close flushes pending statistics and closes the store.
func (s *Server) Close() error {
	s.flush()
	return s.store.close()
}

// flush writes usage statistics and the revision when they changed.
func (s *Server) flush() {
	s.mu.Lock()
	if !s.usageDirty && !s.metaDirty {
		s.mu.Unlock()
		return
	}
	var w write
	rev := s.revision
	w.revision = &rev
	if s.usageDirty {
		w.usage = s.usage.records()
	}
	s.usageDirty, s.metaDirty = false, false
	s.mu.Unlock()
	if err := s.store.write(w); err != nil {
		s.log.Error("Failed to write usage statistics", "err", err)
		s.mu.Lock()
		s.usageDirty, s.metaDirty = true, true
		s.mu.Unlock()
	}
}

// changedLocked records a change of settings, usage or checkouts.
func (s *Server) changedLocked() {
	s.revision++
	s.metaDirty = true
}

// State returns the server's role, epoch and revision.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Role: s.effectiveRoleLocked(), Epoch: s.epoch, Revision: s.revision,
		Member: s.opts.Member, Group: s.opts.Group, Active: s.active, Version: s.opts.Version,
	}
	if s.corr != (Corrections{}) {
		c := s.corr
		st.Corrections = &c
	}
	return st
}

// logCorrections logs what changed between two counts of corrections. It
// logs counts only: never licence ids, client ids or printer names.
func (s *Server) logCorrections(msg string, before, after Corrections) {
	s.log.Warn(msg,
		"clampedCounts", after.ClampedCounts-before.ClampedCounts,
		"saturatedCounts", after.SaturatedCounts-before.SaturatedCounts,
		"mergedUsageRows", after.MergedUsageRows-before.MergedUsageRows,
		"overflowUsage", after.OverflowUsage-before.OverflowUsage,
		"uncountedUsage", after.UncountedUsage-before.UncountedUsage,
		"foldedUsageRows", after.FoldedUsageRows-before.FoldedUsageRows,
		"droppedUsageRows", after.DroppedUsageRows-before.DroppedUsageRows)
}

// effectiveRoleLocked is the role the server acts on: an active role whose
// bound has passed without renewal is a standby.
func (s *Server) effectiveRoleLocked() Role {
	if s.role == RoleActive && s.serveUntil != 0 && s.bootNow() >= s.serveUntil {
		return RoleStandby
	}
	return s.role
}

// errStaleEpoch refuses an active role from an older epoch.
var errStaleEpoch = errors.New("stale epoch")

// errStaleSequence refuses a role request that is not newer than one
// already applied.
var errStaleSequence = errors.New("stale sequence")

// SetRole changes the role under a fencing epoch, in the order of the
// supervisor's sequence numbers.
//
// A request with a seq is applied only if its seq is greater than that of
// every request applied before (stale_sequence otherwise), so a request the
// network delayed cannot undo a newer one: a late renewal of role active
// never undoes a fence. Without a seq, a fence is applied, and role active
// is applied only while the server has never applied a sequenced request.
// Refused requests leave the sequence as it was.
//
// A fence (role standby or witness) is always applied, whatever its epoch:
// stopping to serve is safe at any time, and a supervisor must never have
// to guess the server's epoch to fence it. The server keeps the highest
// epoch it has seen. Role active needs an epoch not older than the server's
// (stale_epoch otherwise); the same epoch may renew or change the role. A
// member that becomes active extends every checkout it knows by one TTL, so
// clients whose heartbeats went to the former active keep their seats while
// they reconnect.
func (s *Server) SetRole(req RoleRequest) error {
	if !req.Role.Valid() {
		return fieldErrorf("role", "%q is not one of active, standby, witness", req.Role)
	}
	if req.ServeUntilBoottime < 0 {
		return fieldErrorf("serveUntilBoottime", "must not be negative, got %d", req.ServeUntilBoottime)
	}
	s.mu.Lock()
	if err := s.checkSeqLocked(req); err != nil {
		s.mu.Unlock()
		return err
	}
	if req.Role == RoleActive && req.Epoch < s.epoch {
		cur := s.epoch
		s.mu.Unlock()
		return fmt.Errorf("%w: role active carries epoch %d, the server is at epoch %d", errStaleEpoch, req.Epoch, cur)
	}
	if req.Seq != 0 {
		s.seq = req.Seq
	}
	old, oldEpoch := s.effectiveRoleLocked(), s.epoch
	s.role, s.epoch = req.Role, max(s.epoch, req.Epoch)
	s.serveUntil = 0
	if req.Role == RoleActive {
		s.serveUntil = req.ServeUntilBoottime
	}
	s.active = req.Active
	if req.Role == RoleActive {
		s.active = s.opts.Member
		if old != RoleActive {
			until := s.now().Add(s.opts.CheckoutTTL)
			for _, c := range s.checkouts {
				if c.ExpiresAt.Before(until) {
					c.ExpiresAt = until
				}
			}
		}
	}
	epoch := s.epoch
	s.mu.Unlock()
	if epoch != oldEpoch {
		if err := s.store.write(write{epoch: &epoch}); err != nil {
			return fmt.Errorf("recording epoch: %w", err)
		}
	}
	if old != req.Role || epoch != oldEpoch {
		s.log.Info("Role changed", "from", old, "to", req.Role, "epoch", epoch, "active", req.Active, "seq", req.Seq)
	}
	return nil
}

// checkSeqLocked refuses a request that is older than one already applied.
func (s *Server) checkSeqLocked(req RoleRequest) error {
	switch {
	case req.Seq != 0 && req.Seq <= s.seq:
		return fmt.Errorf("%w: role %s carries seq %d, the server already applied seq %d; "+
			"a supervisor's requests must carry a seq greater than every one before", errStaleSequence, req.Role, req.Seq, s.seq)
	case req.Seq == 0 && s.seq != 0 && req.Role == RoleActive:
		return fmt.Errorf("%w: role active carries no seq, the server already applied seq %d; "+
			"once a request carried a seq, role active needs one", errStaleSequence, s.seq)
	}
	return nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
