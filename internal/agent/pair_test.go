package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/server"
)

// TestDecidePair covers the ActivePassive decision. The cases marked old
// fail under the previous rule, in which a Fixed backup stood by, and gave
// the role back, whenever the main's agent answered, and a member's own
// server's health played no part.
func TestDecidePair(t *testing.T) {
	const timeout = 3 * time.Second
	report := func(healthy, api bool, streak int) peerSeen {
		return peerSeen{Status: &peerStatus{Member: "main", ServerHealthy: healthy, APIReachable: api}, Age: 500 * time.Millisecond, FitStreak: streak}
	}
	fixedBackup := func(own, holding bool, p peerSeen) pairView {
		return pairView{Fixed: true, OwnHealthy: own, Holding: holding, Peer: p, PeerTimeout: timeout}
	}
	for _, tc := range []struct {
		name string
		v    pairView
		want pairAction
	}{
		// The cases.
		{"old: main's agent answers but its server is down: the backup keeps serving",
			fixedBackup(true, true, report(false, true, 0)), actHold},
		{"old: main cannot reach the API server: the backup keeps serving",
			fixedBackup(true, true, report(true, false, 0)), actHold},
		{"main healthy and reaching the API for two probes: the backup hands back",
			fixedBackup(true, true, report(true, true, 2)), actRelease},
		{"old: own server down while holding (Fixed main): release",
			pairView{Fixed: true, IsMain: true, OwnHealthy: false, Holding: true, PeerTimeout: timeout}, actRelease},

		// Around them.
		{"old: main fit for one probe only: the backup keeps serving",
			fixedBackup(true, true, report(true, true, 1)), actHold},
		{"old: own server down while holding (Fixed backup, main silent): release",
			fixedBackup(false, true, peerSeen{}), actRelease},
		{"old: own server down while holding (Symmetric): release",
			pairView{OwnHealthy: false, Holding: true, Peer: report(true, true, 5), PeerTimeout: timeout}, actRelease},
		{"old: own server down, not holding: no campaign",
			pairView{Fixed: true, IsMain: true, OwnHealthy: false, PeerTimeout: timeout}, actStandby},
		{"old: standby backup, main's agent answers but its server is down: campaign",
			fixedBackup(true, false, report(false, true, 0)), actCampaign},
		{"old: standby backup, main cannot reach the API server: campaign",
			fixedBackup(true, false, report(true, false, 0)), actCampaign},
		{"standby backup, main fit: no campaign",
			fixedBackup(true, false, report(true, true, 1)), actStandby},
		{"standby backup, main silent: campaign",
			fixedBackup(true, false, peerSeen{}), actCampaign},
		{"old: standby backup, main's last probe failed (its earlier report was fit): campaign",
			fixedBackup(true, false, peerSeen{Status: &peerStatus{ServerHealthy: true, APIReachable: true}, Age: 1500 * time.Millisecond}), actCampaign},
		{"holding backup, main's fit report is older than the peer timeout: keep serving",
			fixedBackup(true, true, peerSeen{Status: &peerStatus{ServerHealthy: true, APIReachable: true}, Age: timeout, FitStreak: 5}), actHold},
		{"Fixed main healthy: campaign, then hold",
			pairView{Fixed: true, IsMain: true, OwnHealthy: true, Peer: report(true, true, 9), PeerTimeout: timeout}, actCampaign},
		{"Fixed main healthy and holding, backup fit: hold",
			pairView{Fixed: true, IsMain: true, OwnHealthy: true, Holding: true, Peer: report(true, true, 9), PeerTimeout: timeout}, actHold},
		{"Symmetric holder, peer fit: keep serving",
			pairView{OwnHealthy: true, Holding: true, Peer: report(true, true, 9), PeerTimeout: timeout}, actHold},
		{"Symmetric standby, peer fit: campaign (whoever holds keeps it)",
			pairView{OwnHealthy: true, Peer: report(true, true, 9), PeerTimeout: timeout}, actCampaign},
	} {
		if got := decidePair(tc.v); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

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

func TestMemberHealthAPI(t *testing.T) {
	const timeout = 3 * time.Second
	sec := int64(time.Second)
	h := &memberHealth{}
	if h.apiReachable(1*sec, timeout) {
		t.Fatal("reachable before any call")
	}
	h.observeAPI(apierrors.NewNotFound(coordinationv1.Resource("leases"), "x"), 1*sec)
	if !h.apiReachable(1*sec, timeout) {
		t.Fatal("a NotFound answer comes from a reachable API server")
	}
	h.observeAPI(nil, 2*sec)
	h.observeAPI(errors.New("dial tcp: connection refused"), 3*sec)
	if h.apiReachable(3*sec, timeout) {
		t.Fatal("reachable although the last call failed")
	}
	h.observeAPI(apierrors.NewConflict(coordinationv1.Resource("leases"), "x", errors.New("changed")), 4*sec)
	if !h.apiReachable(4*sec, timeout) || h.apiReachable(7*sec, timeout) {
		t.Fatal("a success counts for the peer timeout, no longer")
	}
	h.observeAPI(apierrors.NewForbidden(coordinationv1.Resource("leases"), "x", errors.New("no")), 5*sec)
	if h.apiReachable(5*sec, timeout) {
		t.Fatal("a refused authorisation does not let the member take the Lease")
	}
}

func TestPeerTrackerStreak(t *testing.T) {
	var p peerTracker
	fit := &peerStatus{ServerHealthy: true, APIReachable: true}
	sec := int64(time.Second)
	p.observe(fit, true, 1*sec)
	p.observe(fit, true, 2*sec)
	if s := p.seen(2 * sec); s.FitStreak != 2 || !s.fitFor(2, 3*time.Second) {
		t.Fatalf("two fit probes: %+v", s)
	}
	p.observe(nil, false, 3*sec) // a failed probe ends the streak
	if s := p.seen(3 * sec); s.FitStreak != 0 || s.Age != time.Second || s.fitFor(1, 3*time.Second) {
		t.Fatalf("after a failed probe: %+v", s)
	}
	if !p.heardWithin(3*sec, 3*time.Second) || p.heardWithin(5*sec, 3*time.Second) {
		t.Fatal("heardWithin: the agent was last heard at 2 s")
	}
	p.observe(fit, true, 4*sec)
	p.observe(&peerStatus{ServerHealthy: false, APIReachable: true}, true, 5*sec)
	if s := p.seen(5 * sec); s.FitStreak != 0 {
		t.Fatalf("an unfit report ends the streak: %+v", s)
	}
	p.observe(nil, true, 6*sec) // an older agent answers 404: heard, no status
	if !p.heardWithin(6*sec, 10*time.Millisecond) || p.seen(6*sec).FitStreak != 0 {
		t.Fatal("an answer without a status is heard but never fit")
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
	if st == nil || !st.ServerHealthy || st.APIReachable || st.fit() || st.Serving || st.Member != "main" {
		t.Fatalf("healthy server, no API call yet: %+v", st)
	}

	h.observeAPI(nil, now)
	h.setHolding(true)
	a.applied = desired{role: server.RoleActive, epoch: 12, until: boottime.Now() + int64(time.Minute)}
	st, _ = fetchPeerStatus(ctx, client, srv.URL)
	if st == nil || !st.fit() || !st.Serving || !st.Holding || st.Epoch != 12 {
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

func TestNextEpoch(t *testing.T) {
	for _, tc := range []struct {
		prev        uint64
		transitions int32
		server      uint64
		want        uint64
	}{
		{0, 0, 0, 1},  // the first term on a new Lease
		{0, 6, 0, 7},  // a fresh process: the Lease decides
		{9, 6, 9, 10}, // never below a term this process used
		{0, 6, 7, 8},  // the server holds the previous run's epoch
		{0, 6, 5, 7},  // ... an older one does not matter
		{0, -1, 0, 1}, // no transitions recorded
		{0, 3, 1_700_000_000_000, 1_700_000_000_001}, // a server with a clock-based epoch from an older release
	} {
		if got := nextEpoch(tc.prev, tc.transitions, tc.server); got != tc.want {
			t.Errorf("nextEpoch(%d, %d, %d) = %d, want %d", tc.prev, tc.transitions, tc.server, got, tc.want)
		}
	}
}

// memLease is an in-memory Lease with compare-and-swap on a version, as
// the API server does on resourceVersion; memLock is one member's lock on
// it, like resourcelock.LeaseLock (an update must follow a read or write
// of the current version).
type memLease struct {
	mu      sync.Mutex
	rec     *resourcelock.LeaderElectionRecord
	version int
}

func (l *memLease) record() resourcelock.LeaderElectionRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *l.rec
}

type memLock struct {
	l       *memLease
	id      string
	version int
}

var leasesResource = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

func (m *memLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	if m.l.rec == nil {
		return nil, nil, apierrors.NewNotFound(leasesResource, "pair-active")
	}
	rec := *m.l.rec
	m.version = m.l.version
	raw, err := json.Marshal(rec)
	return &rec, raw, err
}

func (m *memLock) Create(_ context.Context, rec resourcelock.LeaderElectionRecord) error {
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	if m.l.rec != nil {
		return apierrors.NewAlreadyExists(leasesResource, "pair-active")
	}
	m.l.rec = &rec
	m.l.version++
	m.version = m.l.version
	return nil
}

func (m *memLock) Update(_ context.Context, rec resourcelock.LeaderElectionRecord) error {
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	if m.l.rec == nil || m.version == 0 {
		return errors.New("lease not initialized, call get or create first")
	}
	if m.version != m.l.version {
		return apierrors.NewConflict(leasesResource, "pair-active", fmt.Errorf("version %d, now %d", m.version, m.l.version))
	}
	m.l.rec = &rec
	m.l.version++
	m.version = m.l.version
	return nil
}

func (m *memLock) RecordEvent(string) {}
func (m *memLock) Identity() string   { return m.id }
func (m *memLock) Describe() string   { return "memory/" + m.id }

// campaign runs one elector for d on the lease; every term's epoch goes to
// the returned channel. stop ends the campaign, releasing the Lease when
// release is set (otherwise the member behaves as if it froze: the Lease
// expires).
func campaign(t *testing.T, d *pairDriver, lease *memLease, id string, release bool) (epochs <-chan uint64, stop func()) {
	t.Helper()
	ch := make(chan uint64, 4)
	ctx, cancel := context.WithCancel(context.Background())
	lock := &renewClock{Interface: &memLock{l: lease, id: id}}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		// client-go counts the lease duration in whole seconds.
		Lock: lock, LeaseDuration: time.Second, RenewDeadline: 600 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
		ReleaseOnCancel: release, Name: "pair",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { ch <- d.takeEpoch(lock) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { le.Run(ctx); close(done) }()
	return ch, func() { cancel(); <-done }
}

func awaitEpoch(t *testing.T, ch <-chan uint64, who string) uint64 {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not take the Lease", who)
		return 0
	}
}

// TestEpochsFollowTheLease runs client-go's leader election for both
// members on one Lease and checks that each term's epoch comes from the
// Lease's transitions: strictly increasing across both members, whatever
// their clocks say, also when a member's restarted agent takes the Lease
// its previous run still holds.
func TestEpochsFollowTheLease(t *testing.T) {
	lease := &memLease{}
	mainD := &pairDriver{health: &memberHealth{}}
	backD := &pairDriver{health: &memberHealth{}}
	var epochs []uint64
	take := func(ch <-chan uint64, who string, wantTransitions int) {
		t.Helper()
		e := awaitEpoch(t, ch, who)
		if got := lease.record().LeaderTransitions; got != wantTransitions {
			t.Fatalf("%s took the Lease with leaderTransitions %d, want %d", who, got, wantTransitions)
		}
		if n := len(epochs); n > 0 && e <= epochs[n-1] {
			t.Fatalf("%s took epoch %d after %d: epochs must grow (all so far: %v)", who, e, epochs[n-1], epochs)
		}
		epochs = append(epochs, e)
	}

	// The main creates the Lease.
	mainCh, stopMain := campaign(t, mainD, lease, "pair-main", true)
	take(mainCh, "main", 0)
	// The backup campaigns in vain while the main holds; the main
	// releases (SIGTERM), the backup takes over.
	backCh, stopBack := campaign(t, backD, lease, "pair-backup", false)
	time.Sleep(300 * time.Millisecond)
	select {
	case e := <-backCh:
		t.Fatalf("the backup took the Lease (epoch %d) while the main held it", e)
	default:
	}
	stopMain()
	take(backCh, "backup", 1)
	// The backup freezes (no release): the main takes the expired Lease.
	stopBack()
	mainCh, stopMain = campaign(t, mainD, lease, "pair-main", false)
	take(mainCh, "main", 2)
	// The main's agent restarts: its previous run still holds the Lease,
	// which client-go takes back without counting a transition; the lock
	// counts one, and the new process starts from its server's epoch.
	stopMain()
	mainD = &pairDriver{health: &memberHealth{epoch: epochs[len(epochs)-1]}}
	mainCh, stopMain = campaign(t, mainD, lease, "pair-main", true)
	take(mainCh, "restarted main", 3)
	time.Sleep(300 * time.Millisecond) // renewals keep the term's transitions
	if got := lease.record().LeaderTransitions; got != 3 {
		t.Fatalf("renewals changed leaderTransitions to %d, want 3", got)
	}
	// The backup takes over once more: above the restarted main's epoch.
	backCh, stopBack = campaign(t, backD, lease, "pair-backup", true)
	stopMain()
	take(backCh, "backup", 4)
	stopBack()
	if want := []uint64{1, 2, 3, 4, 5}; fmt.Sprint(epochs) != fmt.Sprint(want) {
		t.Fatalf("epochs %v, want %v", epochs, want)
	}
}

// TestReleaseWaitsForTheFence: the Lease is released only once the
// server is fenced; otherwise it is left to expire.
func TestReleaseWaitsForTheFence(t *testing.T) {
	lease := &memLease{}
	inner := &memLock{l: lease, id: "pair-main"}
	ctx := context.Background()
	fenced := false
	lock := &renewClock{Interface: inner, beforeRelease: func() bool { return fenced }}
	if err := lock.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "pair-main"}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{}); !errors.Is(err, errNotFenced) {
		t.Fatalf("release without a fence = %v, want errNotFenced", err)
	}
	if lease.record().HolderIdentity != "pair-main" {
		t.Fatal("the Lease was released although the server was not fenced")
	}
	served := false
	lock.whileHeld(func() { served = true })
	if served {
		t.Fatal("the server may serve again after a release was attempted")
	}
	fenced = true
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{}); err != nil {
		t.Fatal(err)
	}
	if lease.record().HolderIdentity != "" {
		t.Fatal("the Lease was not released after the fence")
	}
}

// A member that froze while holding the Lease, and whose renewals then
// failed, must not clear the Lease the other side took meanwhile: client-go
// releases on the strength of its stale observation (the defect: both sides
// served for a second after the main resumed).
func TestStaleReleaseLeavesTheOtherSidesLease(t *testing.T) {
	lease := &memLease{}
	main := &memLock{l: lease, id: "pair-main"}
	backup := &memLock{l: lease, id: "pair-backup"}
	ctx := context.Background()
	if err := main.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "pair-main", LeaseDurationSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	// The backup takes the expired Lease over.
	if _, _, err := backup.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := backup.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "pair-backup", LeaseDurationSeconds: 2, LeaderTransitions: 1}); err != nil {
		t.Fatal(err)
	}
	// The main's elector releases: it reads the Lease (refreshing its
	// version), then writes an empty holder.
	r := &renewClock{Interface: main, beforeRelease: func() bool { return true }}
	if _, _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	err := r.Update(ctx, resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, LeaderTransitions: 1})
	if !errors.Is(err, errNotHolder) {
		t.Fatalf("release of the other side's Lease: %v", err)
	}
	if got := lease.record().HolderIdentity; got != "pair-backup" {
		t.Fatalf("the Lease names %q after the stale release, want pair-backup", got)
	}
}
