package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/server"
)

// pairDriver runs a backup pair member. ActiveActive: both servers serve
// their own licences, each also answering for the other's mapped licences
// so failed-over clients keep their seats. ActivePassive: the Lease decides
// which one serves, so two servers started at the same instant never both
// serve. Only a member whose license server is healthy campaigns, and a
// holder whose server cannot serve gives the role up. With Fixed roles the
// backup campaigns only while the main is not fit to serve (its server
// unhealthy, the API server out of its reach, or its agent silent), and
// gives the role back once the main reports itself fit for
// handbackProbes probes in a row; Symmetric keeps whoever holds.
type pairDriver struct {
	a *Agent
	// health is this member's own fitness, served to the peer.
	health *memberHealth
	// peer is what the other member last reported about itself.
	peer peerTracker
	// epoch is the fencing epoch of this process's last term.
	epoch atomic.Uint64
}

// handbackProbes is how many probes in a row must find the main fit
// before a Fixed backup hands the role back.
const handbackProbes = 2

// peerProbeInterval is how often a member asks the other for its status.
const peerProbeInterval = time.Second

func newPairDriver(a *Agent) (roleDriver, error) {
	if a.opts.Member != group.SideMain && a.opts.Member != group.SideBackup {
		return nil, fmt.Errorf("a backup pair member is named main or backup, not %q", a.opts.Member)
	}
	return &pairDriver{a: a, health: &memberHealth{}}, nil
}

func (d *pairDriver) other() string {
	if d.a.opts.Member == group.SideMain {
		return group.SideBackup
	}
	return group.SideMain
}

// aliases maps the other side's licence ids to ours, from the mappings.
func (d *pairDriver) aliases(cfg *group.Config) map[string]string {
	out := map[string]string{}
	for _, m := range cfg.LicenseMappings {
		if d.a.opts.Member == group.SideMain {
			out[m.Backup] = m.Main
		} else {
			out[m.Main] = m.Backup
		}
	}
	return out
}

func (d *pairDriver) Run(ctx context.Context) error {
	cfg := d.a.config()
	memberHealthOf.Store(d.a, d.health)
	defer memberHealthOf.Delete(d.a)
	defer d.a.files.start(ctx)() // extra data folders; the main syncs once more on a deliberate stop
	go d.probePeer(ctx)
	go d.watchServer(ctx)
	if !d.a.opts.StopToFence {
		go d.keepAliases(ctx)
	}
	if cfg.Mode != group.ModeActivePassive {
		d.a.setDesired(ctx, d.state(server.RoleActive, 1, d.a.opts.Member))
		<-ctx.Done()
		return nil
	}
	go d.watchAPI(ctx)
	return d.runActivePassive(ctx)
}

func (d *pairDriver) state(role server.Role, epoch uint64, active string) desired {
	st, label := group.StateStandby, group.RoleLabelStandby
	if role == server.RoleActive {
		st, label = group.StateActive, group.RoleLabelActive
	}
	return desired{role: role, epoch: epoch, active: active, label: label, state: st, peers: d.peers()}
}

// peers lists the other member while its agent answers.
func (d *pairDriver) peers() []string {
	if d.peer.heardWithin(boottime.Now(), d.a.config().PeerTimeout()) {
		return []string{d.other()}
	}
	return nil
}

// probePeer asks the other member's agent for its status, every second.
func (d *pairDriver) probePeer(ctx context.Context) {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	t := time.NewTicker(peerProbeInterval)
	defer t.Stop()
	for {
		cfg := d.a.config()
		var st *peerStatus
		answered := false
		if m, found := cfg.Member(d.other()); found && m.Address != "" {
			st, answered = fetchPeerStatus(ctx, client, "http://"+net.JoinHostPort(m.Address, strconv.Itoa(group.AgentHTTPPort))+peerStatusPath)
		}
		d.peer.observe(st, answered, boottime.Now())
		d.a.setPeers(d.peers())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fetchPeerStatus asks one agent for its status: st is nil unless it
// answered with one; answered says whether the agent answered at all (an
// agent of an older release answers 404).
func fetchPeerStatus(ctx context.Context, client *http.Client, url string) (st *peerStatus, answered bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, true
	}
	var s peerStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&s); err != nil {
		return nil, true
	}
	return &s, true
}

// watchServer samples the local license server's health every 250 ms: the
// agent loop's latest state poll (no request of its own) and the
// supervisor's view of the process.
func (d *pairDriver) watchServer(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	was := false
	for {
		ps := d.a.sup.Status()
		s := serverSample{StopToFence: d.a.opts.StopToFence, Running: ps.Running, Restarts: ps.Restarts}
		if s.StopToFence {
			s.Held = d.a.sup.heldChan() != nil
		} else {
			s.Polled, s.Epoch = d.a.serverPoll(500 * time.Millisecond)
		}
		now := boottime.Now()
		d.health.observeServer(s, now)
		if ok := d.health.serverHealthy(now, d.a.config().PeerTimeout()); ok != was {
			was = ok
			if ok {
				d.a.log.Info("License server healthy")
			} else {
				d.a.log.Info("License server cannot serve", "running", ps.Running, "restarts", ps.Restarts)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchAPI reads the Lease when no other call reached the API server in
// the last second, so that a member that neither holds nor campaigns still
// knows (and tells its peer) whether it could take the Lease.
func (d *pairDriver) watchAPI(ctx context.Context) {
	leases := d.a.cs.CoordinationV1().Leases(d.a.opts.Namespace)
	name := group.LeaseName(d.a.opts.Group)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if d.health.apiAge(boottime.Now()) >= time.Second {
			gctx, cancel := context.WithTimeout(ctx, apiTimeout)
			_, err := leases.Get(gctx, name, metav1.GetOptions{})
			cancel()
			if ctx.Err() != nil {
				return
			}
			d.health.observeAPI(err, boottime.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepAliases tells the server which of the other side's licences it serves.
func (d *pairDriver) keepAliases(ctx context.Context) {
	var last string
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		aliases := d.aliases(d.a.config())
		key := fmt.Sprint(aliases)
		if key != last {
			if err := d.a.admin.SetAliases(ctx, aliases); err == nil {
				last = key
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pairAction is what a member of an ActivePassive pair does next.
type pairAction int

const (
	// actStandby: do not campaign for the Lease.
	actStandby pairAction = iota
	// actCampaign: campaign for the Lease.
	actCampaign
	// actHold: keep the Lease and serve.
	actHold
	// actRelease: fence the server, then give the Lease up.
	actRelease
)

func (a pairAction) String() string {
	return [...]string{"standby", "campaign", "hold", "release"}[a]
}

// peerSeen is the other member as the last probes found it.
type peerSeen struct {
	// Status is what it last reported about itself, Age ago; nil when it
	// never answered with a status.
	Status *peerStatus
	Age    time.Duration
	// FitStreak counts the consecutive probes, up to the last one, that
	// found it fit (a failed probe ends the streak).
	FitStreak int
}

// fitFor says whether the peer is fit to serve and take the Lease, as
// reported by at least probes probes in a row, the last one current.
func (p peerSeen) fitFor(probes int, timeout time.Duration) bool {
	return p.Status != nil && p.Age < timeout && p.Status.fit() && p.FitStreak >= probes
}

// pairView is everything a member of an ActivePassive pair decides on.
type pairView struct {
	// Fixed: roles Fixed (the main is primary); otherwise Symmetric.
	Fixed  bool
	IsMain bool
	// OwnHealthy: this member's license server can serve.
	OwnHealthy bool
	// Holding: this member holds the Lease.
	Holding     bool
	Peer        peerSeen
	PeerTimeout time.Duration
}

// decidePair decides whether a member campaigns for, keeps or gives up the
// Lease. Only the license servers' health and the Lease count: the peer's
// agent merely answering never makes a member step back.
//
//   - A member whose own server cannot serve gives the Lease up and does
//     not campaign.
//   - Symmetric, and the main with Fixed roles: campaign, and keep what is
//     held.
//   - The Fixed backup campaigns unless the main, in the last probe,
//     reported its server healthy and the API server reachable; it hands
//     the role back only when the main did so for handbackProbes probes in
//     a row. A main that cannot reach the API server could not take the
//     Lease back, so the backup keeps it.
func decidePair(v pairView) pairAction {
	if !v.OwnHealthy {
		if v.Holding {
			return actRelease
		}
		return actStandby
	}
	if !v.Fixed || v.IsMain {
		if v.Holding {
			return actHold
		}
		return actCampaign
	}
	if v.Holding {
		if v.Peer.fitFor(handbackProbes, v.PeerTimeout) {
			return actRelease
		}
		return actHold
	}
	if v.Peer.fitFor(1, v.PeerTimeout) {
		return actStandby
	}
	return actCampaign
}

// view gathers the inputs of decidePair now.
func (d *pairDriver) view(holding bool) pairView {
	cfg := d.a.config()
	now := boottime.Now()
	timeout := cfg.PeerTimeout()
	return pairView{
		Fixed:       cfg.Roles != group.RolesSymmetric,
		IsMain:      d.a.opts.Member == group.SideMain,
		OwnHealthy:  d.health.serverHealthy(now, timeout),
		Holding:     holding,
		Peer:        d.peer.seen(now),
		PeerTimeout: timeout,
	}
}

// nextEpoch is the fencing epoch of a new term: one more than the Lease's
// leaderTransitions as this member's acquisition wrote them (the Lease's
// compare-and-swap orders them across both members), never below a term
// this process already used, and above the epoch the local server already
// holds (one left by a previous run, or by a release that took epochs from
// the clock). No clock takes part.
func nextEpoch(prev uint64, transitions int32, serverEpoch uint64) uint64 {
	e := max(prev+1, uint64(max(transitions, 0))+1)
	if serverEpoch >= e {
		e = serverEpoch + 1
	}
	return e
}

// takeEpoch sets and returns the epoch of the term the lock just acquired.
func (d *pairDriver) takeEpoch(lock *renewClock) uint64 {
	e := nextEpoch(d.epoch.Load(), lock.term.Load(), d.health.serverEpoch())
	d.epoch.Store(e)
	return e
}

// fenced says whether the local server cannot be serving: it applied a
// role other than active, its serve bound has passed, or its process does
// not run (a restarted server starts as a standby).
func (d *pairDriver) fenced() bool {
	d.a.mu.Lock()
	applied := d.a.applied
	d.a.mu.Unlock()
	if applied.role != server.RoleActive {
		return true
	}
	if applied.until != 0 && applied.until <= boottime.Now() {
		return true
	}
	return !d.a.opts.StopToFence && !d.a.sup.Status().Running
}

// runActivePassive campaigns for the Lease when this member may serve.
func (d *pairDriver) runActivePassive(ctx context.Context) error {
	cfg := d.a.config()
	peerTimeout := cfg.PeerTimeout()
	d.a.setDesired(ctx, d.state(server.RoleStandby, 0, ""))
	for ctx.Err() == nil {
		if act := decidePair(d.view(false)); act != actCampaign {
			active := ""
			if p := d.peer.seen(boottime.Now()); p.Status != nil && p.Age < peerTimeout && p.Status.Serving {
				active = d.other()
			}
			d.a.setDesired(ctx, d.state(server.RoleStandby, d.epoch.Load(), active))
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		electCtx, stop := context.WithCancel(ctx)
		lock := &renewClock{Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metaOf(d.a.opts.Namespace, group.LeaseName(d.a.opts.Group)),
			Client:     d.a.cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: d.a.opts.Pod},
		}, api: d.health.observeAPI, beforeRelease: func() bool {
			// setDesired applies a fence at once, from this goroutine.
			d.a.setDesired(context.WithoutCancel(ctx), d.state(server.RoleStandby, d.epoch.Load(), ""))
			if !d.fenced() {
				d.a.log.Info("Could not fence the server; leaving the Lease to expire rather than releasing it")
				return false
			}
			return true
		}}
		// The holder serves only until RenewDeadline after its last
		// successful write of the Lease, never longer: the other side may
		// take the Lease LeaseDuration after it last saw it renewed, so a
		// holder that froze and resumed has stopped serving by then.
		serve := func(e uint64) {
			lock.whileHeld(func() {
				want := d.state(server.RoleActive, e, d.a.opts.Member)
				want.until = lock.last.Load() + int64(peerTimeout*2/3)
				d.a.setDesired(ctx, want)
				d.a.applyRole(ctx)
			})
		}
		// While campaigning, stop when this member should no longer (its
		// server fell ill, or a Fixed main became fit).
		var leading atomic.Bool
		go func() {
			for electCtx.Err() == nil {
				sleep(electCtx, 200*time.Millisecond)
				if !leading.Load() && electCtx.Err() == nil && decidePair(d.view(false)) != actCampaign {
					stop()
				}
			}
		}()
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   peerTimeout,
			RenewDeadline:   peerTimeout * 2 / 3,
			RetryPeriod:     peerTimeout / 6,
			ReleaseOnCancel: true,
			Name:            d.a.opts.Group,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					leading.Store(true)
					lock.whileHeld(func() { d.health.setHolding(true) })
					e := d.takeEpoch(lock)
					d.a.log.Info("Took the active role", "epoch", e, "leaseTransitions", lock.term.Load())
					// Checked before every renewal, the first included: a
					// server that fell ill while campaigning never serves.
					for lctx.Err() == nil {
						if decidePair(d.view(true)) == actRelease {
							if d.health.serverHealthy(boottime.Now(), d.a.config().PeerTimeout()) {
								d.a.log.Info("Main is back and healthy; handing the role back")
							} else {
								d.a.log.Info("The license server cannot serve; giving the role up")
							}
							// Fence before the Lease is released (see beforeRelease).
							stop()
							return
						}
						serve(e)
						sleep(lctx, 200*time.Millisecond)
					}
				},
				OnStoppedLeading: func() {
					// Fence first: the server stops serving before anyone
					// else may, and nothing makes it serve again under this
					// elector.
					lock.stopServing(func() {
						d.a.setDesired(context.WithoutCancel(ctx), d.state(server.RoleStandby, d.epoch.Load(), ""))
					})
					d.health.setHolding(false)
				},
			},
		})
		if err != nil {
			stop()
			return err
		}
		le.Run(electCtx)
		stop()
	}
	d.a.setDesired(context.WithoutCancel(ctx), d.state(server.RoleStandby, d.epoch.Load(), ""))
	return nil
}

// renewClock wraps the Lease lock: it records when this member last wrote
// the Lease successfully, on the node's monotonic clock, taking the time
// before the write is sent; it reports every call's outcome to api; it
// keeps the leaderTransitions of this elector's acquisition (the term, from
// which the epoch derives); and it fences the server before releasing.
type renewClock struct {
	resourcelock.Interface
	last atomic.Int64
	// api, when set, learns the outcome of every call to the API server.
	api func(err error, now int64)
	// beforeRelease fences the server; it runs before the Lease is given
	// up, so the other side can never serve while this one still does.
	// When it reports that the fence did not take, the Lease is not
	// released: the other side takes it once it expires, by which time the
	// server's serve bound has passed.
	beforeRelease func() bool
	// seen is the leaderTransitions of the last record read (-1: the read
	// failed; an elector always reads before it acquires); term is those of
	// this elector's acquisition, acquired once it is known. The elector
	// makes one call at a time.
	seen     atomic.Int32
	term     atomic.Int32
	acquired atomic.Bool
	// holder is the holderIdentity of the last record read ("" when the
	// read failed).
	holder atomic.Value
	// released is set once this elector gave the Lease up, or stopped
	// leading: nothing may make the server serve again under it. mu makes
	// "check released, then serve" and "set released, then fence"
	// exclusive.
	mu       sync.Mutex
	released bool
}

// errNotFenced refuses to release the Lease while the server may serve.
var errNotFenced = errors.New("the server is not fenced; the Lease is left to expire")

// errNotHolder refuses a release of a Lease another member holds now.
// client-go's release reads the Lease and then decides from what its
// elector observed earlier: after a freeze whose renewals failed, that is
// the old term, and the write would clear the other side's fresh Lease.
var errNotHolder = errors.New("the Lease is held by the other side; nothing to release")

// whileHeld runs f unless the Lease was released, excluding a concurrent
// release: f may make the server serve.
func (r *renewClock) whileHeld(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.released {
		f()
	}
}

// stopServing runs the fence f once this elector stopped leading, after
// which whileHeld runs nothing.
func (r *renewClock) stopServing(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = true
	f()
}

func (r *renewClock) observe(err error) {
	if r.api != nil {
		r.api(err, boottime.Now())
	}
}

func (r *renewClock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := r.Interface.Get(ctx)
	r.observe(err)
	if err == nil && rec != nil {
		r.seen.Store(int32(rec.LeaderTransitions))
		r.holder.Store(rec.HolderIdentity)
	} else {
		r.seen.Store(-1)
		r.holder.Store("")
	}
	return rec, raw, err
}

func (r *renewClock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	at := boottime.Now()
	err := r.Interface.Create(ctx, rec)
	r.observe(err)
	if err == nil {
		r.last.Store(at)
		r.acquiredAt(rec)
		r.holder.Store(rec.HolderIdentity)
	}
	return err
}

func (r *renewClock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if rec.HolderIdentity == "" {
		r.mu.Lock()
		r.released = true
		fenced := r.beforeRelease == nil || r.beforeRelease()
		r.mu.Unlock()
		if !fenced {
			return errNotFenced
		}
		if h, _ := r.holder.Load().(string); h != r.Identity() {
			return errNotHolder
		}
		err := r.Interface.Update(ctx, rec)
		r.observe(err)
		return err
	}
	if !r.acquired.Load() {
		// An elector that finds its own identity in the Lease (this pod's
		// previous run held it) takes it without counting a transition:
		// count one, so that every term has transitions of its own.
		if seen := r.seen.Load(); seen >= 0 && int32(rec.LeaderTransitions) <= seen {
			rec.LeaderTransitions = int(seen) + 1
		}
	} else if term := int(r.term.Load()); rec.LeaderTransitions < term {
		// Renewals carry what the elector observed before that bump.
		rec.LeaderTransitions = term
	}
	at := boottime.Now()
	err := r.Interface.Update(ctx, rec)
	r.observe(err)
	if err == nil {
		r.last.Store(at)
		r.acquiredAt(rec)
		r.holder.Store(rec.HolderIdentity)
	}
	return err
}

// acquiredAt records the term of the first record this elector wrote.
func (r *renewClock) acquiredAt(rec resourcelock.LeaderElectionRecord) {
	if !r.acquired.Load() {
		r.term.Store(int32(rec.LeaderTransitions))
		r.acquired.Store(true)
	}
}

func metaOf(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
