package election

import (
	"errors"
	"time"
)

// peer is what a machine knows about one of the other two members.
type peer struct {
	id   MemberID
	role Role
	// inc is the peer's current incarnation; heartbeats of older ones are
	// ignored.
	inc uint64
	// hb is the peer's newest heartbeat (by SentAt) of incarnation inc.
	hb    Heartbeat
	hasHB bool
	// lastRecv is when any heartbeat of the peer was last received. It
	// starts at the machine's start: a member that just started assumes
	// it heard everyone, which only delays takeovers.
	lastRecv time.Duration
	// contactSince is when the current unbroken contact began, on our clock
	// and (contactSentAt) on the peer's: failback needs both to have lasted
	// FailbackDelay, so delayed packets cannot fake a long contact.
	contactSince  time.Duration
	contactSentAt time.Duration
	inContact     bool
	// grantSentAt and grantEpoch: the newest grant the peer gave us.
	grantSentAt time.Duration
	grantEpoch  int64
	// nextSend and sent pace our heartbeats to the peer.
	nextSend time.Duration
	sent     digest
}

// digest is the part of a heartbeat whose change makes it worth sending at
// once rather than at the next interval.
type digest struct {
	viewRank   int64
	holding    int64
	serving    bool
	eligible   bool
	hears      RoleSet
	grantEpoch int64
}

// Machine is one member's side of the active-role protocol. It is a pure,
// deterministic state machine: it never reads a clock, sleeps or does I/O.
// Every input carries the member's monotonic clock reading (a Duration since
// any fixed origin, never decreasing) and returns the Output to apply.
// A Machine is not safe for concurrent use.
type Machine struct {
	cfg   Config
	role  Role
	peers [2]*peer

	// quietUntil: a new incarnation neither serves nor grants before this,
	// because it cannot know which grants its former incarnation gave.
	quietUntil time.Duration

	// view is the newest Lease content known from the store or peers.
	view LeaseRecord
	// rec is the Lease as this member last read or wrote it (with its
	// resourceVersion); absent is true when the store last said NotFound.
	rec    LeaseRecord
	absent bool
	// holding is the epoch this incarnation holds, 0 if none.
	holding int64

	// Lease command bookkeeping.
	cmd        *LeaseCommand
	lastID     uint64
	lastOpEnd  time.Duration
	lastOpRead bool // the last completed operation was a successful read
	needRead   bool // the store's state is unknown (conflict, timeout)
	retryAt    time.Duration
	leaseOKAt  time.Duration
	leaseOK    bool

	// The grant this member gives: to grantee for grantEpoch, binding until
	// grantHoldUntil unless the grantee's epoch is known to be released.
	grantee        MemberID
	grantEpoch     int64
	grantHoldUntil time.Duration

	// Own server: serving with epoch until; serveEnd bounds when the
	// server may last accept a request (on this clock).
	serving  bool
	epoch    int64
	until    time.Duration
	serveEnd time.Duration

	// Handover in progress (switchover, failback, shutdown).
	handingOver    bool
	handoverTo     MemberID
	handoverReason Reason

	shutdown bool
	done     bool
}

// New returns a machine for cfg (defaults applied) started at clock reading
// now.
func New(cfg Config, now time.Duration) (*Machine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, role: cfg.roleOf(cfg.Self), quietUntil: now + cfg.GrantHold()}
	i := 0
	for _, id := range []MemberID{cfg.Primary, cfg.Secondary, cfg.Tertiary} {
		if id != cfg.Self {
			m.peers[i] = &peer{id: id, role: cfg.roleOf(id), lastRecv: now, nextSend: now}
			i++
		}
	}
	m.lastOpEnd = now - cfg.RenewInterval
	return m, nil
}

// Config returns the machine's configuration with defaults applied.
func (m *Machine) Config() Config { return m.cfg }

// Tick lets time pass; call it at Output.NextWake (earlier is harmless).
func (m *Machine) Tick(now time.Duration) Output { return m.step(now) }

// Receive processes a peer's heartbeat.
func (m *Machine) Receive(now time.Duration, hb Heartbeat) Output {
	p := m.peer(hb.From)
	if p == nil || hb.Incarnation < p.inc {
		return m.step(now)
	}
	if hb.Incarnation > p.inc {
		p.inc, p.hasHB, p.inContact = hb.Incarnation, false, false
	}
	if !p.inContact || now-p.lastRecv >= m.cfg.PeerTimeout {
		p.inContact, p.contactSince, p.contactSentAt = true, now, hb.SentAt
	}
	p.lastRecv = now
	if g := hb.Grant; g != nil && g.Incarnation == m.cfg.Incarnation && g.SentAt >= p.grantSentAt {
		p.grantSentAt, p.grantEpoch = g.SentAt, g.Epoch
	}
	if !p.hasHB || hb.SentAt > p.hb.SentAt {
		hb.Grant = nil
		p.hb, p.hasHB = hb, true
	}
	m.mergeView(hb.View)
	if m.grantable(now, p) != 0 {
		// Answer the holder at once: its grant then lasts PeerTimeout minus
		// a round trip, refreshed every HeartbeatInterval.
		p.nextSend = now
	}
	return m.step(now)
}

// LeaseResult reports the result of the outstanding Lease command.
// Results of other commands are ignored.
func (m *Machine) LeaseResult(now time.Duration, r LeaseResult) Output {
	if m.cmd == nil || r.ID != m.cmd.ID {
		return m.step(now)
	}
	op := m.cmd.Op
	m.cmd, m.lastOpEnd, m.lastOpRead = nil, now, false
	switch r.Outcome {
	case LeaseOK:
		m.leaseOK, m.leaseOKAt, m.absent, m.needRead = true, now, false, false
		m.rec, m.lastOpRead = r.Record, op == LeaseGet
		m.mergeView(r.Record)
		if r.Record.Holder == m.cfg.Self && r.Record.HolderIncarnation == m.cfg.Incarnation {
			// Our write, possibly one whose answer was lost.
			m.holding = r.Record.Epoch
		} else {
			m.holding = 0
		}
	case LeaseNotFound:
		m.leaseOK, m.leaseOKAt, m.absent, m.needRead = true, now, true, false
		m.lastOpRead = op == LeaseGet
	case LeaseConflict:
		m.leaseOK, m.leaseOKAt, m.needRead = true, now, true
	default: // Unreachable: a write may or may not have happened.
		m.needRead, m.retryAt = true, now+m.cfg.HeartbeatInterval
	}
	return m.step(now)
}

// RequestSwitchover asks the active member to hand the role to target. Only
// the current holder acts, and only when target is the other candidate
// (primary or secondary), in contact and able to reach the Lease store;
// otherwise the request is ignored and the caller may retry.
func (m *Machine) RequestSwitchover(now time.Duration, target MemberID) Output {
	if m.holding != 0 && !m.handingOver && !m.shutdown && m.eligible(now, target) {
		m.startHandover(target, ReasonSwitchover)
	}
	return m.step(now)
}

// Shutdown stops the member: it stops serving at once and, if it holds the
// Lease, releases it to the other candidate when that one can take it (to
// nobody otherwise). Output.Done reports completion.
func (m *Machine) Shutdown(now time.Duration) Output {
	m.shutdown = true
	return m.step(now)
}

func (m *Machine) startHandover(to MemberID, why Reason) {
	m.handingOver, m.handoverTo, m.handoverReason = true, to, why
}

// step runs after every input: it reconciles knowledge, decides the server
// state, the next Lease command and the heartbeats to send.
func (m *Machine) step(now time.Duration) Output {
	m.reconcile(now)
	var out Output
	out.Server = m.decideServer(now)
	out.Lease = m.nextLeaseCommand(now)
	out.Messages = m.heartbeats(now)
	out.Label = m.label(now)
	out.NextWake = m.nextWake(now)
	out.Done = m.done
	return out
}

func (m *Machine) reconcile(now time.Duration) {
	v := m.view
	if m.holding != 0 && v.rank() > 2*m.holding {
		m.holding = 0 // someone else holds a newer epoch, or we released
	}
	if m.handingOver && m.holding == 0 {
		m.handingOver = false
	}
	if m.shutdown && m.holding != 0 && !m.handingOver {
		var to MemberID
		for _, p := range m.peers {
			if m.eligible(now, p.id) {
				to = p.id
			}
		}
		m.startHandover(to, ReasonShutdown)
	}
	if m.shutdown && m.holding == 0 && m.cmd == nil {
		m.done = true
	}
	// A released epoch's holder stopped serving before it released, so the
	// grant given to it binds no more.
	if m.grantee != "" && ((v.Epoch == m.grantEpoch && v.Holder == "") ||
		(v.Epoch == m.grantEpoch+1 && v.AfterRelease)) {
		m.grantee, m.grantHoldUntil = "", 0
	}
	if m.role == Secondary && m.cfg.Failback == FailbackAutomatic && m.holding != 0 &&
		!m.handingOver && !m.shutdown {
		p := m.peer(m.cfg.Primary)
		if m.eligible(now, p.id) && p.inContact && p.lastRecv-p.contactSince >= m.cfg.FailbackDelay &&
			p.hb.SentAt-p.contactSentAt >= m.cfg.FailbackDelay {
			m.startHandover(p.id, ReasonFailback)
		}
	}
}

// decideServer is the serving rule: hold the Lease in this incarnation, not
// be handing over, have no binding grant to another member, and hold a
// current grant for our epoch from at least one peer.
func (m *Machine) decideServer(now time.Duration) ServerState {
	if m.role == Tertiary {
		return ServerState{Mode: Witness}
	}
	until := m.grantedUntil()
	if m.holding != 0 && !m.handingOver && !m.shutdown && now >= m.quietUntil &&
		(m.grantee == "" || now >= m.grantHoldUntil) && until > now {
		m.serving, m.epoch, m.until = true, m.holding, until
		m.serveEnd = max(m.serveEnd, until+m.cfg.localFenceDelay())
		return ServerState{Mode: Serve, Epoch: m.epoch, Until: until}
	}
	if m.serving {
		m.serving = false
		m.serveEnd = min(m.serveEnd, now+m.cfg.localFenceDelay())
	}
	return ServerState{Mode: Fence, Epoch: m.epoch}
}

func (m *Machine) grantedUntil() time.Duration {
	var until time.Duration
	for _, p := range m.peers {
		if m.holding != 0 && p.grantEpoch == m.holding {
			until = max(until, p.grantSentAt+m.cfg.PeerTimeout)
		}
	}
	return until
}

// grantable returns the epoch for which we may grant p, 0 if none: p must
// claim the newest epoch we know, we must hear it, we must neither hold the
// Lease nor possibly still serve ourselves, and no grant to another member
// may bind us.
func (m *Machine) grantable(now time.Duration, p *peer) int64 {
	v := m.view
	if v.Holder != p.id || v.Epoch == 0 || !p.hasHB || p.hb.Holding != v.Epoch ||
		!m.hears(now, p) || m.holding != 0 || m.serving || now < m.serveEnd || now < m.quietUntil {
		return 0
	}
	if m.grantee != "" && m.grantee != p.id && now < m.grantHoldUntil {
		return 0
	}
	return v.Epoch
}

func (m *Machine) nextLeaseCommand(now time.Duration) *LeaseCommand {
	if m.cmd != nil || m.role == Tertiary || m.done || now < m.retryAt {
		return nil
	}
	var op LeaseOp
	var rec LeaseRecord
	switch {
	case m.holding != 0 && m.handingOver:
		if now < m.serveEnd {
			return nil // our server may still serve: release only after
		}
		op, rec = LeaseUpdate, m.rec
		if m.needRead {
			op = LeaseGet
		}
		rec.Holder, rec.HolderIncarnation = "", 0
		rec.HandoffTo, rec.Reason, rec.AfterRelease = m.handoverTo, m.handoverReason, false
	case m.holding != 0:
		switch {
		case m.needRead:
			op = LeaseGet
		case m.absent: // the Lease was deleted under us: recreate it
			op, rec = LeaseCreate, m.acquireRecord()
		case now >= m.lastOpEnd+m.cfg.RenewInterval:
			op, rec = LeaseUpdate, m.rec
		default:
			return nil
		}
	case m.mayAcquire(now):
		switch {
		case m.needRead || !m.lastOpRead:
			op = LeaseGet
		case m.absent:
			op, rec = LeaseCreate, m.acquireRecord()
		default:
			op, rec = LeaseUpdate, m.acquireRecord()
		}
	case !m.shutdown && now >= m.lastOpEnd+m.cfg.RenewInterval:
		op = LeaseGet
	default:
		return nil
	}
	if op == LeaseGet {
		rec = LeaseRecord{}
	}
	m.lastID++
	m.cmd = &LeaseCommand{ID: m.lastID, Op: op, Record: rec}
	c := *m.cmd
	return &c
}

// acquireRecord is the Lease we write to take it over from m.rec (or to
// create it when absent).
func (m *Machine) acquireRecord() LeaseRecord {
	r := LeaseRecord{Holder: m.cfg.Self, HolderIncarnation: m.cfg.Incarnation, Reason: ReasonAcquire}
	if m.absent {
		r.Epoch = max(m.view.Epoch, m.holding) + 1
		return r
	}
	r.Epoch, r.Version = m.rec.Epoch+1, m.rec.Version
	switch {
	case m.rec.Holder != "":
		r.Reason = ReasonTakeover
	case m.rec.HandoffTo == m.cfg.Self:
		r.Reason, r.AfterRelease = m.rec.Reason, true
	default:
		r.AfterRelease = true
	}
	return r
}

// mayAcquire is the campaign rule for the primary and the secondary.
func (m *Machine) mayAcquire(now time.Duration) bool {
	if m.role == Tertiary || m.holding != 0 || m.shutdown {
		return false
	}
	v := m.view
	switch {
	case m.absent || v.Holder == "":
		// Free: the named handoff target, else the primary, goes first;
		// the other candidate only once that one is silent, or has said
		// for a peer timeout that it cannot take the role (no Lease store,
		// shutting down).
		first := m.cfg.Primary
		if !m.absent && v.HandoffTo != "" && m.cfg.roleOf(v.HandoffTo) != Tertiary &&
			m.cfg.roleOf(v.HandoffTo) != "" {
			first = v.HandoffTo
		}
		if first == m.cfg.Self {
			return true
		}
		p := m.peer(first)
		stuck := p.hasHB && !p.hb.Eligible && p.inContact && now-p.contactSince >= m.cfg.PeerTimeout
		return !m.hears(now, p) || stuck
	case v.Holder == m.cfg.Self:
		// Held by a former incarnation of ours (dead), or by a write of
		// ours whose answer was lost: a read settles which.
		return true
	default:
		// Takeover: neither we nor the tertiary hear the holder.
		h, t := m.peer(v.Holder), m.peer(m.cfg.Tertiary)
		return h != nil && t != nil && !m.hears(now, h) && m.hears(now, t) &&
			t.hasHB && !t.hb.Hears.Has(h.role)
	}
}

// eligible: id is the other candidate, heard, saying it can take the role,
// and hearing us.
func (m *Machine) eligible(now time.Duration, id MemberID) bool {
	p := m.peer(id)
	return p != nil && p.role != Tertiary && m.hears(now, p) && p.hasHB &&
		p.hb.Eligible && p.hb.Hears.Has(m.role)
}

func (m *Machine) heartbeats(now time.Duration) []Envelope {
	var out []Envelope
	for _, p := range m.peers {
		g := m.grantable(now, p)
		d := digest{viewRank: m.view.rank(), holding: m.holding, serving: m.serving,
			eligible: m.eligibleNow(now), hears: m.hearsSet(now), grantEpoch: g}
		if now < p.nextSend && d == p.sent {
			continue
		}
		hb := Heartbeat{From: m.cfg.Self, Incarnation: m.cfg.Incarnation, SentAt: now, View: m.view,
			Holding: m.holding, Serving: m.serving, Eligible: d.eligible, Hears: d.hears}
		hb.View.Version = ""
		if g != 0 {
			if m.grantee != p.id {
				m.grantHoldUntil = 0
			}
			m.grantee, m.grantEpoch = p.id, g
			m.grantHoldUntil = max(m.grantHoldUntil, p.lastRecv+m.cfg.GrantHold())
			hb.Grant = &Grant{Incarnation: p.inc, SentAt: p.hb.SentAt, Epoch: g}
		}
		out = append(out, Envelope{To: p.id, Heartbeat: hb})
		p.sent, p.nextSend = d, now+m.cfg.HeartbeatInterval
	}
	return out
}

func (m *Machine) label(now time.Duration) Label {
	switch {
	case m.role == Tertiary:
		return LabelWitness
	case m.serving:
		return LabelActive
	case m.hearsSet(now) != 0 && !m.shutdown:
		return LabelStandby
	}
	return LabelUnhealthy
}

func (m *Machine) nextWake(now time.Duration) time.Duration {
	next := now + m.cfg.HeartbeatInterval
	consider := func(t time.Duration) {
		if t > now && t < next {
			next = t
		}
	}
	for _, p := range m.peers {
		consider(p.nextSend)
		consider(p.lastRecv + m.cfg.PeerTimeout)
		if p.inContact {
			consider(p.contactSince + m.cfg.FailbackDelay)
		}
	}
	if m.serving {
		consider(m.until)
	}
	consider(m.grantHoldUntil)
	consider(m.serveEnd)
	consider(m.quietUntil)
	consider(m.retryAt)
	consider(m.leaseOKAt + 2*m.cfg.RenewInterval)
	if m.cmd == nil {
		consider(m.lastOpEnd + m.cfg.RenewInterval)
	}
	return next
}

func (m *Machine) mergeView(r LeaseRecord) {
	if r.rank() > m.view.rank() {
		m.view = r
	}
}

func (m *Machine) hears(now time.Duration, p *peer) bool {
	return p != nil && now-p.lastRecv < m.cfg.PeerTimeout
}

func (m *Machine) hearsSet(now time.Duration) RoleSet {
	var s RoleSet
	for _, p := range m.peers {
		if m.hears(now, p) {
			s |= roleBit(p.role)
		}
	}
	return s
}

// eligibleNow: we could take the role if it were handed to us.
func (m *Machine) eligibleNow(now time.Duration) bool {
	return m.role != Tertiary && !m.shutdown && m.leaseOK && now-m.leaseOKAt < 2*m.cfg.RenewInterval
}

func (m *Machine) peer(id MemberID) *peer {
	for _, p := range m.peers {
		if p.id == id {
			return p
		}
	}
	return nil
}

// Status is a read-only summary for logs, metrics and tests.
type Status struct {
	Role     Role
	Holding  int64
	Serving  bool
	View     LeaseRecord
	Grantee  MemberID
	Shutdown bool
	// HandoverTo and HandoverReason describe a handover in progress
	// (HandoverReason is empty when none is).
	HandoverTo     MemberID
	HandoverReason Reason
}

// Status returns a summary of the machine's state.
func (m *Machine) Status() Status {
	s := Status{Role: m.role, Holding: m.holding, Serving: m.serving, View: m.view,
		Grantee: m.grantee, Shutdown: m.shutdown}
	if m.handingOver {
		s.HandoverTo, s.HandoverReason = m.handoverTo, m.handoverReason
	}
	return s
}

// Joining reports whether the machine is a new incarnation still in its
// quiet period: it neither serves nor grants yet, so it cannot help an
// active member keep its quorum. Agents report it, and the operator does
// not count such a member in the quorum.
func (m *Machine) Joining(now time.Duration) bool {
	return now < m.quietUntil
}

// ErrTimingChanged is returned by Reconfigure when the new configuration
// changes timing (grants are computed from it) or drops this member: that
// takes a new machine (a new incarnation), which the protocol treats like a
// restart.
var ErrTimingChanged = errors.New("timing changed or this member left; start a new machine")

// Reconfigure moves the roles, the failback policy and the membership of a
// running machine without a restart: the incarnation, the Lease view, the
// grants and the contact with unchanged peers are kept, so a member that
// serves keeps serving. A replaced peer starts from nothing, like a peer
// that was never heard; a grant this member gave to a removed peer keeps
// binding until it lapses. Members may apply a change at slightly different
// moments; who may serve is decided by grants and the Lease, never by roles,
// so such a window can delay a takeover but never lets two members serve.
// Timing (peer timeout, heartbeat interval, renew interval, clock drift,
// fence delay) is what grants are computed from and cannot change in place.
//
// A secondary that serves hands the role to the new primary through the
// failback rule (at once if the primary has been in contact for the
// failback delay); callers that want the switchover regardless of the
// failback policy call RequestSwitchover afterwards.
func (m *Machine) Reconfigure(now time.Duration, cfg Config) (Output, error) {
	cfg.Self, cfg.Incarnation = m.cfg.Self, m.cfg.Incarnation
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Output{}, err
	}
	old := m.cfg
	if cfg.roleOf(cfg.Self) == "" || cfg.PeerTimeout != old.PeerTimeout || cfg.HeartbeatInterval != old.HeartbeatInterval ||
		cfg.RenewInterval != old.RenewInterval || cfg.MaxClockDrift != old.MaxClockDrift || cfg.FenceDelay != old.FenceDelay {
		return Output{}, ErrTimingChanged
	}
	m.cfg = cfg
	m.role = cfg.roleOf(cfg.Self)
	var peers [2]*peer
	i := 0
	for _, id := range []MemberID{cfg.Primary, cfg.Secondary, cfg.Tertiary} {
		if id == cfg.Self {
			continue
		}
		p := m.peer(id)
		if p == nil {
			p = &peer{id: id, lastRecv: now, nextSend: now}
		}
		p.role = cfg.roleOf(id)
		peers[i] = p
		i++
	}
	m.peers = peers
	return m.step(now), nil
}
