package election

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// peer is what a machine knows about one of the other two members.
type peer struct {
	id   MemberID
	role Role
	// inc is the peer's current incarnation; heartbeats of older ones are
	// ignored. lastSeq is the newest heartbeat sequence of inc seen.
	inc     uint64
	lastSeq uint64
	// hb is the peer's newest heartbeat that counted as contact.
	hb    Heartbeat
	hasHB bool
	// lastRecv is when a heartbeat of the peer last counted as contact. It
	// starts at the machine's start: a member that just started assumes
	// it heard everyone, which only delays takeovers.
	lastRecv time.Duration
	// contactSince is when the current unbroken contact began, on our clock
	// and (contactSentAt) on the peer's: failback needs both to have lasted
	// FailbackDelay, so delayed packets cannot fake a long contact.
	contactSince  time.Duration
	contactSentAt time.Duration
	inContact     bool
	// grantSentAt, grantEpoch, grantValid: the newest grant the peer gave
	// us and for how long (on our clock, after SentAt) it may be used.
	grantSentAt time.Duration
	grantEpoch  int64
	grantValid  time.Duration
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
	hears      string
	grantEpoch int64
	echo       uint64
}

// Machine is one member's side of the active-role protocol. It is a pure,
// deterministic state machine: it never reads a clock, sleeps or does I/O.
// Every input carries the member's monotonic clock reading (a Duration since
// any fixed origin, never decreasing) and returns the Output to apply.
// A Machine is not safe for concurrent use.
type Machine struct {
	cfg   Config
	role  Role
	peers []*peer // the other two members (one in a pair)
	// inc is this process's incarnation (see Config.Incarnation); seq
	// numbers its heartbeats.
	inc uint64
	seq uint64

	// quietUntil: a new incarnation neither serves nor grants nor writes
	// the Lease before this, because it cannot know which grants its
	// former incarnation gave.
	quietUntil time.Duration

	// view is the newest Lease content known from the store or peers.
	view LeaseRecord
	// rec is the Lease as this member last read or wrote it (with its
	// resourceVersion); absent is true when the store last said NotFound.
	rec    LeaseRecord
	absent bool
	// holding is the epoch this incarnation holds, 0 if none. wrote: this
	// process has written the Lease (only then is a record naming our
	// incarnation our own).
	holding int64
	wrote   bool

	// Lease command bookkeeping.
	cmd        *LeaseCommand
	lastID     uint64
	lastOpEnd  time.Duration
	cmdAt      time.Duration // when the outstanding command was issued
	lastOpRead bool          // the last completed operation was a successful read
	// recSince is when rec's version was first seen (pairs: how long the
	// Lease has shown no write).
	recSince  time.Duration
	needRead  bool // the store's state is unknown (conflict, timeout)
	retryAt   time.Duration
	leaseOKAt time.Duration
	leaseOK   bool

	// The grant this member gives: to grantee for grantEpoch, binding until
	// grantHoldUntil unless the grantee's epoch is known to be released.
	grantee        MemberID
	grantEpoch     int64
	grantHoldUntil time.Duration

	// Pairs: leaseUntil is how long this member may serve epoch leaseEpoch
	// on its own marked Lease writes; acqWait is when the holder it took
	// the Lease from has certainly stopped serving on its marked writes.
	leaseUntil time.Duration
	leaseEpoch int64
	acqWait    time.Duration
	heldSince  time.Duration // when this incarnation took the epoch it holds
	// acqPending is acqWait for the epoch of our last acquisition attempt,
	// applied once we find we hold that epoch.
	acqPending      time.Duration
	acqPendingEpoch int64

	// Own server: serving with epoch until; serveEnd bounds when the
	// server may last accept a request (on this clock). A fence shortens
	// serveEnd only when the driver confirms it (fenceSeq).
	serving  bool
	epoch    int64
	until    time.Duration
	serveEnd time.Duration
	srv      ServerState
	fenceSeq uint64

	// healthy: the license server answers (SetServerHealth).
	healthy bool

	// editUntil: after a role edit, the holder hands the role to the new
	// primary as soon as it can take it (until then; afterwards failback
	// rules apply).
	editUntil time.Duration
	// odd and oddSince: the Lease holder the view names is no longer a
	// candidate in our configuration (since oddSince).
	odd      string
	oddSince time.Duration

	// Handover in progress (switchover, failback, shutdown, role change).
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
	m := &Machine{cfg: cfg, role: cfg.roleOf(cfg.Self), quietUntil: now + cfg.QuietPeriod(), healthy: true,
		inc: 1<<32 | cfg.Incarnation&0xffffffff}
	m.setPeers(now)
	m.lastOpEnd = now - cfg.RenewInterval
	return m, nil
}

// setPeers builds the peer list from the configuration, keeping what is
// known about members that stay.
func (m *Machine) setPeers(now time.Duration) {
	var peers []*peer
	for _, id := range []MemberID{m.cfg.Primary, m.cfg.Secondary, m.cfg.Tertiary} {
		if id == "" || id == m.cfg.Self || len(peers) == 2 {
			continue
		}
		p := m.peer(id)
		if p == nil {
			p = &peer{id: id, lastRecv: now, nextSend: now}
		}
		p.role = m.cfg.roleOf(id)
		peers = append(peers, p)
	}
	m.peers = peers
}

// Config returns the machine's configuration with defaults applied.
func (m *Machine) Config() Config { return m.cfg }

// Incarnation returns this process's current incarnation.
func (m *Machine) Incarnation() uint64 { return m.inc }

// Tick lets time pass; call it at Output.NextWake (earlier is harmless).
func (m *Machine) Tick(now time.Duration) Output { return m.step(now) }

// Receive processes a peer's heartbeat (authenticated by the transport).
func (m *Machine) Receive(now time.Duration, hb Heartbeat) Output {
	p := m.peer(hb.From)
	if p == nil || (hb.To != "" && hb.To != m.cfg.Self) {
		return m.step(now)
	}
	if hb.Echo>>32 >= m.inc>>32 && hb.Echo != m.inc && hb.Echo&0xffffffff != m.inc&0xffffffff {
		// The peer knows a former incarnation of ours whose counter is not
		// below ours: continue above it, or the peer ignores us.
		m.renumber(hb.Echo)
	}
	if hb.Incarnation < p.inc {
		return m.step(now)
	}
	if hb.Incarnation > p.inc {
		p.inc, p.lastSeq, p.hasHB, p.inContact, p.grantEpoch = hb.Incarnation, 0, false, false, 0
	}
	if hb.Seq <= p.lastSeq {
		return m.step(now) // replayed or overtaken: refreshes nothing
	}
	p.lastSeq = hb.Seq
	m.mergeView(hb.View)
	if hb.Echo != m.inc {
		// The peer has not heard this incarnation yet: no contact, and its
		// grants and votes are not about us. Our heartbeats echo its
		// incarnation, so the next round completes the handshake.
		p.nextSend = now
		return m.step(now)
	}
	if !p.inContact || now-p.lastRecv >= m.cfg.PeerTimeout {
		p.inContact, p.contactSince, p.contactSentAt = true, now, hb.SentAt
	}
	p.lastRecv = now
	if g := hb.Grant; g != nil && g.Incarnation == m.inc && g.SentAt >= p.grantSentAt {
		p.grantSentAt, p.grantEpoch, p.grantValid = g.SentAt, g.Epoch, min(m.cfg.PeerTimeout, g.ValidFor)
	}
	hb.Grant = nil
	p.hb, p.hasHB = hb, true
	if m.grantable(now, p) != 0 {
		// Answer the holder at once: its grant then lasts PeerTimeout minus
		// a round trip, refreshed every HeartbeatInterval.
		p.nextSend = now
	}
	return m.step(now)
}

// renumber moves this process above a former incarnation's counter. Grants
// received under the old number are void; a Lease we hold under it is
// re-acquired.
func (m *Machine) renumber(former uint64) {
	m.inc = ((former>>32)+1)<<32 | m.inc&0xffffffff
	m.holding = 0
	for _, p := range m.peers {
		p.grantEpoch = 0
	}
}

// LeaseResult reports the result of the outstanding Lease command.
// Results of other commands are ignored.
func (m *Machine) LeaseResult(now time.Duration, r LeaseResult) Output {
	if m.cmd == nil || r.ID != m.cmd.ID {
		return m.step(now)
	}
	op, sent, at := m.cmd.Op, m.cmd.Record, m.cmdAt
	m.cmd, m.lastOpEnd, m.lastOpRead = nil, now, false
	switch r.Outcome {
	case LeaseOK:
		m.leaseOK, m.leaseOKAt, m.absent, m.needRead = true, now, false, false
		if r.Record.Version != m.rec.Version || m.rec.Version == "" {
			m.recSince = now
		}
		m.rec, m.lastOpRead = r.Record, op == LeaseGet
		m.mergeView(r.Record)
		if m.wrote && r.Record.Holder == m.cfg.Self && r.Record.HolderIncarnation == m.inc {
			// Our write, possibly one whose answer was lost.
			if m.holding != r.Record.Epoch {
				m.heldSince = now
			}
			if r.Record.Epoch == m.acqPendingEpoch {
				m.acqWait = max(m.acqWait, m.acqPending)
			}
			m.holding = r.Record.Epoch
			if op != LeaseGet && sent.ServeFor > 0 && r.Record.Epoch == sent.Epoch {
				// Only a write we know took effect lets us serve on it,
				// from the moment we sent it.
				m.leaseUntil, m.leaseEpoch = max(m.leaseUntil, at+sent.ServeFor), sent.Epoch
			}
		} else {
			m.holding = 0
		}
	case LeaseNotFound:
		m.leaseOK, m.leaseOKAt, m.absent, m.needRead = true, now, true, false
		m.lastOpRead = op == LeaseGet
	case LeaseConflict:
		m.leaseOK, m.leaseOKAt, m.needRead = true, now, true
	default: // Unreachable: a write may or may not have happened.
		// Not eligible until a call succeeds again: a member that cannot
		// write the Lease must not be the one a handover waits for.
		m.leaseOK, m.needRead, m.retryAt = false, true, now+m.cfg.HeartbeatInterval
	}
	return m.step(now)
}

// ServerResult reports that the server request with seq was applied (ok)
// or failed. A confirmed Fence (or a confirmed stop of the server process,
// reported with the fence's seq) ends the server's serving at once; until
// then it may serve until its last deadline plus FenceDelay.
func (m *Machine) ServerResult(now time.Duration, seq uint64, ok bool) Output {
	if ok && !m.serving && m.fenceSeq != 0 && seq >= m.fenceSeq {
		m.serveEnd = min(m.serveEnd, now)
		m.fenceSeq = 0
	}
	return m.step(now)
}

// SetServerHealth reports whether the member's license server can serve.
// An unhealthy member does not campaign, says it cannot take the role, and
// hands the role to the other candidate if it holds it and that one can.
func (m *Machine) SetServerHealth(now time.Duration, healthy bool) Output {
	m.healthy = healthy
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

func (m *Machine) candidate() bool { return m.role == Primary || m.role == Secondary }

func (m *Machine) reconcile(now time.Duration) {
	v := m.view
	if m.holding != 0 && v.rank() > 2*m.holding {
		m.holding = 0 // someone else holds a newer epoch, or we released
	}
	if m.handingOver && m.holding == 0 {
		m.handingOver = false
	}
	if m.holding != 0 && !m.handingOver {
		switch {
		case m.shutdown:
			m.startHandover(m.bestTarget(now), ReasonShutdown)
		case !m.candidate():
			// Demoted to tertiary, or removed from the spec: never serve
			// again under this configuration; hand over.
			m.startHandover(m.bestTarget(now), ReasonRoleChange)
		case !m.healthy && m.bestTarget(now) != "":
			m.startHandover(m.bestTarget(now), ReasonUnhealthy)
		case m.role != Primary && now < m.editUntil && m.eligible(now, m.cfg.Primary):
			m.startHandover(m.cfg.Primary, ReasonRoleChange)
		}
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
	// Track how long the Lease has named a holder that is no longer a
	// candidate in our configuration.
	odd := ""
	if v.Holder != "" && v.Holder != m.cfg.Self && !m.isCandidate(v.Holder) {
		odd = string(v.Holder) + "@" + strconv.FormatInt(v.Epoch, 10)
	}
	if odd != m.odd {
		m.odd, m.oddSince = odd, now
	}
}

// bestTarget is the candidate to hand the role to: the primary if it can
// take it, else the other candidate, else nobody.
func (m *Machine) bestTarget(now time.Duration) MemberID {
	for _, id := range []MemberID{m.cfg.Primary, m.cfg.Secondary} {
		if id != m.cfg.Self && m.eligible(now, id) {
			return id
		}
	}
	return ""
}

func (m *Machine) isCandidate(id MemberID) bool {
	r := m.cfg.roleOf(id)
	return r == Primary || r == Secondary
}

// decideServer is the serving rule: hold the Lease in this incarnation, be
// a candidate, not be handing over, have no binding grant to another
// member, and hold a current grant for our epoch from at least one peer.
func (m *Machine) decideServer(now time.Duration) ServerState {
	st := ServerState{Mode: Fence, Epoch: m.epoch}
	until := m.grantedUntil()
	if m.cfg.Pair() && m.holding != 0 && m.leaseEpoch == m.holding {
		until = max(until, m.leaseUntil)
	}
	switch {
	case m.role == Tertiary && !m.serving && now >= m.serveEnd:
		st = ServerState{Mode: Witness, Epoch: m.epoch}
	case m.holding != 0 && m.candidate() && !m.handingOver && !m.shutdown && now >= m.quietUntil &&
		(m.grantee == "" || now >= m.grantHoldUntil) && now >= m.acqWait && until > now:
		m.serving, m.epoch, m.until = true, m.holding, until
		m.serveEnd = max(m.serveEnd, until+m.cfg.localFenceDelay())
		m.fenceSeq = 0
		st = ServerState{Mode: Serve, Epoch: m.epoch, Until: until}
	case m.serving:
		// Not confirmed yet: the server may serve until its deadline (it
		// enforces it) plus FenceDelay; ServerResult shortens this.
		m.serving = false
		st.Epoch = m.epoch
	}
	st.Seq = m.srv.Seq
	if st != m.srv {
		st.Seq++
		if st.Mode != Serve && (m.srv.Mode == Serve || m.fenceSeq != 0) {
			m.fenceSeq = st.Seq
		}
		m.srv = st
	}
	return st
}

func (m *Machine) grantedUntil() time.Duration {
	var until time.Duration
	for _, p := range m.peers {
		if m.holding != 0 && p.grantEpoch == m.holding {
			until = max(until, p.grantSentAt+p.grantValid)
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
	if v.Holder != p.id || v.Epoch == 0 || !p.hasHB || p.hb.Holding != v.Epoch || m.role == "" ||
		!m.hears(now, p) || m.holding != 0 || m.serving || now < m.serveEnd || now < m.quietUntil {
		return 0
	}
	if m.grantee != "" && m.grantee != p.id && now < m.grantHoldUntil {
		return 0
	}
	return v.Epoch
}

func (m *Machine) nextLeaseCommand(now time.Duration) *LeaseCommand {
	if m.cmd != nil || m.done || now < m.retryAt {
		return nil
	}
	if m.holding == 0 && !m.candidate() {
		return nil // the tertiary never touches the Lease (but releases it)
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
		rec.Holder, rec.HolderIncarnation, rec.ServeFor = "", 0, 0
		rec.HandoffTo, rec.Reason, rec.AfterRelease = m.handoverTo, m.handoverReason, false
	case m.holding != 0:
		switch {
		case m.needRead:
			op = LeaseGet
		case m.absent: // the Lease was deleted under us: recreate it
			op, rec = LeaseCreate, m.acquireRecord(now)
		case m.cfg.Pair():
			due, serveFor := m.pairRenewal(now)
			if !due {
				return nil
			}
			op, rec = LeaseUpdate, m.rec
			rec.ServeFor = serveFor
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
			op, rec = LeaseCreate, m.acquireRecord(now)
		default:
			op, rec = LeaseUpdate, m.acquireRecord(now)
		}
	case !m.shutdown && (m.needRead || !m.leaseOK || now >= m.lastOpEnd+m.cfg.RenewInterval || m.pairPoll(now)):
		// A candidate that never reached the store (a tertiary just
		// promoted) reads at once, and a failed or conflicting call is
		// retried soon (retryAt), not at the next renewal: it decides
		// whether we may take the role.
		op = LeaseGet
	default:
		return nil
	}
	if op == LeaseGet {
		rec = LeaseRecord{}
	} else {
		m.wrote = true
	}
	m.cmdAt = now
	m.lastID++
	m.cmd = &LeaseCommand{ID: m.lastID, Op: op, Record: rec}
	c := *m.cmd
	return &c
}

// acquireRecord is the Lease we write to take it over from m.rec (or to
// create it when absent).
func (m *Machine) acquireRecord(now time.Duration) LeaseRecord {
	r := LeaseRecord{Holder: m.cfg.Self, HolderIncarnation: m.inc, Reason: ReasonAcquire}
	if m.cfg.Pair() {
		// A new holder of a pair that does not hear its peer (it takes
		// the Lease over from it) has nobody to grant it: it serves on this
		// write. One that hears its peer waits for its grant, so that the
		// Lease stays unmarked at rest. Either way it serves only once the
		// holder it replaces has stopped serving on its own marked writes.
		if !m.hears(now, m.peers[0]) {
			r.ServeFor = m.cfg.LeaseServe()
		}
		m.acqPending, m.acqPendingEpoch = 0, 0
		if !m.absent && m.rec.ServeFor > 0 {
			m.acqPending = m.recSince + m.cfg.hold(m.rec.ServeFor, m.fenceDelayOf(m.rec.Holder))
			m.acqPendingEpoch = m.rec.Epoch + 1
		}
	}
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
	if !m.candidate() || m.holding != 0 || m.shutdown || !m.healthy || now < m.quietUntil {
		return false
	}
	v := m.view
	switch {
	case m.absent || v.Holder == "":
		return m.firstInLine(now, v)
	case v.Holder == m.cfg.Self:
		// Held by a former incarnation of ours (dead), or by a write of
		// ours whose answer was lost: a read settles which.
		return true
	case !m.isCandidate(v.Holder):
		// The holder is no longer a candidate (demoted to tertiary,
		// renamed, removed). It hands over itself once it sees the edit;
		// if it does not within a peer timeout (it cannot reach the API
		// server, or it is gone), the first in line takes the Lease over.
		// Safety does not depend on this: the voters' grants to the old
		// holder bind them until it has certainly stopped.
		if h := m.peer(v.Holder); h != nil && m.hears(now, h) && h.hasHB && h.hb.Holding == v.Epoch &&
			now-m.oddSince < m.cfg.PeerTimeout {
			return false
		}
		return m.firstInLine(now, LeaseRecord{})
	default:
		// Takeover: neither we nor the tertiary hear the holder, or the
		// holder we hear is a later incarnation than the one the Lease
		// names and holds nothing: the holder restarted (a container
		// restarted at once by the kubelet) and is in its quiet period.
		// Waiting for it would cost its whole quiet period; the Lease is
		// taken over now and the primary takes it back by failback. Safety
		// does not depend on this: the voters' grants to the former
		// incarnation bind them until it has certainly stopped.
		if m.cfg.Pair() {
			take, _ := m.pairTakeover(now)
			return take
		}
		h, t := m.peer(v.Holder), m.peer(m.cfg.Tertiary)
		if h == nil || t == nil || !m.hears(now, t) || !t.hasHB {
			return false
		}
		if v.HolderIncarnation != 0 && m.hears(now, h) && h.hasHB && h.inc > v.HolderIncarnation && h.hb.Holding == 0 && !h.hb.Serving {
			return true
		}
		return !m.hears(now, h) && !slices.Contains(t.hb.Hears, h.id)
	}
}

// firstInLine: the Lease is free (or held by a non-candidate). The named
// handoff target, else the primary, goes first; the other candidate only
// once that one is silent, or has said for a peer timeout that it cannot
// take the role (no Lease store, unhealthy, shutting down).
func (m *Machine) firstInLine(now time.Duration, v LeaseRecord) bool {
	first := m.cfg.Primary
	if !m.absent && v.HandoffTo != "" && m.isCandidate(v.HandoffTo) {
		first = v.HandoffTo
	}
	if first == m.cfg.Self {
		return true
	}
	p := m.peer(first)
	stuck := p.hasHB && !p.hb.Eligible && p.inContact && now-p.contactSince >= m.cfg.PeerTimeout
	return !m.hears(now, p) || stuck
}

// eligible: id is the other candidate, heard, saying it can take the role,
// and hearing us.
func (m *Machine) eligible(now time.Duration, id MemberID) bool {
	p := m.peer(id)
	return p != nil && m.isCandidate(id) && m.hears(now, p) && p.hasHB &&
		p.hb.Eligible && slices.Contains(p.hb.Hears, m.cfg.Self)
}

func (m *Machine) heartbeats(now time.Duration) []Heartbeat {
	var out []Heartbeat
	hears := m.hearsList(now)
	hearsKey := joinIDs(hears)
	for _, p := range m.peers {
		g := m.grantable(now, p)
		d := digest{viewRank: m.view.rank(), holding: m.holding, serving: m.serving,
			eligible: m.eligibleNow(now), hears: hearsKey, grantEpoch: g, echo: p.inc}
		if now < p.nextSend && d == p.sent {
			continue
		}
		m.seq++
		hb := Heartbeat{From: m.cfg.Self, To: p.id, Incarnation: m.inc, Seq: m.seq, Echo: p.inc, SentAt: now,
			PeerTimeout: m.cfg.PeerTimeout, FenceDelay: m.cfg.FenceDelay, View: m.view,
			Holding: m.holding, Serving: m.serving, Eligible: d.eligible, Hears: hears}
		hb.View.Version = ""
		if g != 0 {
			if m.grantee != p.id {
				m.grantHoldUntil = 0
			}
			m.grantee, m.grantEpoch = p.id, g
			// Bind ourselves for the longest the grantee may use the
			// grant: our peer timeout on its clock (it takes the shorter
			// of its own and ours), its server's fence delay or ours.
			hold := m.cfg.hold(m.cfg.PeerTimeout, max(m.cfg.FenceDelay, p.hb.FenceDelay))
			m.grantHoldUntil = max(m.grantHoldUntil, p.lastRecv+hold)
			hb.Grant = &Grant{Incarnation: p.inc, SentAt: p.hb.SentAt, Epoch: g, ValidFor: m.cfg.PeerTimeout}
		}
		out = append(out, hb)
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
	case len(m.hearsList(now)) != 0 && !m.shutdown && m.healthy:
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
	consider(m.editUntil)
	if m.odd != "" {
		consider(m.oddSince + m.cfg.PeerTimeout)
	}
	consider(m.leaseOKAt + 2*m.cfg.RenewInterval)
	if m.cfg.Pair() {
		consider(m.acqWait)
		if m.holding != 0 {
			consider(m.grantedUntil() - m.cfg.PeerTimeout/2)
			consider(m.heldSince + m.cfg.PeerTimeout/2)
			consider(m.leaseUntil)
			consider(m.leaseUntil - (m.cfg.LeaseServe() - m.cfg.PeerTimeout))
		} else if m.rec.ServeFor > 0 {
			consider(m.recSince + m.cfg.hold(m.rec.ServeFor, m.fenceDelayOf(m.rec.Holder)))
		}
		if m.cmd == nil {
			consider(m.lastOpEnd + m.cfg.PeerTimeout)
		}
	}
	if m.cmd == nil {
		consider(m.lastOpEnd + m.cfg.RenewInterval)
	}
	return next
}

func (m *Machine) mergeView(r LeaseRecord) {
	if r.rank() > m.view.rank() {
		m.view = r
		if r.Epoch > 0 {
			// Someone wrote the Lease since our last call found none.
			m.absent = false
		}
	}
}

func (m *Machine) hears(now time.Duration, p *peer) bool {
	return p != nil && now-p.lastRecv < m.cfg.PeerTimeout
}

// hearsList names the peers heard within the peer timeout, sorted.
func (m *Machine) hearsList(now time.Duration) []MemberID {
	var s []MemberID
	for _, p := range m.peers {
		if m.hears(now, p) {
			s = append(s, p.id)
		}
	}
	slices.Sort(s)
	return s
}

// eligibleNow: we could take the role if it were handed to us.
func (m *Machine) eligibleNow(now time.Duration) bool {
	// A pair member in its quiet period could not serve yet: a failback to
	// it (a pair fails back at once) would leave clients without service.
	return m.candidate() && !m.shutdown && m.healthy && m.leaseOK &&
		now-m.leaseOKAt < 2*m.cfg.RenewInterval && (!m.cfg.Pair() || now >= m.quietUntil)
}

func (m *Machine) peer(id MemberID) *peer {
	for _, p := range m.peers {
		if p != nil && p.id == id {
			return p
		}
	}
	return nil
}

// Status is a read-only summary for logs, metrics and tests.
type Status struct {
	Role        Role
	Incarnation uint64
	Holding     int64
	Serving     bool
	View        LeaseRecord
	Grantee     MemberID
	Shutdown    bool
	Healthy     bool
	// HandoverTo and HandoverReason describe a handover in progress
	// (HandoverReason is empty when none is).
	HandoverTo     MemberID
	HandoverReason Reason
	// Hears names the peers heard within the peer timeout.
	Hears []MemberID
}

// Status returns a summary of the machine's state at now.
func (m *Machine) Status(now time.Duration) Status {
	s := Status{Role: m.role, Incarnation: m.inc, Holding: m.holding, Serving: m.serving, View: m.view,
		Grantee: m.grantee, Shutdown: m.shutdown, Healthy: m.healthy, Hears: m.hearsList(now)}
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

// Reconfigure applies an edit of the group's spec to a running machine:
// any change of roles (including promoting the tertiary or demoting the
// holder), of membership (renamed or removed members, this one included),
// of the failback policy and of timing. The incarnation, the Lease view,
// the grants given and the contact with members that stay are kept, so a
// member that serves keeps serving where the edit allows it.
//
// Members apply an edit at different moments, some not at all for a while
// (cut off from the API server). Who may serve is decided by grants and the
// Lease, never by roles, and a grant carries the voter's timing, so no mix
// of old and new configurations lets two members serve. A holder that is
// no longer the primary hands over to the new primary as soon as that one
// can take the role; one that is no longer a candidate hands over at once
// (to nobody if no candidate can take it); a holder that does neither (it
// has not seen the edit) is taken over after a peer timeout.
func (m *Machine) Reconfigure(now time.Duration, cfg Config) (Output, error) {
	cfg.Self, cfg.Incarnation = m.cfg.Self, m.cfg.Incarnation
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Output{}, err
	}
	old := m.cfg
	m.cfg = cfg
	m.role = cfg.roleOf(cfg.Self)
	m.setPeers(now)
	if old.Primary != cfg.Primary || old.roleOf(old.Self) != m.role {
		m.editUntil = now + max(4*cfg.PeerTimeout, 5*time.Second)
	}
	return m.step(now), nil
}

func joinIDs(ids []MemberID) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(string(id))
		b.WriteByte(0)
	}
	return b.String()
}

// pairRenewal decides a pair holder's next Lease write: whether one is due
// and the ServeFor it carries. While its peer's grant runs short (the peer
// is down or cut off) the holder writes every PeerTimeout, marked, and
// serves on those writes; back on grants it writes once its last marked
// write has run out, unmarked, so that a takeover need not wait for it;
// otherwise it renews every RenewInterval. A write made while a marked
// write may still be used stays marked.
func (m *Machine) pairRenewal(now time.Duration) (due bool, serveFor time.Duration) {
	// A grant runs short when the peer has not answered for PeerTimeout/2
	// (a new holder gives a peer it hears that long to grant).
	want := m.grantedUntil() < now+m.cfg.PeerTimeout/2 &&
		(now >= m.heldSince+m.cfg.PeerTimeout/2 || !m.hears(now, m.peers[0]))
	onLease := m.leaseEpoch == m.holding && m.leaseUntil > now
	switch {
	case want && (!onLease || m.leaseUntil-now < m.cfg.LeaseServe()-m.cfg.PeerTimeout):
		return true, m.cfg.LeaseServe()
	case !want && !onLease && m.rec.ServeFor > 0:
		return true, 0
	case now >= m.lastOpEnd+m.cfg.RenewInterval:
		if want || onLease {
			return true, m.cfg.LeaseServe()
		}
		return true, 0
	}
	return false, 0
}

// pairTakeover is the takeover rule of a pair's other candidate, for a
// Lease that names another holder: take it over once the holder is not
// heard (or is heard as a later incarnation that holds nothing: it
// restarted) and the Lease, read since then, shows no marked write the
// holder may still serve on. read asks for a (fresh) read first: one made
// since the holder went silent, then one every PeerTimeout while a marked
// write still counts, so that a holder renewing it (cut off from us, not
// from the store) keeps the role.
func (m *Machine) pairTakeover(now time.Duration) (take, read bool) {
	v := m.view
	h := m.peer(v.Holder)
	if h == nil || v.Holder == "" || v.Holder == m.cfg.Self {
		return false, false
	}
	restarted := v.HolderIncarnation != 0 && m.hears(now, h) && h.hasHB && h.inc > v.HolderIncarnation &&
		h.hb.Holding == 0 && !h.hb.Serving
	if m.hears(now, h) && !restarted {
		return false, false
	}
	since := h.lastRecv + m.cfg.PeerTimeout
	if restarted {
		since = h.contactSince
	}
	if !m.lastOpRead || m.lastOpEnd < since || m.rec.Epoch != v.Epoch || m.rec.Holder != v.Holder {
		return false, true
	}
	if m.rec.ServeFor == 0 || now-m.recSince >= m.cfg.hold(m.rec.ServeFor, m.fenceDelayOf(v.Holder)) {
		return true, false
	}
	return false, now >= m.lastOpEnd+m.cfg.PeerTimeout
}

// pairPoll: a pair's candidate must read the Lease before it can decide a
// takeover.
func (m *Machine) pairPoll(now time.Duration) bool {
	if !m.cfg.Pair() || !m.candidate() || m.holding != 0 {
		return false
	}
	_, read := m.pairTakeover(now)
	return read
}

// fenceDelayOf is the longer of our fence delay and the one id last told
// us: how long after its deadline its server may still serve.
func (m *Machine) fenceDelayOf(id MemberID) time.Duration {
	fd := m.cfg.FenceDelay
	if p := m.peer(id); p != nil && p.hasHB {
		fd = max(fd, p.hb.FenceDelay)
	}
	return fd
}
