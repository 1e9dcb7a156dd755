package election

import (
	"context"
	"errors"
	"net"
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

// LeaseStore is the Lease <triad>-active. Package kubelease implements it on
// coordination/v1 Leases: Get reads; Create and Update write with the
// resourceVersion in LeaseRecord.Version as precondition (Update) and return
// the stored record with its new resourceVersion. Errors wrapping
// ErrNotFound and ErrConflict classify those outcomes; any other error
// counts as "unreachable", and the write may or may not have happened.
type LeaseStore interface {
	Get(ctx context.Context) (LeaseRecord, error)
	Create(ctx context.Context, rec LeaseRecord) (LeaseRecord, error)
	Update(ctx context.Context, rec LeaseRecord) (LeaseRecord, error)
}

// ServerControl is the member's license server as the Runner drives it.
type ServerControl interface {
	// Apply sets the server's state and returns nil once the server has it
	// in effect. The server refuses a command whose Seq is not above every
	// one it applied. For Serve, Deadline is Until as an absolute reading
	// of the Runner's clock (CLOCK_BOOTTIME).
	Apply(ctx context.Context, cmd ServerCommand) error
	// Stop stops the server process at once (it may be restarted, fenced)
	// and returns when it is gone.
	Stop(ctx context.Context) error
}

// RunnerState is what the agent reports on its pod and in metrics.
type RunnerState struct {
	Desired ServerState
	Label   Label
	// Joining: a new incarnation in its quiet period (not ready, not in
	// the quorum).
	Joining bool
	// Hears names the peers heard within the peer timeout.
	Hears []MemberID
	// Holder is the Lease holder this member knows of ("" if released).
	Holder MemberID
	Status Status
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine Config
	// Group and Key authenticate heartbeats (Codec).
	Group string
	Key   []byte
	Store LeaseStore
	// Conn carries the heartbeats; Addr gives a member's address (nil if
	// unknown).
	Conn   net.PacketConn
	Addr   func(MemberID) net.Addr
	Server ServerControl
	// Clock is the member's clock: it must never go back and should keep
	// running in suspend (CLOCK_BOOTTIME). Command deadlines are readings
	// of it.
	Clock func() time.Duration
	// OnState is called from the runner's goroutine after every input.
	OnState func(RunnerState)
	// LeaseTimeout bounds each Lease call (default PeerTimeout/2);
	// ServerTimeout each server request (default 1 s).
	LeaseTimeout, ServerTimeout time.Duration
}

// Runner drives a Driver in real time: heartbeats over a PacketConn, Lease
// calls and server requests in goroutines with timeouts, and edits, health
// reports, switchovers and the shutdown from other goroutines. It is how the
// member agent runs the election.
type Runner struct {
	cfg        RunnerConfig
	switchover chan MemberID
	configs    chan Config
	health     chan bool
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
	if cfg.Store == nil || cfg.Conn == nil || cfg.Addr == nil || cfg.Server == nil || cfg.Clock == nil {
		return nil, errors.New("election: runner needs a store, a connection, addresses, a server and a clock")
	}
	if cfg.LeaseTimeout == 0 {
		cfg.LeaseTimeout = cfg.Machine.WithDefaults().PeerTimeout / 2
	}
	if cfg.ServerTimeout == 0 {
		cfg.ServerTimeout = time.Second
	}
	if cfg.OnState == nil {
		cfg.OnState = func(RunnerState) {}
	}
	return &Runner{cfg: cfg, switchover: make(chan MemberID, 1), configs: make(chan Config, 1),
		health: make(chan bool, 1), shutdown: make(chan struct{}), done: make(chan struct{})}, nil
}

// Switchover asks for a planned switchover to target (see
// Machine.RequestSwitchover); deliver it to every member's runner.
func (r *Runner) Switchover(target MemberID) { offer(r.switchover, target) }

// Configure delivers a spec edit; only the newest pending one counts.
func (r *Runner) Configure(cfg Config) { offer(r.configs, cfg) }

// SetServerHealth reports whether the license server can serve.
func (r *Runner) SetServerHealth(ok bool) { offer(r.health, ok) }

// offer puts v in a one-slot channel, replacing what waits there.
func offer[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// Shutdown hands over gracefully and waits until Run has returned or ctx
// ends. Call it on SIGTERM.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.once.Do(func() { close(r.shutdown) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type serverDone struct {
	seq  uint64
	mode Mode
	err  error
}

// Run drives the election until ctx ends (an abrupt stop: the server's
// last deadline stands) or a Shutdown completes. It reads heartbeats from
// Conn until it returns; the caller closes Conn afterwards.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.done)
	now := r.cfg.Clock
	d, err := NewDriver(r.cfg.Machine, r.cfg.Group, r.cfg.Key, now())
	if err != nil {
		return err
	}
	// Background work outlives ctx only as long as Run does.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()

	datagrams := make(chan []byte, 64)
	wg.Add(1)
	go func() { defer wg.Done(); r.read(bg, datagrams) }()
	leaseResults := make(chan LeaseResult, 1)
	serverResults := make(chan serverDone, 16)
	stopped := make(chan struct{}, 1)
	// Requests in flight to the server, cancelled before it is stopped so
	// that none reaches its successor.
	inflight, cancelInflight := context.WithCancel(bg)
	defer func() { cancelInflight() }()
	inflightWG := &sync.WaitGroup{}

	timer := time.NewTimer(0)
	defer timer.Stop()
	shutdown := r.shutdown
	acts := d.Start(now())
	for {
		if acts.Server != nil {
			cmd := *acts.Server
			inflightWG.Add(1)
			go func(ctx context.Context, wg *sync.WaitGroup) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(ctx, r.cfg.ServerTimeout)
				defer cancel()
				res := serverDone{seq: cmd.Seq, mode: cmd.Mode, err: r.cfg.Server.Apply(ctx, cmd)}
				select {
				case serverResults <- res:
				case <-bg.Done():
				}
			}(inflight, inflightWG)
		}
		if acts.StopServer {
			cancelInflight()
			old := inflightWG
			var next context.CancelFunc
			inflight, next = context.WithCancel(bg) //nolint:govet // cancelled through cancelInflight
			cancelInflight = next
			inflightWG = &sync.WaitGroup{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				old.Wait() // none of them may reach the next server process
				ctx, cancel := context.WithTimeout(bg, 10*time.Second)
				defer cancel()
				_ = r.cfg.Server.Stop(ctx)
				stopped <- struct{}{}
			}()
		}
		if c := acts.Lease; c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); leaseResults <- r.execute(bg, *c) }()
		}
		for _, dg := range acts.Datagrams {
			if addr := r.cfg.Addr(dg.To); addr != nil {
				_, _ = r.cfg.Conn.WriteTo(dg.Data, addr) // best effort: loss is part of the model
			}
		}
		m := d.Machine()
		t := now()
		st := m.Status(t)
		r.cfg.OnState(RunnerState{Desired: acts.Desired, Label: acts.Label, Joining: m.Joining(t),
			Hears: st.Hears, Holder: st.View.Holder, Status: st})
		if acts.Done {
			return nil // after sending: the last heartbeats announce the release
		}
		timer.Reset(max(acts.NextWake-now(), 0))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case data := <-datagrams:
			acts = d.Datagram(now(), data)
		case res := <-leaseResults:
			acts = d.LeaseResult(now(), res)
		case res := <-serverResults:
			acts = d.ServerDone(now(), res.seq, res.mode, res.err)
		case <-stopped:
			acts = d.ServerStopped(now())
		case cfg := <-r.configs:
			acts, _ = d.Configure(now(), cfg)
		case ok := <-r.health:
			acts = d.SetServerHealth(now(), ok)
		case target := <-r.switchover:
			acts = d.Switchover(now(), target)
		case <-shutdown:
			shutdown = nil
			acts = d.Shutdown(now())
		case <-timer.C:
			acts = d.Tick(now())
		}
	}
}

// read passes datagrams to the loop until the connection is closed or ctx
// ends; a full queue drops them (heartbeats are superseded anyway).
func (r *Runner) read(ctx context.Context, out chan<- []byte) {
	buf := make([]byte, MaxDatagram+1)
	for ctx.Err() == nil {
		_ = r.cfg.Conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := r.cfg.Conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n > MaxDatagram {
			continue
		}
		select {
		case out <- append([]byte(nil), buf[:n]...):
		default:
		}
	}
}

func (r *Runner) execute(ctx context.Context, c LeaseCommand) LeaseResult {
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
	return res
}
