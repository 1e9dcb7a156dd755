package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

const group = "printing/plant-a"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type member struct {
	srv  *server.Server
	http *httptest.Server
	hits atomic.Int64
}

// newGroup starts one server per name, the first active, sharing a licence
// LIC-1 with the given printer count.
func newGroup(t *testing.T, printers int, names ...string) map[string]*member {
	t.Helper()
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	lic, err := licensing.Issue(priv, licensing.License{
		ID: "LIC-1", Product: "LabelDesigner", Edition: licensing.EditionEnterprise, Printers: printers,
		Group: group, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	licDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(licDir, "lic-1.lic"), lic, 0o600); err != nil {
		t.Fatal(err)
	}
	out := map[string]*member{}
	for i, name := range names {
		role := server.RoleStandby
		if i == 0 {
			role = server.RoleActive
		}
		srv, err := server.New(server.Options{
			Group: group, Member: name, Role: role, DataDir: t.TempDir(), LicenseDir: licDir,
			TrustedKeys: licensing.NewKeyRing(pub), CheckoutTTL: time.Minute, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		m := &member{srv: srv}
		h := srv.ClientHandler(0)
		m.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.hits.Add(1)
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(func() { m.http.Close(); _ = srv.Close() })
		out[name] = m
	}
	return out
}

// failover makes to the active member at epoch, then fences every other
// member. (Promoting first avoids a moment where nobody serves, which would
// make the concurrency test depend on timing.)
func failover(t *testing.T, g map[string]*member, to string, epoch uint64) {
	t.Helper()
	if m, ok := g[to]; ok {
		if err := m.srv.SetRole(server.RoleRequest{Role: server.RoleActive, Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	for name, m := range g {
		if name == to {
			continue
		}
		if err := m.srv.SetRole(server.RoleRequest{Role: server.RoleStandby, Epoch: epoch, Active: to}); err != nil {
			t.Fatal(err)
		}
	}
}

type moves struct {
	mu  sync.Mutex
	all []Move
}

func (m *moves) record(mv Move) { m.mu.Lock(); m.all = append(m.all, mv); m.mu.Unlock() }
func (m *moves) list() []Move   { m.mu.Lock(); defer m.mu.Unlock(); return append([]Move(nil), m.all...) }

func newClient(t *testing.T, g map[string]*member, mv *moves, mutate func(*Config)) *Client {
	t.Helper()
	return clientOf(t, g["a"].http.URL, g["b"].http.URL, mv, mutate)
}

// clientOf is a client station-1 of members a and b at the given URLs, with
// neither heartbeats nor home checks unless mutate sets them, recording its
// moves in mv (when not nil); it is closed when the test ends.
func clientOf(t *testing.T, a, b string, mv *moves, mutate func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Endpoints: []string{a, b}, ClientID: "station-1",
		Members:           map[string]string{"a": a, "b": b},
		HeartbeatInterval: -1, HomeCheckInterval: -1, RequestTimeout: time.Second, Logger: quiet,
	}
	if mv != nil {
		cfg.OnMove = mv.record
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func checkoutIDs(t *testing.T, s *server.Server) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, c := range s.Export().Checkouts {
		ids[c.ID] = true
	}
	return ids
}

func TestFollowsTheActiveHintAndReassertsCheckouts(t *testing.T) {
	g := newGroup(t, 5, "a", "b", "c")
	var mv moves
	c := newClient(t, g, &mv, func(cfg *Config) {
		// c is listed before b: only the hint can lead straight to b.
		cfg.Endpoints = []string{g["a"].http.URL, g["c"].http.URL, g["b"].http.URL}
		cfg.Members["c"] = g["c"].http.URL
	})
	ctx := context.Background()
	first, err := c.Checkout(ctx, "p1", "LIC-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkout(ctx, "p2", "LabelDesigner"); err != nil {
		t.Fatal(err)
	}
	failover(t, g, "b", 1) // b never received a snapshot: it knows no checkout

	if err := c.Heartbeat(ctx, first.ID); err != nil {
		t.Fatalf("heartbeat after failover = %v, want success on b", err)
	}
	if c.Endpoint() != g["b"].http.URL {
		t.Fatalf("client is on %s, want b at %s", c.Endpoint(), g["b"].http.URL)
	}
	if g["c"].hits.Load() != 0 {
		t.Fatal("client tried c although a's answer named b as active")
	}
	want := map[string]bool{}
	for _, h := range c.Checkouts() {
		want[h.ID] = true
	}
	if got := checkoutIDs(t, g["b"].srv); len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("b holds checkouts %v, want the client's %v", got, want)
	}
	if m := mv.list(); len(m) != 1 || m[0].Reason != "not active" || m[0].To != g["b"].http.URL {
		t.Fatalf("moves = %+v, want one move to b because a is not active", m)
	}
}

func TestMovesOnConnectionFailure(t *testing.T) {
	g := newGroup(t, 5, "a", "b")
	c := newClient(t, g, nil, nil)
	ctx := context.Background()
	held, err := c.Checkout(ctx, "p1", "LIC-1")
	if err != nil {
		t.Fatal(err)
	}
	g["a"].http.Close() // a crashes
	failover(t, map[string]*member{"b": g["b"]}, "b", 1)

	second, err := c.Checkout(ctx, "p2", "LIC-1")
	if err != nil {
		t.Fatalf("checkout after a crashed = %v, want it served by b", err)
	}
	if second.Member != "b" || c.Endpoint() != g["b"].http.URL {
		t.Fatalf("checkout served by %q, client on %s; want b", second.Member, c.Endpoint())
	}
	if !checkoutIDs(t, g["b"].srv)[held.ID] {
		t.Fatalf("b does not hold the checkout %s made on a", held.ID)
	}
}

func TestReturnsHomeWhenHomeServesAgain(t *testing.T) {
	g := newGroup(t, 5, "a", "b")
	var mv moves
	c := newClient(t, g, &mv, func(cfg *Config) { cfg.HomeCheckInterval = 20 * time.Millisecond })
	ctx := context.Background()
	held, err := c.Checkout(ctx, "p1", "LIC-1")
	if err != nil {
		t.Fatal(err)
	}
	failover(t, g, "b", 1)
	if err := c.Heartbeat(ctx, held.ID); err != nil || c.Endpoint() != g["b"].http.URL {
		t.Fatalf("after failover: %v, on %s; want b", err, c.Endpoint())
	}
	// a comes back empty (as after a restart) and takes the role back.
	empty := g["a"].srv.Export()
	empty.Checkouts = nil
	if err := g["a"].srv.Import(empty); err != nil || g["a"].srv.Status().Checkouts != 0 {
		t.Fatalf("emptying a: %v", err)
	}
	failover(t, g, "a", 2)
	// The endpoint changes before the move's re-assertion and its OnMove
	// call complete: wait for both.
	deadline := time.Now().Add(5 * time.Second)
	for c.Endpoint() != g["a"].http.URL || len(mv.list()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("client did not return home within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !checkoutIDs(t, g["a"].srv)[held.ID] {
		t.Fatal("checkout not re-asserted at home")
	}
	if m := mv.list(); len(m) != 2 || m[1].Reason != "home serves again" {
		t.Fatalf("moves = %+v, want a failover and a return home", m)
	}
}

func TestUnavailableWhenNobodyServes(t *testing.T) {
	g := newGroup(t, 5, "a", "b")
	c := newClient(t, g, nil, nil)
	failover(t, g, "nobody", 1)
	_, err := c.Checkout(context.Background(), "p1", "LIC-1")
	if !server.IsCode(err, server.CodeNotActive) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("checkout with no active member = %v, want ErrUnavailable wrapping not_active", err)
	}
}

func TestNoSeatIsNotAFailover(t *testing.T) {
	g := newGroup(t, 1, "a", "b")
	c := newClient(t, g, nil, nil)
	ctx := context.Background()
	if _, err := c.Checkout(ctx, "p1", "LIC-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkout(ctx, "p2", "LIC-1"); !server.IsCode(err, server.CodeNoSeat) {
		t.Fatalf("second checkout on a one-seat licence = %v, want no_seat", err)
	}
	if c.Endpoint() != g["a"].http.URL || g["b"].hits.Load() != 0 {
		t.Fatal("a no_seat answer made the client move")
	}
}

func TestBackgroundHeartbeatsStopOnClose(t *testing.T) {
	g := newGroup(t, 5, "a", "b")
	c := newClient(t, g, nil, func(cfg *Config) { cfg.HeartbeatInterval = 10 * time.Millisecond })
	held, err := c.Checkout(context.Background(), "p1", "LIC-1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	c.Close()
	time.Sleep(20 * time.Millisecond) // a heartbeat cancelled by Close may still reach the server
	after := g["a"].hits.Load()
	if after < 3 {
		t.Fatalf("only %d requests in 100ms, want background heartbeats", after)
	}
	time.Sleep(50 * time.Millisecond)
	if g["a"].hits.Load() != after {
		t.Fatal("heartbeats continued after Close")
	}
	if got := c.Checkouts(); len(got) != 1 || got[0].ID != held.ID || !got[0].ExpiresAt.After(held.ExpiresAt) {
		t.Fatalf("held checkouts %+v, want %s renewed", got, held.ID)
	}
}

func TestConcurrentCheckoutsDuringFailover(t *testing.T) {
	g := newGroup(t, 100, "a", "b")
	c := newClient(t, g, nil, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		if i == 20 {
			failover(t, g, "b", 1)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := c.Checkout(ctx, fmt.Sprintf("p%d", i), "LIC-1"); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every heartbeat goes to b, which then holds all 40 seats.
	for _, h := range c.Checkouts() {
		if err := c.Heartbeat(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := g["b"].srv.Status().Checkouts; got != 40 {
		t.Fatalf("b holds %d checkouts, want 40", got)
	}
}

func TestMovesOnTimeout(t *testing.T) {
	g := newGroup(t, 5, "b")
	if err := g["b"].srv.SetRole(server.RoleRequest{Role: server.RoleActive, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer hung.Close()
	defer close(release)
	var mv moves
	c, err := New(Config{Endpoints: []string{hung.URL, g["b"].http.URL}, ClientID: "station-1",
		HeartbeatInterval: -1, HomeCheckInterval: -1, RequestTimeout: 200 * time.Millisecond, Logger: quiet, OnMove: mv.record})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	co, err := c.Checkout(context.Background(), "p1", "LIC-1")
	if err != nil || co.Member != "b" {
		t.Fatalf("checkout with a hung home = %+v, %v; want it served by b", co, err)
	}
	if m := mv.list(); len(m) != 1 || m[0].Reason != "timeout" {
		t.Fatalf("moves = %+v, want one move because of a timeout", m)
	}
}

func TestMovesOnAnAnswerThatIsNotALicenseServers(t *testing.T) {
	g := newGroup(t, 5, "a", "b")
	failover(t, g, "b", 1)
	// A proxy that lost its backend answers 404 with no JSON error.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "", http.StatusNotFound)
	}))
	defer proxy.Close()
	var mv moves
	c := newClient(t, g, &mv, func(cfg *Config) {
		cfg.Endpoints = []string{proxy.URL, g["b"].http.URL}
		cfg.Home = proxy.URL
	})
	held, err := c.Checkout(context.Background(), "p1", "LIC-1")
	if err != nil {
		t.Fatalf("checkout = %v, want it served by b past the proxy", err)
	}
	if c.Endpoint() != g["b"].http.URL || held.Member != "b" {
		t.Fatalf("client on %s, checkout by %q; want b", c.Endpoint(), held.Member)
	}
	if m := mv.list(); len(m) != 1 || m[0].Reason != "no license server answered" {
		t.Fatalf("moves = %+v, want one move away from the proxy", m)
	}
}

// serviceProxy forwards TCP connections like kube-proxy does for a
// Service: each new connection goes to the backend selected at that moment,
// and an established one stays with the backend it was opened to.
func serviceProxy(t *testing.T, backend *atomic.Value) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", backend.Load().(string))
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestBehindAServiceReconnectsAfterANotActiveAnswer(t *testing.T) {
	g := newGroup(t, 5, "a", "b")
	var backend atomic.Value
	backend.Store(g["a"].http.Listener.Addr().String())
	svc := serviceProxy(t, &backend)
	c := newClient(t, g, nil, func(cfg *Config) {
		cfg.Endpoints, cfg.Home, cfg.Members = []string{svc}, svc, nil
	})
	held, err := c.Checkout(context.Background(), "p1", "LIC-1")
	if err != nil || held.Member != "a" {
		t.Fatalf("checkout = %+v, %v; want it served by a", held, err)
	}
	// b becomes active and the Service selects it; the client's kept-alive
	// connection still leads to a.
	failover(t, g, "b", 1)
	backend.Store(g["b"].http.Listener.Addr().String())
	if err := c.Heartbeat(context.Background(), held.ID); err == nil {
		t.Fatal("the kept-alive connection to a should have met a not-active answer")
	}
	if err := c.Heartbeat(context.Background(), held.ID); err != nil {
		t.Fatalf("the next heartbeat = %v, want it served by b on a new connection", err)
	}
	if ids := checkoutIDs(t, g["b"].srv); len(ids) != 1 {
		t.Fatalf("b holds %d checkouts, want the client's one re-asserted", len(ids))
	}
}

// A frozen active member (or one whose node failed) answers nothing, while
// the other members still name it the active one until the takeover. The
// client must not wait out another timeout on it for every request: once it
// timed out, the client asks the others, and a request made right after the
// takeover is served by the new active member at once.
func TestSkipsAFrozenActiveWhileTheOthersStillNameIt(t *testing.T) {
	g := newGroup(t, 5, "b", "c")
	for _, name := range []string{"b", "c"} {
		if err := g[name].srv.SetRole(server.RoleRequest{Role: server.RoleStandby, Epoch: 1, Active: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	var frozenHits atomic.Int64
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		frozenHits.Add(1)
		<-release
	}))
	defer frozen.Close()
	defer close(release)
	const timeout = 400 * time.Millisecond
	c, err := New(Config{
		Endpoints: []string{frozen.URL, g["b"].http.URL, g["c"].http.URL}, Home: frozen.URL, ClientID: "station-1",
		Members:           map[string]string{"a": frozen.URL, "b": g["b"].http.URL, "c": g["c"].http.URL},
		HeartbeatInterval: -1, HomeCheckInterval: -1, RequestTimeout: timeout, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// Nobody serves yet: the first request waits out the frozen member once.
	if _, err := c.Checkout(ctx, "p1", "LIC-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("checkout while nobody serves: %v, want ErrUnavailable", err)
	}
	hits := frozenHits.Load()
	// Right after, b and c still name a: the request fails at once instead
	// of waiting on a again.
	began := time.Now()
	if _, err := c.Checkout(ctx, "p1", "LIC-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second checkout while nobody serves: %v, want ErrUnavailable", err)
	}
	if took := time.Since(began); took >= timeout/2 || frozenHits.Load() != hits {
		t.Fatalf("second checkout took %s and asked the frozen member %d more times; want a quick answer without it",
			took, frozenHits.Load()-hits)
	}
	// b takes over; c has not heard of it yet and still names a.
	if err := g["b"].srv.SetRole(server.RoleRequest{Role: server.RoleActive, Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	co, err := c.Checkout(ctx, "p1", "LIC-1")
	if err != nil || co.Member != "b" {
		t.Fatalf("checkout after b took over = %+v, %v; want it served by b", co, err)
	}
	if took := time.Since(began); took >= timeout/2 {
		t.Errorf("checkout after the takeover took %s; want it served without waiting on the frozen member (timeout %s)", took, timeout)
	}
}
