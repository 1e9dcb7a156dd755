// Package sim is a deterministic discrete-event simulator for the election
// protocol: three Machines, a network and a linearizable compare-and-swap
// Lease store, all driven by one seeded math/rand source on a virtual true
// clock. It injects crashes, restarts, pauses, one- and two-way partitions
// between members and between members and the store, message loss and
// delay, and clock-rate skew, and it checks on every step that no two
// members serve at once and that the tertiary never serves.
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

	"github.com/licenseha/licenseha/pkg/election"
)

// Member indexes: 0 primary, 1 secondary, 2 tertiary.
const (
	P = 0
	S = 1
	T = 2
)

var ids = [3]election.MemberID{"p", "s", "t"}

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

// World is one simulation.
type World struct {
	Cfg election.Config
	Net Network
	// FenceDelay is how long after a Fence output (or a Serve's Until) the
	// simulated server may still serve: the assumption the machines rely on.
	FenceDelay time.Duration
	// LeaseTimeout is when the simulated runner gives up on a Lease call.
	LeaseTimeout time.Duration

	Now     time.Duration // true time
	Members [3]*Member
	Store   Store

	rng    *rand.Rand
	queue  eventQueue
	seq    uint64
	link   [3][3]bool // link[i][j]: messages from i reach j
	store  [3]bool    // member i reaches the store and back
	trace  *strings.Builder
	failed []string
	// stalled stops the run after a livelock.
	stalled bool

	// OnHandover observes a member's decision to hand over.
	OnHandover func(w *World, i int, st election.Status)
	// OnServeStart observes the start of a serving interval.
	OnServeStart func(w *World, i int, epoch int64)
}

// Member is the simulated process of one member and the server it drives.
type Member struct {
	Index   int
	Machine *election.Machine
	Alive   bool
	Paused  bool
	Inc     uint64
	// Start is the true time at which the member's clock read zero.
	Start time.Duration
	// Up is the true time the current incarnation started; Lives lists
	// the [start, stop) true times of the former ones.
	Up    time.Duration
	Lives [][2]time.Duration
	Rate  float64 // local clock rate against true time
	// ShuttingDown: Shutdown was called; the process exits on Done.
	ShuttingDown bool

	wakeGen uint64
	held    []event // events that arrived while paused
	cmdOpen uint64  // the Lease command the runner waits for, 0 if none
	// Server state as the checker sees it, in true time.
	serving    bool // the last server output was Serve
	epoch      int64
	activeTill time.Duration // true time at which the last Serve's Until passes
	serveEnd   time.Duration // latest true time the server may still serve
	label      election.Label
	lastOut    election.Output
	handover   election.Reason
}

// Store is the linearizable compare-and-swap register behind the Lease.
type Store struct {
	Exists  bool
	Rec     election.LeaseRecord
	version int64
}

// New returns a world with all members up and connected.
func New(seed int64, cfg election.Config, net Network, trace bool) *World {
	cfg.Primary, cfg.Secondary, cfg.Tertiary = ids[P], ids[S], ids[T]
	cfg = cfg.WithDefaults()
	w := &World{Cfg: cfg, Net: net, FenceDelay: cfg.FenceDelay, LeaseTimeout: cfg.RenewInterval,
		rng: rand.New(rand.NewSource(seed))}
	if trace {
		w.trace = &strings.Builder{}
	}
	for i := range w.link {
		w.store[i] = true
		for j := range w.link[i] {
			w.link[i][j] = true
		}
	}
	for i := range w.Members {
		w.Members[i] = &Member{Index: i, Rate: 1}
	}
	return w
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

// local is member m's monotonic clock at true time t.
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
func (m *Member) ServingAt(t time.Duration) bool { return m.serveEnd > t }

// Active reports whether the member's last output is Serve and its Until
// has not passed: the quantity the liveness checks use.
func (m *Member) Active(t time.Duration) bool { return m.Alive && m.serving && m.activeTill > t }

// Epoch is the epoch of the member's last Serve.
func (m *Member) Epoch() int64 { return m.epoch }

// Label is the member's last published role label.
func (m *Member) Label() election.Label { return m.label }

// Start brings member i up (again) with a new incarnation.
func (w *World) Start(i int) {
	m := w.Members[i]
	if m.Alive {
		return
	}
	cfg := w.Cfg
	cfg.Self = ids[i]
	m.Inc++
	cfg.Incarnation = m.Inc
	m.Alive, m.Paused, m.ShuttingDown, m.held, m.cmdOpen = true, false, false, nil, 0
	m.Up = w.Now
	m.Start = w.Now - time.Duration(w.rng.Int63n(int64(time.Hour))) // arbitrary clock origin
	mc, err := election.New(cfg, m.local(w.Now))
	if err != nil {
		panic(err)
	}
	m.Machine = mc
	w.logf("%s start inc=%d rate=%.4f", ids[i], m.Inc, m.Rate)
	w.apply(m, mc.Tick(m.local(w.Now)))
}

// Crash stops member i abruptly; its server dies with it.
func (w *World) Crash(i int) {
	m := w.Members[i]
	if !m.Alive {
		return
	}
	w.logf("%s crash", ids[i])
	m.Alive, m.Paused, m.held, m.cmdOpen = false, false, nil, 0
	m.Lives = append(m.Lives, [2]time.Duration{m.Up, w.Now})
	if m.serveEnd > w.Now {
		m.serveEnd = w.Now
	}
	m.serving = false
}

// Pause stops member i's agent from processing (SIGSTOP); its server keeps
// running on whatever it was told last, and its clock keeps running.
func (w *World) Pause(i int) {
	if m := w.Members[i]; m.Alive && !m.Paused {
		w.logf("%s pause", ids[i])
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
	w.logf("%s resume (%d held)", ids[i], len(m.held))
	m.Paused = false
	w.apply(m, m.Machine.Tick(m.local(w.Now)))
	// Roles edited while it was frozen reach it now, as the agent's watch
	// of the group configuration delivers them after a resume.
	if c := m.Machine.Config(); c.Primary != w.Cfg.Primary || c.Secondary != w.Cfg.Secondary {
		if out, err := m.Machine.Reconfigure(m.local(w.Now), w.Cfg); err == nil {
			w.apply(m, out)
		}
	}
	held := m.held
	m.held = nil
	for _, e := range held {
		w.dispatch(e)
	}
}

// Shutdown starts a graceful shutdown (SIGTERM) of member i; the process
// exits when the machine reports Done, or after one second regardless.
func (w *World) Shutdown(i int) {
	m := w.Members[i]
	if !m.Alive || m.Paused || m.ShuttingDown {
		return
	}
	w.logf("%s shutdown", ids[i])
	m.ShuttingDown = true
	inc := m.Inc
	w.After(time.Second, func() {
		if m.Alive && m.Inc == inc {
			w.logf("%s exit deadline", ids[i])
			w.Crash(i)
		}
	})
	w.apply(m, m.Machine.Shutdown(m.local(w.Now)))
}

// Switchover asks every running member to hand the role to target; only the
// holder acts.
func (w *World) Switchover(target int) {
	w.logf("switchover to %s", ids[target])
	for _, m := range w.Members {
		if m.Alive && !m.Paused {
			w.apply(m, m.Machine.RequestSwitchover(m.local(w.Now), ids[target]))
		}
	}
}

// IndexOf returns the index of the member configured as id.
func (w *World) IndexOf(id election.MemberID) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// SwapRoles swaps the configured roles of members i and j on every running
// member, in place (Machine.Reconfigure), as the agents do when the roles in
// a triad's spec are edited; the member serving then hands over to the new
// primary if it is not the new primary itself.
func (w *World) SwapRoles(i, j int) {
	w.logf("swap roles of %s and %s", ids[i], ids[j])
	cfg := w.Cfg
	roles := []*election.MemberID{&cfg.Primary, &cfg.Secondary, &cfg.Tertiary}
	for _, r := range roles {
		switch *r {
		case ids[i]:
			*r = ids[j]
		case ids[j]:
			*r = ids[i]
		}
	}
	w.Cfg = cfg
	for _, m := range w.Members {
		if !m.Alive || m.Paused {
			continue
		}
		out, err := m.Machine.Reconfigure(m.local(w.Now), cfg)
		if err != nil {
			w.fail("reconfigure %s: %v", ids[m.Index], err)
			continue
		}
		w.apply(m, out)
	}
	// The serving member hands over once the new primary's heartbeats carry
	// the new roles; like the agent, ask again until it has.
	var ask func(n int)
	ask = func(n int) {
		for _, m := range w.Members {
			if m.Alive && !m.Paused && m.Machine.Status().Serving && cfg.Primary != ids[m.Index] {
				w.apply(m, m.Machine.RequestSwitchover(m.local(w.Now), cfg.Primary))
				if n > 0 {
					w.After(w.Cfg.HeartbeatInterval/2, func() { ask(n - 1) })
				}
			}
		}
	}
	ask(20)
}

// SetLink sets whether messages from i reach j.
func (w *World) SetLink(i, j int, up bool) {
	w.logf("link %s->%s %v", ids[i], ids[j], up)
	w.link[i][j] = up
}

// SetStore sets whether member i reaches the Lease store.
func (w *World) SetStore(i int, up bool) {
	w.logf("store<->%s %v", ids[i], up)
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

// ActiveMember returns the member that is active at the current time, or -1.
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
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	to   int
	inc  uint64
	gen  uint64
	hb   election.Heartbeat
	cmd  election.LeaseCommand
	res  election.LeaseResult
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

func (w *World) dispatch(e event) {
	if e.kind == evFunc {
		e.fn()
		return
	}
	if e.kind == evStoreReq {
		w.storeApply(e)
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
			w.apply(m, m.Machine.Tick(now))
		}
	case evDeliver:
		w.logf("%s <- %s %s", ids[e.to], e.hb.From, hbString(e.hb))
		w.apply(m, m.Machine.Receive(now, e.hb))
	case evStoreResp, evLeaseTimeout:
		if m.cmdOpen != e.res.ID {
			return // the runner already reported this command
		}
		m.cmdOpen = 0
		w.logf("%s lease result #%d %s %s", ids[e.to], e.res.ID, e.res.Outcome, e.res.Record)
		w.apply(m, m.Machine.LeaseResult(now, e.res))
	}
}

func hbString(hb election.Heartbeat) string {
	s := fmt.Sprintf("view=%s holding=%d serving=%v hears=%03b", hb.View, hb.Holding, hb.Serving, hb.Hears)
	if hb.Grant != nil {
		s += fmt.Sprintf(" grant@%d", hb.Grant.Epoch)
	}
	return s
}

// apply carries out a machine's output in the prescribed order and checks
// the safety invariants.
func (w *World) apply(m *Member, out election.Output) {
	m.lastOut = out
	if w.OnHandover != nil {
		st := m.Machine.Status()
		if st.HandoverReason != "" && m.handover == "" {
			w.OnHandover(w, m.Index, st)
		}
		m.handover = st.HandoverReason
	}
	w.applyServer(m, out.Server)
	m.label = out.Label
	if c := out.Lease; c != nil {
		w.logf("%s lease cmd #%d %s %s", ids[m.Index], c.ID, c.Op, c.Record)
		m.cmdOpen = c.ID
		if w.store[m.Index] && !w.lost() {
			w.push(event{at: w.Now + w.delay(), kind: evStoreReq, to: m.Index, inc: m.Inc, cmd: *c})
		}
		w.push(event{at: w.Now + w.LeaseTimeout, kind: evLeaseTimeout, to: m.Index, inc: m.Inc,
			res: election.LeaseResult{ID: c.ID, Outcome: election.LeaseUnreachable}})
	}
	for _, env := range out.Messages {
		to := indexOf(env.To)
		if w.link[m.Index][to] && !w.lost() {
			w.push(event{at: w.Now + w.delay(), kind: evDeliver, to: to, inc: w.Members[to].Inc, hb: env.Heartbeat})
		}
	}
	m.wakeGen++
	w.push(event{at: max(m.trueAt(out.NextWake), w.Now), kind: evWake, to: m.Index, inc: m.Inc, gen: m.wakeGen})
	if out.Done && m.ShuttingDown {
		w.logf("%s exits after handover", ids[m.Index])
		w.Crash(m.Index)
	}
}

func (w *World) applyServer(m *Member, s election.ServerState) {
	switch s.Mode {
	case election.Serve:
		if m.Index == T {
			w.fail("the tertiary serves epoch %d", s.Epoch)
		}
		for _, o := range w.Members {
			if o != m && o.ServingAt(w.Now) {
				w.fail("%s serves epoch %d while %s may still serve epoch %d (until %.4fs)",
					ids[m.Index], s.Epoch, ids[o.Index], o.epoch, o.serveEnd.Seconds())
			}
		}
		if !m.serving || m.epoch != s.Epoch {
			w.logf("%s SERVE epoch %d", ids[m.Index], s.Epoch)
			if w.OnServeStart != nil {
				w.OnServeStart(w, m.Index, s.Epoch)
			}
		}
		m.serving, m.epoch = true, s.Epoch
		m.activeTill = m.trueAt(s.Until)
		m.serveEnd = max(m.serveEnd, m.activeTill+w.FenceDelay)
	default:
		if m.serving {
			w.logf("%s FENCE epoch %d", ids[m.Index], m.epoch)
			m.serving = false
			m.serveEnd = min(m.serveEnd, w.Now+w.FenceDelay)
		}
	}
}

func (w *World) storeApply(e event) {
	st := &w.Store
	c := e.cmd
	res := election.LeaseResult{ID: c.ID}
	switch {
	case c.Op == election.LeaseGet && !st.Exists:
		res.Outcome = election.LeaseNotFound
	case c.Op == election.LeaseGet:
		res.Outcome, res.Record = election.LeaseOK, st.Rec
	case c.Op == election.LeaseCreate && st.Exists:
		res.Outcome = election.LeaseConflict
	case c.Op == election.LeaseUpdate && !st.Exists:
		res.Outcome = election.LeaseNotFound
	case c.Op == election.LeaseUpdate && c.Record.Version != st.Rec.Version:
		res.Outcome = election.LeaseConflict
	default:
		st.version++
		st.Exists, st.Rec = true, c.Record
		st.Rec.Version = fmt.Sprint(st.version)
		res.Outcome, res.Record = election.LeaseOK, st.Rec
		w.logf("store <- %s: %s", ids[e.to], st.Rec)
	}
	if w.store[e.to] && !w.lost() {
		w.push(event{at: w.Now + w.delay(), kind: evStoreResp, to: e.to, inc: e.inc, res: res})
	}
}

func indexOf(id election.MemberID) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	panic("unknown member " + id)
}
