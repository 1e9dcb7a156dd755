package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/server"
)

func TestMemberHealthServer(t *testing.T) {
	const timeout = 3 * time.Second
	sec := int64(time.Second)
	h := &memberHealth{}
	// Not running yet at start: not a failure, but not healthy either.
	h.observeServer(serverSample{}, 1*sec)
	if h.serverHealthy(1*sec, timeout) {
		t.Fatal("healthy before the server ever answered")
	}
	h.observeServer(serverSample{Running: true, Polled: true, Epoch: 7}, 2*sec)
	if !h.serverHealthy(2*sec, timeout) || h.serverEpoch() != 7 {
		t.Fatalf("after a first answer: healthy %v epoch %d, want healthy at 7", h.serverHealthy(2*sec, timeout), h.serverEpoch())
	}
	// Polls fail (a hung server): healthy until the peer timeout passes.
	for s := int64(3); s <= 5; s++ {
		h.observeServer(serverSample{Running: true}, s*sec)
	}
	if !h.serverHealthy(4*sec, timeout) || h.serverHealthy(5*sec, timeout) {
		t.Fatal("a server whose polls fail must count as down once the peer timeout passes, not before")
	}
	h.observeServer(serverSample{Running: true, Polled: true}, 6*sec)
	if !h.serverHealthy(6*sec, timeout) {
		t.Fatal("not healthy after answering again")
	}
	// The process restarts: down for a peer timeout, answers or not.
	h.observeServer(serverSample{Running: true, Polled: true, Restarts: 1}, 7*sec)
	h.observeServer(serverSample{Running: true, Polled: true, Restarts: 1}, 8*sec)
	if h.serverHealthy(8*sec, timeout) {
		t.Fatal("healthy right after a restart")
	}
	h.observeServer(serverSample{Running: true, Polled: true, Restarts: 1}, 10*sec)
	if !h.serverHealthy(10*sec, timeout) {
		t.Fatal("not healthy a peer timeout after the restart")
	}
	// The process exited (restart back-off).
	h.observeServer(serverSample{Running: false, Restarts: 1}, 11*sec)
	if h.serverHealthy(11*sec, timeout) {
		t.Fatal("healthy while the process does not run")
	}

	// A vendor server fenced by stopping it: held is healthy, released
	// and not running for a peer timeout is not.
	v := &memberHealth{}
	v.observeServer(serverSample{StopToFence: true, Held: true}, 1*sec)
	if !v.serverHealthy(1*sec, timeout) {
		t.Fatal("a held vendor server must count as healthy")
	}
	v.observeServer(serverSample{StopToFence: true, Running: true}, 2*sec)
	v.observeServer(serverSample{StopToFence: true}, 3*sec)
	if !v.serverHealthy(3*sec, timeout) || v.serverHealthy(5*sec, timeout) {
		t.Fatal("a released vendor server that stopped must count as down after the peer timeout")
	}
}

func TestPeerTrackerHeard(t *testing.T) {
	var p peerTracker
	sec := int64(time.Second)
	if p.heardWithin(1*sec, 3*time.Second) {
		t.Fatal("heard before any probe")
	}
	p.observe(&peerStatus{ServerHealthy: true}, true, 2*sec)
	p.observe(nil, false, 3*sec) // a failed probe
	if !p.heardWithin(3*sec, 3*time.Second) || p.heardWithin(5*sec, 3*time.Second) {
		t.Fatal("heardWithin: the agent was last heard at 2 s")
	}
	p.observe(nil, true, 6*sec) // an older agent answers 404: heard, no status
	if !p.heardWithin(6*sec, 10*time.Millisecond) || p.status == nil || !p.status.ServerHealthy {
		t.Fatal("an answer without a status is heard and keeps the last status")
	}
}

// TestPeerStatusEndpoint serves a member's status over HTTP and reads it
// back as the other member's probe does.
func TestPeerStatusEndpoint(t *testing.T) {
	a := &Agent{opts: Options{GroupKind: group.KindBackupPair, Group: testPair, Member: "main"}, log: logr.Discard(),
		cfg: &group.Config{PeerTimeoutMillis: 3000}}
	srv := httptest.NewServer(a.peerStatusHandler())
	defer srv.Close()
	client := &http.Client{Timeout: time.Second}
	ctx := context.Background()

	if st, answered := fetchPeerStatus(ctx, client, srv.URL); st != nil || !answered {
		t.Fatalf("no pair member registered: got %+v, answered %v; want an answer without a status", st, answered)
	}

	h := &memberHealth{}
	memberHealthOf.Store(a, h)
	defer memberHealthOf.Delete(a)
	now := boottime.Now()
	h.observeServer(serverSample{Running: true, Polled: true}, now)
	st, _ := fetchPeerStatus(ctx, client, srv.URL)
	if st == nil || !st.ServerHealthy || st.Serving || st.Member != "main" {
		t.Fatalf("healthy server, not serving: %+v", st)
	}

	a.applied = desired{role: server.RoleActive, epoch: 12, until: boottime.Now() + int64(time.Minute)}
	st, _ = fetchPeerStatus(ctx, client, srv.URL)
	if st == nil || !st.ServerHealthy || !st.Serving || st.Epoch != 12 {
		t.Fatalf("serving member: %+v", st)
	}

	resp, err := client.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST answered %d, want 405", resp.StatusCode)
	}
	if st, answered := fetchPeerStatus(ctx, client, "http://127.0.0.1:1/v1/peer"); st != nil || answered {
		t.Fatal("nobody listening must count as no answer")
	}
}
