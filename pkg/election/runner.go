package election

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// Errors a LeaseStore returns besides "unreachable" (any other error).
var (
	// ErrNotFound: the Lease does not exist.
	ErrNotFound = errors.New("election: lease not found")
	// ErrConflict: Create found the Lease existing, or Update found a
	// different resourceVersion.
	ErrConflict = errors.New("election: lease conflict")
)

// LeaseStore is the Lease <triad>-active. The agent implements it on
// coordination/v1 Leases: Get reads; Create and Update write with the
// resourceVersion in LeaseRecord.Version as precondition (Update) and return
// the stored record with its new resourceVersion. Errors wrapping
// ErrNotFound and ErrConflict classify those outcomes (map the API's
// NotFound, AlreadyExists and Conflict onto them); any other error counts as
// "unreachable", and the write may or may not have happened.
type LeaseStore interface {
	Get(ctx context.Context) (LeaseRecord, error)
	Create(ctx context.Context, rec LeaseRecord) (LeaseRecord, error)
	Update(ctx context.Context, rec LeaseRecord) (LeaseRecord, error)
}

// Transport carries heartbeats between members, best effort.
type Transport interface {
	// Send sends hb to peer to; it must not block for long.
	Send(to MemberID, hb Heartbeat) error
	// Receive delivers heartbeats from peers.
	Receive() <-chan Heartbeat
}

// State is what the agent must make true on its member.
type State struct {
	// Mode: Serve (serve clients with Epoch until Until), Fence (refuse
	// checkouts) or Witness (the tertiary; never serves).
	Mode Mode
	// Epoch is the fencing epoch the server and the synced state must
	// carry; refuse anything older.
	Epoch int64
	// Until is when a Serve ends unless a later State extends it. The
	// server must stop by then on its own even if the agent hangs.
	Until time.Time
	// Label is the value for the pod label licenseha.io/role.
	Label Label
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine   Config
	Store     LeaseStore
	Transport Transport
	// OnState is called from the runner's goroutine whenever the state
	// changes (including every extension of Until). A change to Fence must
	// be in effect on the server within Machine.FenceDelay of the call;
	// the runner sends nothing else until OnState returns.
	OnState func(State)
	// LeaseTimeout bounds each Lease call. Default Machine.RenewInterval.
	LeaseTimeout time.Duration
}

// Runner drives a Machine with the real monotonic clock, a LeaseStore and a
// Transport.
type Runner struct {
	cfg        RunnerConfig
	switchover chan MemberID
	shutdown   chan struct{}
	done       chan struct{}
	once       sync.Once
}

// NewRunner checks cfg and returns a runner; call Run to start it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	cfg.Machine = cfg.Machine.WithDefaults()
	if err := cfg.Machine.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Transport == nil || cfg.OnState == nil {
		return nil, errors.New("election: runner needs a store, a transport and a state callback")
	}
	if cfg.LeaseTimeout == 0 {
		cfg.LeaseTimeout = cfg.Machine.RenewInterval
	}
	return &Runner{cfg: cfg, switchover: make(chan MemberID, 1), shutdown: make(chan struct{}),
		done: make(chan struct{})}, nil
}

// Switchover asks for a planned switchover to target (see
// Machine.RequestSwitchover); deliver it to every member's runner.
func (r *Runner) Switchover(target MemberID) {
	select {
	case r.switchover <- target:
	default: // one is already pending
	}
}

// Shutdown hands over gracefully and waits until Run has returned or ctx
// ends. Call it on SIGTERM, with a deadline of about a second.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.once.Do(func() { close(r.shutdown) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run drives the machine until ctx ends (an abrupt stop: the last State
// stands, bounded by its Until) or a Shutdown completes.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.done)
	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	m, err := New(r.cfg.Machine, now())
	if err != nil {
		return err
	}
	results := make(chan LeaseResult, 1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last State
	shutdown := r.shutdown
	out := m.Tick(now())
	for {
		st := State{Mode: out.Server.Mode, Epoch: out.Server.Epoch, Label: out.Label}
		if st.Mode == Serve {
			st.Until = start.Add(out.Server.Until)
		}
		if st != last {
			r.cfg.OnState(st)
			last = st
		}
		if c := out.Lease; c != nil {
			go r.execute(ctx, *c, results)
		}
		for _, env := range out.Messages {
			_ = r.cfg.Transport.Send(env.To, env.Heartbeat) // best effort: loss is part of the model
		}
		if out.Done {
			return nil // after sending: the last heartbeats announce the release
		}
		timer.Reset(time.Until(start.Add(out.NextWake)))

		select {
		case <-ctx.Done():
			return ctx.Err()
		case hb, ok := <-r.cfg.Transport.Receive():
			if !ok {
				return errors.New("election: transport closed")
			}
			out = m.Receive(now(), hb)
		case res := <-results:
			out = m.LeaseResult(now(), res)
		case target := <-r.switchover:
			out = m.RequestSwitchover(now(), target)
		case <-shutdown:
			shutdown = nil
			out = m.Shutdown(now())
		case <-timer.C:
			out = m.Tick(now())
		}
	}
}

func (r *Runner) execute(ctx context.Context, c LeaseCommand, results chan<- LeaseResult) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTimeout)
	defer cancel()
	var rec LeaseRecord
	var err error
	switch c.Op {
	case LeaseGet:
		rec, err = r.cfg.Store.Get(ctx)
	case LeaseCreate:
		rec, err = r.cfg.Store.Create(ctx, c.Record)
	case LeaseUpdate:
		rec, err = r.cfg.Store.Update(ctx, c.Record)
	}
	res := LeaseResult{ID: c.ID, Record: rec, Outcome: LeaseOK}
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		res.Outcome = LeaseNotFound
	case errors.Is(err, ErrConflict):
		res.Outcome = LeaseConflict
	default:
		res.Outcome = LeaseUnreachable
	}
	results <- res // buffered: at most one command is outstanding
}

// MemoryLeaseStore is a linearizable in-memory LeaseStore for tests.
type MemoryLeaseStore struct {
	mu      sync.Mutex
	rec     LeaseRecord
	exists  bool
	version int
}

// Get implements LeaseStore.
func (s *MemoryLeaseStore) Get(ctx context.Context) (LeaseRecord, error) {
	if err := ctx.Err(); err != nil {
		return LeaseRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exists {
		return LeaseRecord{}, ErrNotFound
	}
	return s.rec, nil
}

// Create implements LeaseStore.
func (s *MemoryLeaseStore) Create(ctx context.Context, rec LeaseRecord) (LeaseRecord, error) {
	if err := ctx.Err(); err != nil {
		return LeaseRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exists {
		return LeaseRecord{}, ErrConflict
	}
	return s.store(rec), nil
}

// Update implements LeaseStore.
func (s *MemoryLeaseStore) Update(ctx context.Context, rec LeaseRecord) (LeaseRecord, error) {
	if err := ctx.Err(); err != nil {
		return LeaseRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.exists:
		return LeaseRecord{}, ErrNotFound
	case rec.Version != s.rec.Version:
		return LeaseRecord{}, ErrConflict
	}
	return s.store(rec), nil
}

func (s *MemoryLeaseStore) store(rec LeaseRecord) LeaseRecord {
	s.version++
	rec.Version = strconv.Itoa(s.version)
	s.rec, s.exists = rec, true
	return rec
}
