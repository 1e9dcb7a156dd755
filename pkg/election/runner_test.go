package election

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// servers records what three agents made their license servers do, in real
// time, and fails the test the moment two may serve at once.
type servers struct {
	t     *testing.T
	mu    sync.Mutex
	until map[MemberID]time.Time // a member's server serves until then
	state map[MemberID]State
}

func (s *servers) onState(id MemberID) func(State) {
	return func(st State) {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := time.Now()
		s.state[id] = st
		if st.Mode != Serve {
			if s.until[id].After(now) {
				s.until[id] = now
			}
			return
		}
		if st.Label != LabelActive {
			s.t.Errorf("%s serves with label %q", id, st.Label)
		}
		for other, u := range s.until {
			if other != id && u.After(now) {
				s.t.Errorf("%s serves epoch %d while %s serves until %v", id, st.Epoch, other, u.Sub(now))
			}
		}
		s.until[id] = st.Until
	}
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
	runner    *Runner
	transport *UDPTransport
	cancel    context.CancelFunc
	stopped   chan error
}

// startTriad runs three Runners over real UDP sockets on loopback with one
// in-memory Lease store.
func startTriad(t *testing.T) (map[MemberID]*member, *servers) {
	t.Helper()
	ids := []MemberID{"a", "b", "c"}
	conns := map[MemberID]*net.UDPConn{}
	addrs := map[MemberID]string{}
	for _, id := range ids {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns[id], addrs[id] = c, c.LocalAddr().String()
	}
	srv := &servers{t: t, until: map[MemberID]time.Time{}, state: map[MemberID]State{}}
	store := &MemoryLeaseStore{}
	members := map[MemberID]*member{}
	for _, id := range ids {
		peers := map[MemberID]string{}
		for _, p := range ids {
			if p != id {
				peers[p] = addrs[p]
			}
		}
		tr := NewUDPTransport(conns[id], "plant-a", []byte("secret"), peers)
		cfg := Config{Self: id, Primary: "a", Secondary: "b", Tertiary: "c",
			Incarnation: uint64(time.Now().UnixNano()), PeerTimeout: time.Second,
			HeartbeatInterval: 100 * time.Millisecond, Failback: FailbackManual}
		r, err := NewRunner(RunnerConfig{Machine: cfg, Store: store, Transport: tr, OnState: srv.onState(id)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{runner: r, transport: tr, cancel: cancel, stopped: make(chan error, 1)}
		go func() { m.stopped <- r.Run(ctx) }()
		members[id] = m
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.cancel()
			_ = m.transport.Close()
		}
	})
	return members, srv
}

func TestRunnersOnLoopbackFailOverWhenActiveIsKilled(t *testing.T) {
	members, srv := startTriad(t)
	id, epoch, _ := srv.waitActive(t, "", 10*time.Second)
	if id != "a" {
		t.Fatalf("the primary should serve first, got %q", id)
	}
	// Kill the active: no handover, no fence; its server keeps its last
	// deadline.
	members["a"].cancel()
	_ = members["a"].transport.Close()
	killed := time.Now()
	next, nextEpoch, _ := srv.waitActive(t, "a", 10*time.Second)
	t.Logf("%s took over from a killed primary after %v", next, time.Since(killed))
	if next != "b" || nextEpoch <= epoch {
		t.Fatalf("want the secondary with an epoch above %d, got %q with %d", epoch, next, nextEpoch)
	}
	if srv.state["c"].Mode != Witness || srv.state["c"].Label != LabelWitness {
		t.Fatalf("the tertiary must be a witness, got %+v", srv.state["c"])
	}
}

func TestRunnersOnLoopbackHandOverOnShutdown(t *testing.T) {
	members, srv := startTriad(t)
	if id, _, _ := srv.waitActive(t, "", 10*time.Second); id != "a" {
		t.Fatalf("the primary should serve first, got %q", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := members["a"].runner.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown did not complete within a second: %v", err)
	}
	if err := <-members["a"].stopped; err != nil {
		t.Fatalf("Run after Shutdown: %v", err)
	}
	exited := time.Since(start)
	next, _, _ := srv.waitActive(t, "a", 2*time.Second)
	t.Logf("a exited after %v; %s serves %v after the shutdown began", exited, next, time.Since(start))
	if next != "b" {
		t.Fatalf("want the secondary to take over, got %q", next)
	}
}

func TestRunnersOnLoopbackSwitchOver(t *testing.T) {
	members, srv := startTriad(t)
	if id, _, _ := srv.waitActive(t, "", 10*time.Second); id != "a" {
		t.Fatalf("the primary should serve first, got %q", id)
	}
	for _, m := range members {
		m.runner.Switchover("b")
	}
	next, _, took := srv.waitActive(t, "a", time.Second)
	t.Logf("%s serves %v after the switchover request", next, took)
	if next != "b" {
		t.Fatalf("want the secondary, got %q", next)
	}
}
