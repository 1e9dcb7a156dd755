// Package sim is a deterministic discrete-event simulator for the election:
// three members, each running the very Driver the member agent runs (the
// same machine, heartbeat codec, Lease mapping and server application), a
// network, a Kubernetes Lease held as a coordination/v1 object in a
// linearizable compare-and-swap store, and a model of each member's license
// server, all driven by one seeded math/rand source on a virtual true clock.
//
// It injects crashes, restarts, pauses, one- and two-way partitions between
// members and between members and the store, message loss and delay,
// clock-rate skew, slow, failed, lost and reordered server requests, and
// spec edits (roles, names, timing) that reach the members at different
// times. It checks, on the model servers' true state, that no two servers
// ever serve at once and that a tertiary never serves.
//
// A run is a pure function of its seed; nothing in it sleeps or starts a
// goroutine.
package sim

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/licenseha/licenseha/pkg/election"
	"github.com/licenseha/licenseha/pkg/election/kubelease"
)

// Member indexes: 0 primary, 1 secondary, 2 tertiary (at the start).
const (
	P = 0
	S = 1
	T = 2
)

// group is the simulated group's name (heartbeat MACs, Lease mapping).
const group = "sim"

var key = []byte("simulated-group-key")

// Network shapes message and store latency.
type Network struct {
	// MinDelay and MaxDelay bound an ordinary one-way delay.
	MinDelay, MaxDelay time.Duration
	// LongDelayProb is the chance that a message or store request is held
	// up to LongDelay instead.
	LongDelayProb float64
	LongDelay     time.Duration
	// Loss is the chance that a message or store request or answer is lost.
	Loss float64
}

// ServerFaults shapes the member's requests to its license server: most
// take MaxDelay at most; some are slow (up to SlowDelay, longer than the
// fence delay), fail without effect, or are lost (applied after up to
// SlowDelay or never, while the driver's request times out).
type ServerFaults struct {
	MaxDelay  time.Duration
	SlowProb  float64
	SlowDelay time.Duration
	FailProb  float64
	LostProb  float64
}

// World is one simulation.
type World struct {
	// Cfg is the group's spec: roles, names and timing (Self and
	// Incarnation unused). Edits change it and reach the members later.
	Cfg    election.Config
	Net    Network
	Server ServerFaults
	// LeaseTimeout is when the simulated runner gives up on a Lease call;
	// ServerTimeout on a server request.
	LeaseTimeout, ServerTimeout time.Duration

	Now     time.Duration // true time
	Members [3]*Member
	Store   Store

	rng     *rand.Rand
	queue   eventQueue
	seq     uint64
	link    [3][3]bool // link[i][j]: messages from i reach j
	store   [3]bool    // member i reaches the store and back
	trace   *strings.Builder
	failed  []string
	stalled bool
	specGen int
	renames int
	// down: slots that stay down (no restart, no renamed process).
	down [3]bool

	// OnHandover observes a member's decision to hand over.
	OnHandover func(w *World, i int, st election.Status)
	// OnServeStart observes the start of a serving interval (the model
	// server's, not the agent's wish).
	OnServeStart func(w *World, i int, epoch int64)
}

// Member is one member slot: the process running in it (an agent with its
// Driver) and the license server it drives. A renamed member is a new
// process with a new name in the same slot.
type Member struct {
	Index  int
	Name   election.MemberID
	Driver *election.Driver
	Alive  bool
	Paused bool
	// Inc counts the processes started in this slot (event routing).
	Inc uint64
	// Start is the true time at which the member's clock read zero.
	Start time.Duration
	// Up is the true time the current process started; Lives lists
	// the [start, stop) true times of the former ones.
	Up    time.Duration
	Lives [][2]time.Duration
	Rate  float64 // local clock rate against true time
	// ShuttingDown: Shutdown was called; the process exits on Done.
	ShuttingDown bool

	wakeGen  uint64
	held     []event // events that arrived while paused
	cmdOpen  uint64  // the Lease command the runner waits for, 0 if none
	specGen  int     // the spec generation this process applied
	label    election.Label
	lastActs election.Actions
	handover election.Reason

	srv server
	// rename is the name the next process in this slot starts with.
	rename election.MemberID
}

// server is the model of a member's license server. gen counts its
// processes: requests for an older process are void.
type server struct {
	gen     uint64
	lastSeq uint64
	mode    election.Mode
	epoch   int64
	until   time.Duration // on the member's clock
	// end is the latest true time this server may serve: its deadline plus
	// the fence delay (the worst case the protocol assumes).
	end      time.Duration
	stopping bool
	// downUntil: the server process crashed and answers nothing before
	// then (true time); the supervisor restarts it fenced.
	downUntil time.Duration
	downSince time.Duration
}

// Store is the linearizable compare-and-swap register behind the Lease: a
// coordination/v1 Lease written through the agent's mapping.
type Store struct {
	// Requests counts the requests that reached the store.
	Requests int
	Lease    *coordinationv1.Lease
	version  int64
	mapping  kubelease.Mapping
}

// Exists reports whether the Lease exists.
func (s *Store) Exists() bool { return s.Lease != nil }

// Rec is the Lease's record as the members read it.
func (s *Store) Rec() election.LeaseRecord {
	if s.Lease == nil {
		return election.LeaseRecord{}
	}
	return s.mapping.Record(s.Lease)
}

// New returns a world with all members up and connected.
func New(seed int64, cfg election.Config, net Network, trace bool) *World {
	cfg.Primary, cfg.Secondary, cfg.Tertiary = "p", "s", "t"
	cfg = cfg.WithDefaults()
	w := &World{Cfg: cfg, Net: net, LeaseTimeout: cfg.PeerTimeout / 2, ServerTimeout: time.Second,
		Server: ServerFaults{MaxDelay: time.Millisecond},
		rng:    rand.New(rand.NewSource(seed))}
	w.Store.mapping = kubelease.Mapping{Group: group}
	if trace {
		w.trace = &strings.Builder{}
	}
	for i := range w.link {
		w.store[i] = true
		for j := range w.link[i] {
			w.link[i][j] = true
		}
	}
	for i, id := range []election.MemberID{cfg.Primary, cfg.Secondary, cfg.Tertiary} {
		w.Members[i] = &Member{Index: i, Name: id, Rate: 1}
	}
	return w
}

// NewPair returns a world running a backup pair: members P (the main) and
// S (the backup) up and connected; slot T stays empty.
func NewPair(seed int64, cfg election.Config, net Network, trace bool) *World {
	w := New(seed, cfg, net, trace)
	w.Cfg.Tertiary = ""
	w.down[T] = true
	return w
}

// slots is how many member slots the group uses: 2 for a pair.
func (w *World) slots() int {
	if w.Cfg.Pair() {
		return 2
	}
	return 3
}

// Rand is the world's random source, for fault schedules.
func (w *World) Rand() *rand.Rand { return w.rng }

// Failures lists the invariant violations seen so far.
func (w *World) Failures() []string { return w.failed }

// Trace returns the event trace (empty unless tracing).
func (w *World) Trace() string {
	if w.trace == nil {
		return ""
	}
	return w.trace.String()
}

func (w *World) logf(format string, args ...any) {
	if w.trace != nil {
		fmt.Fprintf(w.trace, "%10.4fs ", w.Now.Seconds())
		fmt.Fprintf(w.trace, format, args...)
		w.trace.WriteByte('\n')
	}
}

func (w *World) fail(format string, args ...any) {
	msg := fmt.Sprintf("at %.4fs: ", w.Now.Seconds()) + fmt.Sprintf(format, args...)
	w.failed = append(w.failed, msg)
	w.logf("VIOLATION %s", msg)
}

// local is member m's clock at true time t.
func (m *Member) local(t time.Duration) time.Duration {
	return time.Duration(float64(t-m.Start) * m.Rate)
}

// trueAt is the earliest true time at which m's clock reads l.
func (m *Member) trueAt(l time.Duration) time.Duration {
	t := m.Start + time.Duration(math.Ceil(float64(l)/m.Rate))
	for m.local(t) < l { // float rounding
		t++
	}
	return t
}

// ServingAt reports whether the member's server may serve at true time t,
// including the FenceDelay tail: the quantity the safety check uses.
func (m *Member) ServingAt(t time.Duration) bool { return m.srv.end > t }

// Active reports whether the member's server serves at t (its deadline has
// not passed): the quantity the liveness checks use.
func (m *Member) Active(t time.Duration) bool {
	return m.Alive && m.srv.mode == election.Serve && m.trueAt(m.srv.until) > t
}

// Epoch is the epoch of the member's server.
func (m *Member) Epoch() int64 { return m.srv.epoch }

// Label is the member's last published role label.
func (m *Member) Label() election.Label { return m.label }

// Status is the member's protocol status.
func (m *Member) Status(w *World) election.Status {
	return m.Driver.Machine().Status(m.local(w.Now))
}

// spec is the configuration member m's process gets from the API server.
func (w *World) spec(m *Member) election.Config {
	cfg := w.Cfg
	cfg.Self = m.Name
	return cfg
}

// Start brings member i up (again) as a new process.
func (w *World) Start(i int) {
	m := w.Members[i]
	if m.Alive || w.down[i] {
		return
	}
	if m.rename != "" {
		m.Name, m.rename = m.rename, ""
	}
	cfg := w.spec(m)
	cfg.Incarnation = uint64(w.rng.Uint32())
	m.Inc++
	m.Alive, m.Paused, m.ShuttingDown, m.held, m.cmdOpen = true, false, false, nil, 0
	m.specGen = w.specGen
	m.Up = w.Now
	m.Start = w.Now - time.Duration(w.rng.Int63n(int64(time.Hour))) // arbitrary clock origin
	m.srv = server{gen: m.srv.gen + 1}
	d, err := election.NewDriver(cfg, group, key, m.local(w.Now))
	if err != nil {
		panic(err)
	}
	m.Driver = d
	w.logf("%s start rate=%.4f", m.Name, m.Rate)
	w.apply(m, d.Start(m.local(w.Now)))
}

// Crash stops member i abruptly; its server dies with it.
func (w *World) Crash(i int) {
	m := w.Members[i]
	if !m.Alive {
		return
	}
	w.logf("%s crash", m.Name)
	m.Alive, m.Paused, m.held, m.cmdOpen = false, false, nil, 0
	m.Lives = append(m.Lives, [2]time.Duration{m.Up, w.Now})
	m.srv.end = min(m.srv.end, w.Now)
	m.srv.mode = election.Fence
	m.srv.gen++
}

// Pause stops member i's agent from processing (SIGSTOP of the agent); its
// server runs on with whatever it was told last and stops at its deadline,
// and requests already on their way still reach it.
func (w *World) Pause(i int) {
	if m := w.Members[i]; m.Alive && !m.Paused {
		w.logf("%s pause", m.Name)
		m.Paused = true
	}
}

// Resume continues a paused member: it sees its clock jump, then the
// messages and results that queued up meanwhile.
func (w *World) Resume(i int) {
	m := w.Members[i]
	if !m.Alive || !m.Paused {
		return
	}
	w.logf("%s resume (%d held)", m.Name, len(m.held))
	m.Paused = false
	w.apply(m, m.Driver.Tick(m.local(w.Now)))
	held := m.held
	m.held = nil
	for _, e := range held {
		w.dispatch(e)
	}
}

// Shutdown starts a graceful shutdown (SIGTERM) of member i; the process
// exits when the driver reports Done, or after one second regardless.
func (w *World) Shutdown(i int) {
	m := w.Members[i]
	if !m.Alive || m.Paused || m.ShuttingDown {
		return
	}
	w.logf("%s shutdown", m.Name)
	m.ShuttingDown = true
	inc := m.Inc
	w.After(time.Second, func() {
		if m.Alive && m.Inc == inc {
			w.logf("%s exit deadline", m.Name)
			w.Crash(i)
		}
	})
	w.apply(m, m.Driver.Shutdown(m.local(w.Now)))
}

// Switchover asks every running member to hand the role to target; only the
// holder acts.
func (w *World) Switchover(target int) {
	to := w.Members[target].Name
	w.logf("switchover to %s", to)
	for _, m := range w.Members {
		if m.Alive && !m.Paused {
			w.apply(m, m.Driver.Switchover(m.local(w.Now), to))
		}
	}
}

// IndexOf returns the slot of the member named id, -1 if none.
func (w *World) IndexOf(id election.MemberID) int {
	for i, m := range w.Members {
		if m.Name == id {
			return i
		}
	}
	return -1
}

// Edit changes the spec to cfg (roles, names, timing); member i's agent
// sees it after delay[i] (negative: not until Deliver). Renamed slots are
// handled by Rename.
func (w *World) Edit(cfg election.Config, delay [3]time.Duration) {
	cfg = cfg.WithDefaults()
	w.Cfg = cfg
	w.specGen++
	gen := w.specGen
	w.logf("edit: primary=%s secondary=%s tertiary=%s pt=%v hb=%v", cfg.Primary, cfg.Secondary, cfg.Tertiary,
		cfg.PeerTimeout, cfg.HeartbeatInterval)
	for i := range w.Members {
		if delay[i] >= 0 {
			w.After(delay[i], func() { w.deliver(i, gen) })
		}
	}
}

// Deliver hands the current spec to every running member that has not
// applied it (their API connection is back).
func (w *World) Deliver() {
	for i := range w.Members {
		w.deliver(i, w.specGen)
	}
}

func (w *World) deliver(i, gen int) {
	m := w.Members[i]
	if !m.Alive || m.Paused || m.specGen >= gen || gen != w.specGen {
		if m.Alive && m.Paused && gen == w.specGen {
			w.After(100*time.Millisecond, func() { w.deliver(i, gen) })
		}
		return
	}
	m.specGen = gen
	w.logf("%s applies spec %d", m.Name, gen)
	acts, err := m.Driver.Configure(m.local(w.Now), w.spec(m))
	if err != nil {
		w.fail("configure %s: %v", m.Name, err)
	}
	w.apply(m, acts)
}

// SwapRoles swaps the configured roles of members i and j; every running
// member sees the edit at once.
func (w *World) SwapRoles(i, j int) {
	cfg := w.Cfg
	a, b := w.Members[i].Name, w.Members[j].Name
	for _, r := range []*election.MemberID{&cfg.Primary, &cfg.Secondary, &cfg.Tertiary} {
		switch *r {
		case a:
			*r = b
		case b:
			*r = a
		}
	}
	w.Edit(cfg, [3]time.Duration{})
}

// Rename gives slot i a new member name: the spec changes (reaching the
// others after delay), the old process learns it is no longer a member and
// is shut down like a deleted pod after podGone, and a process with the
// new name starts after that.
func (w *World) Rename(i int, name election.MemberID, delay [3]time.Duration, podGone time.Duration) {
	m := w.Members[i]
	old := m.Name
	if m.rename != "" {
		old = m.rename // renamed again before the first new process started
	}
	cfg := w.Cfg
	for _, r := range []*election.MemberID{&cfg.Primary, &cfg.Secondary, &cfg.Tertiary} {
		if *r == old {
			*r = name
		}
	}
	w.logf("rename %s to %s", old, name)
	w.Edit(cfg, delay)
	m.rename = name
	w.After(podGone, func() {
		if !m.Alive {
			w.Start(i)
			return
		}
		if m.Name == name {
			return
		}
		if m.Paused {
			w.Resume(i)
		}
		w.Shutdown(i)
		w.After(time.Second+time.Millisecond, func() {
			if m.Name != name {
				w.Crash(i)
				w.Start(i)
			}
		})
	})
}

// SetLink sets whether messages from i reach j.
func (w *World) SetLink(i, j int, up bool) {
	w.logf("link %s->%s %v", w.Members[i].Name, w.Members[j].Name, up)
	w.link[i][j] = up
}

// SetStore sets whether member i reaches the Lease store.
func (w *World) SetStore(i int, up bool) {
	w.logf("store<->%s %v", w.Members[i].Name, up)
	w.store[i] = up
}

// Heal restores every link and the store for everyone.
func (w *World) Heal() {
	w.logf("heal")
	for i := range w.link {
		w.store[i] = true
		for j := range w.link[i] {
			w.link[i][j] = true
		}
	}
}

// After runs f at true time Now+d.
func (w *World) After(d time.Duration, f func()) {
	w.push(event{at: w.Now + d, kind: evFunc, fn: f})
}

// RunUntil processes events up to true time t, which must not be in the past.
func (w *World) RunUntil(t time.Duration) {
	if t < w.Now {
		panic(fmt.Sprintf("sim: time runs backwards from %v to %v", w.Now, t))
	}
	same := 0
	for !w.stalled && w.queue.Len() > 0 && w.queue[0].at <= t {
		e := heap.Pop(&w.queue).(event)
		if same++; e.at != w.Now {
			same = 0
		}
		w.Now = e.at
		w.dispatch(e)
		if same > 10000 {
			w.fail("livelock: more than %d events at one instant", same)
			w.stalled = true
		}
	}
	w.Now = t
}

// ActiveMember returns the member whose server serves now, or -1.
func (w *World) ActiveMember() int {
	for i, m := range w.Members {
		if m.Active(w.Now) {
			return i
		}
	}
	return -1
}

type eventKind int

const (
	evFunc eventKind = iota
	evWake
	evDeliver
	evStoreReq
	evStoreResp
	evLeaseTimeout
	evServerReq
	evServerResp
	evServerStopped
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	to   int
	inc  uint64
	gen  uint64
	data []byte
	cmd  election.LeaseCommand
	res  election.LeaseResult
	srv  election.ServerCommand
	err  error
	fn   func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (w *World) push(e event) {
	w.seq++
	e.seq = w.seq
	heap.Push(&w.queue, e)
}

func (w *World) delay() time.Duration {
	n := w.Net
	if n.LongDelayProb > 0 && w.rng.Float64() < n.LongDelayProb {
		return time.Duration(w.rng.Int63n(int64(n.LongDelay) + 1))
	}
	return n.MinDelay + time.Duration(w.rng.Int63n(int64(n.MaxDelay-n.MinDelay)+1))
}

func (w *World) lost() bool { return w.Net.Loss > 0 && w.rng.Float64() < w.Net.Loss }

var errServer = fmt.Errorf("simulated server error")

func (w *World) dispatch(e event) {
	switch e.kind {
	case evFunc:
		e.fn()
		return
	case evStoreReq:
		w.storeApply(e)
		return
	case evServerReq:
		w.serverApply(e)
		return
	}
	m := w.Members[e.to]
	if !m.Alive || m.Inc != e.inc {
		return
	}
	if m.Paused {
		if e.kind != evWake {
			m.held = append(m.held, e)
		}
		return
	}
	now := m.local(w.Now)
	switch e.kind {
	case evWake:
		if e.gen == m.wakeGen {
			w.apply(m, m.Driver.Tick(now))
		}
	case evDeliver:
		w.apply(m, m.Driver.Datagram(now, e.data))
	case evStoreResp, evLeaseTimeout:
		if m.cmdOpen != e.res.ID {
			return // the runner already reported this command
		}
		m.cmdOpen = 0
		w.logf("%s lease result #%d %s %s", m.Name, e.res.ID, e.res.Outcome, e.res.Record)
		w.apply(m, m.Driver.LeaseResult(now, e.res))
	case evServerResp:
		w.logf("%s server #%d %s: %v", m.Name, e.srv.Seq, e.srv.Mode, e.err)
		w.apply(m, m.Driver.ServerDone(now, e.srv.Seq, e.srv.Mode, e.err))
	case evServerStopped:
		w.logf("%s server stopped", m.Name)
		w.apply(m, m.Driver.ServerStopped(now))
	}
}

// apply carries out a driver's actions in the prescribed order.
func (w *World) apply(m *Member, acts election.Actions) {
	m.lastActs = acts
	if w.OnHandover != nil {
		st := m.Status(w)
		if st.HandoverReason != "" && m.handover == "" {
			w.OnHandover(w, m.Index, st)
		}
		m.handover = st.HandoverReason
	}
	if c := acts.Server; c != nil {
		if c.Mode == election.Serve && m.Driver.Machine().Config().Tertiary == m.Name {
			w.fail("the tertiary %s decides to serve epoch %d", m.Name, c.Epoch)
		}
		w.sendServer(m, *c)
	}
	if acts.StopServer {
		w.stopServer(m)
	}
	m.label = acts.Label
	if c := acts.Lease; c != nil {
		w.logf("%s lease cmd #%d %s %s", m.Name, c.ID, c.Op, c.Record)
		m.cmdOpen = c.ID
		if w.store[m.Index] && !w.lost() {
			w.push(event{at: w.Now + w.delay(), kind: evStoreReq, to: m.Index, inc: m.Inc, cmd: *c})
		}
		w.push(event{at: w.Now + w.LeaseTimeout, kind: evLeaseTimeout, to: m.Index, inc: m.Inc,
			res: election.LeaseResult{ID: c.ID, Outcome: election.LeaseUnreachable}})
	}
	for _, dg := range acts.Datagrams {
		to := w.IndexOf(dg.To)
		if to < 0 {
			continue // no pod by that name
		}
		if w.link[m.Index][to] && !w.lost() {
			w.push(event{at: w.Now + w.delay(), kind: evDeliver, to: to, inc: w.Members[to].Inc, data: dg.Data})
		}
	}
	m.wakeGen++
	w.push(event{at: max(m.trueAt(acts.NextWake), w.Now), kind: evWake, to: m.Index, inc: m.Inc, gen: m.wakeGen})
	if acts.Done && m.ShuttingDown {
		w.logf("%s exits after handover", m.Name)
		w.Crash(m.Index)
	}
}

// sendServer sends a request to the member's model server, with the
// configured faults; the driver hears back after the delay, or times out.
func (w *World) sendServer(m *Member, c election.ServerCommand) {
	f := w.Server
	d := time.Duration(w.rng.Int63n(int64(f.MaxDelay) + 1))
	x := w.rng.Float64()
	req := event{kind: evServerReq, to: m.Index, inc: m.Inc, gen: m.srv.gen, srv: c}
	switch {
	case x < f.FailProb:
		w.push(event{at: w.Now + d, kind: evServerResp, to: m.Index, inc: m.Inc, srv: c, err: errServer})
		return
	case x < f.FailProb+f.LostProb:
		if w.rng.Intn(2) == 0 {
			req.at = w.Now + time.Duration(w.rng.Int63n(int64(f.SlowDelay)+1))
			w.push(req)
		}
		w.push(event{at: w.Now + w.ServerTimeout, kind: evServerResp, to: m.Index, inc: m.Inc, srv: c, err: errServer})
		return
	case x < f.FailProb+f.LostProb+f.SlowProb:
		d = time.Duration(w.rng.Int63n(int64(f.SlowDelay) + 1))
	}
	req.at = w.Now + d
	w.push(req)
}

// serverApply is the model server receiving a request: it refuses one not
// newer than what it applied, and answers the agent.
func (w *World) serverApply(e event) {
	m := w.Members[e.to]
	if !m.Alive || m.Inc != e.inc {
		return // the agent that sent it is gone too
	}
	if m.srv.gen != e.gen {
		// The server process it was sent to is gone: the connection
		// fails.
		w.push(event{at: w.Now, kind: evServerResp, to: e.to, inc: e.inc, srv: e.srv, err: errServer})
		return
	}
	c := e.srv
	var err error
	if w.Now < m.srv.downUntil {
		err = errServer // connection refused: the process is restarting
	} else if c.Seq <= m.srv.lastSeq && m.srv.lastSeq != 0 {
		err = errServer
	} else {
		m.srv.lastSeq = c.Seq
		w.setServer(m, c.ServerState)
	}
	w.push(event{at: w.Now + time.Duration(w.rng.Int63n(int64(w.Server.MaxDelay)+1)), kind: evServerResp,
		to: e.to, inc: e.inc, srv: c, err: err})
}

// setServer puts the model server into st and checks safety.
func (w *World) setServer(m *Member, st election.ServerState) {
	fd := w.Cfg.FenceDelay
	if st.Mode != election.Serve {
		if m.srv.mode == election.Serve {
			w.logf("%s FENCE epoch %d", m.Name, m.srv.epoch)
		}
		m.srv.mode = st.Mode
		m.srv.end = min(m.srv.end, w.Now)
		return
	}
	end := m.trueAt(st.Until)
	if end <= w.Now {
		m.srv.mode = election.Fence // a deadline already past serves nothing
		return
	}
	for _, o := range w.Members {
		if o != m && o.ServingAt(w.Now) {
			w.fail("%s serves epoch %d while %s may still serve epoch %d (until %.4fs)",
				m.Name, st.Epoch, o.Name, o.srv.epoch, o.srv.end.Seconds())
		}
	}
	if !m.Active(w.Now) || m.srv.epoch != st.Epoch {
		w.logf("%s SERVE epoch %d", m.Name, st.Epoch)
		if w.OnServeStart != nil {
			w.OnServeStart(w, m.Index, st.Epoch)
		}
	}
	m.srv.mode, m.srv.epoch, m.srv.until = election.Serve, st.Epoch, st.Until
	m.srv.end = max(m.srv.end, end+fd)
}

// CrashServer makes member i's server process crash and stay down for d (a
// crash loop); the agent notices after 2 s without an answer, as the real
// one does, and reports the server unhealthy until it answers again.
func (w *World) CrashServer(i int, d time.Duration) {
	m := w.Members[i]
	if !m.Alive {
		return
	}
	w.logf("%s server crashes for %v", m.Name, d)
	m.srv.end = min(m.srv.end, w.Now)
	m.srv = server{gen: m.srv.gen + 1, epoch: m.srv.epoch, end: m.srv.end, downUntil: w.Now + d}
	m.srv.downSince = w.Now
	inc := m.Inc
	var report func()
	report = func() {
		switch {
		case !m.Alive || m.Inc != inc:
		case m.Paused: // the agent reports its server's health every 200 ms
			w.After(200*time.Millisecond, report)
		case w.Now >= m.srv.downUntil:
			w.logf("%s server healthy", m.Name)
			w.apply(m, m.Driver.SetServerHealth(m.local(w.Now), true))
		case w.Now-m.srv.downSince >= 2*time.Second:
			w.logf("%s server unhealthy", m.Name)
			w.apply(m, m.Driver.SetServerHealth(m.local(w.Now), false))
		}
	}
	w.After(2*time.Second, report)
	w.After(d, report)
}

// stopServer kills the member's server process (after a short delay) and
// tells the driver; the supervisor restarts it, fenced.
func (w *World) stopServer(m *Member) {
	m.srv.stopping = true
	inc := m.Inc
	w.After(time.Duration(w.rng.Int63n(int64(5*time.Millisecond))), func() {
		if m.Inc != inc || !m.Alive {
			return
		}
		w.logf("%s server killed", m.Name)
		m.srv.end = min(m.srv.end, w.Now)
		m.srv = server{gen: m.srv.gen + 1, epoch: m.srv.epoch, end: m.srv.end}
		w.push(event{at: w.Now, kind: evServerStopped, to: m.Index, inc: inc})
	})
}

func (w *World) storeApply(e event) {
	st := &w.Store
	c := e.cmd
	st.Requests++
	res := election.LeaseResult{ID: c.ID}
	switch {
	case c.Op == election.LeaseGet && st.Lease == nil:
		res.Outcome = election.LeaseNotFound
	case c.Op == election.LeaseGet:
		res.Outcome, res.Record = election.LeaseOK, st.Rec()
	case c.Op == election.LeaseCreate && st.Lease != nil:
		res.Outcome = election.LeaseConflict
	case c.Op == election.LeaseUpdate && st.Lease == nil:
		res.Outcome = election.LeaseNotFound
	case c.Op == election.LeaseUpdate && c.Record.Version != st.Lease.ResourceVersion:
		res.Outcome = election.LeaseConflict
	default:
		if st.Lease == nil {
			st.Lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: group + "-active"}}
		}
		st.mapping.Fill(st.Lease, c.Record, time.Unix(0, int64(w.Now)))
		st.version++
		st.Lease.ResourceVersion = fmt.Sprint(st.version)
		res.Outcome, res.Record = election.LeaseOK, st.Rec()
		w.logf("store <- %s: %s", w.Members[e.to].Name, res.Record)
	}
	if w.store[e.to] && !w.lost() {
		w.push(event{at: w.Now + w.delay(), kind: evStoreResp, to: e.to, inc: e.inc, res: res})
	}
}
