package election

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// servers records what three agents made their license servers do, in real
// time, and fails the test the moment two may serve at once. Each member's
// server refuses requests older than one it applied, like the real one.
type servers struct {
	t     *testing.T
	base  time.Time
	mu    sync.Mutex
	until map[MemberID]time.Time // a member's server serves until then
	state map[MemberID]ServerCommand
	seq   map[MemberID]uint64
	// hangFences makes a member's server never answer a fence (a wedged
	// server); stops counts the processes stopped.
	hangFences map[MemberID]bool
	stops      map[MemberID]int
}

func newServers(t *testing.T) *servers {
	return &servers{t: t, base: time.Now(), until: map[MemberID]time.Time{}, state: map[MemberID]ServerCommand{},
		seq: map[MemberID]uint64{}, hangFences: map[MemberID]bool{}, stops: map[MemberID]int{}}
}

func (s *servers) clock() time.Duration { return time.Since(s.base) }

type testServer struct {
	s  *servers
	id MemberID
}

func (ts testServer) Apply(ctx context.Context, c ServerCommand) error {
	s := ts.s
	s.mu.Lock()
	hang := c.Mode != Serve && s.hangFences[ts.id]
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Seq <= s.seq[ts.id] && s.seq[ts.id] != 0 {
		return errors.New("stale sequence")
	}
	s.seq[ts.id] = c.Seq
	s.state[ts.id] = c
	now := time.Now()
	if c.Mode != Serve {
		if s.until[ts.id].After(now) {
			s.until[ts.id] = now
		}
		return nil
	}
	for other, u := range s.until {
		if other != ts.id && u.After(now) {
			s.t.Errorf("%s serves epoch %d while %s serves until %v", ts.id, c.Epoch, other, u.Sub(now))
		}
	}
	s.until[ts.id] = s.base.Add(c.Until)
	return nil
}

func (ts testServer) Stop(context.Context) error {
	s := ts.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops[ts.id]++
	s.seq[ts.id] = 0
	s.state[ts.id] = ServerCommand{}
	if s.until[ts.id].After(time.Now()) {
		s.until[ts.id] = time.Now()
	}
	return nil
}

// active returns the member whose server serves now, if any.
func (s *servers) active() (MemberID, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.until {
		if u.After(time.Now()) && s.state[id].Mode == Serve {
			return id, s.state[id].Epoch
		}
	}
	return "", 0
}

func (s *servers) waitActive(t *testing.T, not MemberID, within time.Duration) (MemberID, int64, time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if id, epoch := s.active(); id != "" && id != not {
			return id, epoch, time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no member other than %q serves within %v", not, within)
	return "", 0, 0
}

type member struct {
	runner  *Runner
	conn    *net.UDPConn
	cancel  context.CancelFunc
	stopped chan error
	label   func() Label
}

var triadConfig = Config{Primary: "a", Secondary: "b", Tertiary: "c", PeerTimeout: time.Second,
	HeartbeatInterval: 100 * time.Millisecond, Failback: FailbackManual}

// startTriad runs three Runners over real UDP sockets on loopback with one
// in-memory Lease store and test servers, and waits until the primary (a)
// serves.
func startTriad(t *testing.T) (*servers, map[MemberID]*member) {
	t.Helper()
	srv := newServers(t)
	ids := []MemberID{"a", "b", "c"}
	conns := map[MemberID]*net.UDPConn{}
	addrs := map[MemberID]net.Addr{}
	for _, id := range ids {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns[id], addrs[id] = c, c.LocalAddr()
	}
	store := &MemoryLeaseStore{}
	members := map[MemberID]*member{}
	for i, id := range ids {
		cfg := triadConfig
		cfg.Self, cfg.Incarnation = id, uint64(i+7)
		var mu sync.Mutex
		var label Label
		r, err := NewRunner(RunnerConfig{Machine: cfg, Group: "plant-a", Key: []byte("secret"), Store: store,
			Conn: conns[id], Addr: func(m MemberID) net.Addr { return addrs[m] },
			Server: testServer{s: srv, id: id}, Clock: srv.clock,
			OnState: func(st RunnerState) { mu.Lock(); label = st.Label; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{runner: r, conn: conns[id], cancel: cancel, stopped: make(chan error, 1),
			label: func() Label { mu.Lock(); defer mu.Unlock(); return label }}
		go func() { m.stopped <- r.Run(ctx) }()
		members[id] = m
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.cancel()
			<-m.stopped
			_ = m.conn.Close()
		}
	})
	if id, _, _ := srv.waitActive(t, "", 10*time.Second); id != "a" {
		t.Fatalf("the primary should serve first, got %q", id)
	}
	return srv, members
}

func TestRunnersOnLoopbackFailOverWhenActiveIsKilled(t *testing.T) {
	srv, members := startTriad(t)
	_, epoch := srv.active()
	// Kill the active: no handover, no fence; its server keeps its last
	// deadline.
	members["a"].cancel()
	<-members["a"].stopped
	_ = members["a"].conn.Close()
	members["a"].stopped <- nil
	killed := time.Now()
	next, nextEpoch, _ := srv.waitActive(t, "a", 10*time.Second)
	t.Logf("%s took over from a killed primary after %v", next, time.Since(killed))
	if next != "b" || nextEpoch <= epoch {
		t.Fatalf("want the secondary with an epoch above %d, got %q with %d", epoch, next, nextEpoch)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.state["c"].Mode != Witness || members["c"].label() != LabelWitness {
		t.Fatalf("the tertiary must be a witness, got %+v", srv.state["c"])
	}
}

func TestRunnersOnLoopbackHandOverOnShutdown(t *testing.T) {
	srv, members := startTriad(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := members["a"].runner.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown did not complete within a second: %v", err)
	}
	if err := <-members["a"].stopped; err != nil {
		t.Fatalf("Run after Shutdown: %v", err)
	}
	members["a"].stopped <- nil
	exited := time.Since(start)
	// The fence tells a's clients where to go: the member taking over, not
	// a itself (which the Lease still named when it fenced).
	srv.mu.Lock()
	fence := srv.state["a"]
	srv.mu.Unlock()
	if fence.Mode == Serve || fence.Active != "b" {
		t.Errorf("a's last server command: mode %v, active hint %q; want a fence naming b", fence.Mode, fence.Active)
	}
	next, _, _ := srv.waitActive(t, "a", 2*time.Second)
	t.Logf("a exited after %v; %s serves %v after the shutdown began", exited, next, time.Since(start))
	if next != "b" {
		t.Fatalf("want the secondary to take over, got %q", next)
	}
}

func TestRunnersOnLoopbackSwitchOver(t *testing.T) {
	srv, members := startTriad(t)
	for _, m := range members {
		m.runner.Switchover("b")
	}
	next, _, took := srv.waitActive(t, "a", time.Second)
	t.Logf("%s serves %v after the switchover request", next, took)
	if next != "b" {
		t.Fatalf("want the secondary, got %q", next)
	}
}

// A role edit that demotes the active member to tertiary: it hands over at
// once and service continues on the new primary (the defect: nobody served
// again, the Lease stayed with the demoted member).
func TestRunnersOnLoopbackActiveDemotedToTertiary(t *testing.T) {
	srv, members := startTriad(t)
	edit := triadConfig
	edit.Primary, edit.Secondary, edit.Tertiary = "c", "b", "a"
	start := time.Now()
	for _, id := range []MemberID{"a", "b", "c"} {
		members[id].runner.Configure(edit)
	}
	next, _, _ := srv.waitActive(t, "a", 5*time.Second)
	t.Logf("%s serves %v after a was demoted to tertiary", next, time.Since(start))
	if next == "a" {
		t.Fatal("the demoted member serves")
	}
	time.Sleep(2 * time.Second)
	if id, _ := srv.active(); id != "c" {
		t.Fatalf("want the new primary c serving after the edit settled, got %q", id)
	}
}

// A fence the server never confirms: the driver stops the server process
// before the Lease is released, and the target serves only after that.
func TestRunnersOnLoopbackUnconfirmedFenceStopsTheServer(t *testing.T) {
	srv, members := startTriad(t)
	srv.mu.Lock()
	srv.hangFences["a"] = true
	srv.mu.Unlock()
	for _, m := range members {
		m.runner.Switchover("b")
	}
	next, _, took := srv.waitActive(t, "a", 3*time.Second)
	t.Logf("%s serves %v after the switchover; a's server stopped %d times", next, took, srv.stops["a"])
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if next != "b" || srv.stops["a"] == 0 {
		t.Fatalf("want b serving after a's wedged server was stopped, got %q (stops %d)", next, srv.stops["a"])
	}
}
