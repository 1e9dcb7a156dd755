package agent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/election"
	"github.com/licenseha/licenseha/pkg/server"
)

// shutdownLimit bounds the handover on SIGTERM: the machine normally
// finishes well within a second when a standby can take the role.
const shutdownLimit = 3 * time.Second

// triadDriver drives the triad's active-role state machine (pkg/election)
// with the real clock, UDP heartbeats between the members' agents, and the
// Kubernetes Lease.
type triadDriver struct {
	a     *Agent
	start time.Time
	// startMono is CLOCK_MONOTONIC at start: the machine's clock readings
	// plus startMono are instants the server understands.
	startMono int64
	leases    *kubeLeases
	conn      *net.UDPConn
	// heard is when each peer was last heard, for the pod report.
	heard map[election.MemberID]time.Time
	// lastServingPeer is when a peer last said it served; serving
	// after that measures this member's takeover.
	lastServingPeer time.Time
	serving         bool
}

func newTriadDriver(a *Agent) (roleDriver, error) {
	return &triadDriver{a: a, start: time.Now(), startMono: boottime.Now(), heard: map[election.MemberID]time.Time{}}, nil
}

// now is the monotonic clock the machine runs on.
func (d *triadDriver) now() time.Duration { return time.Since(d.start) }

// machineConfig maps the group configuration onto the protocol's.
func machineConfig(cfg *group.Config, self string, incarnation uint64) (election.Config, error) {
	ec := election.Config{
		Self:              election.MemberID(self),
		Incarnation:       incarnation,
		PeerTimeout:       time.Duration(cfg.PeerTimeoutMillis) * time.Millisecond,
		HeartbeatInterval: time.Duration(cfg.HeartbeatIntervalMillis) * time.Millisecond,
		Failback:          election.FailbackPolicy(cfg.Failback),
		FailbackDelay:     time.Duration(cfg.FailbackDelaySeconds) * time.Second,
	}
	for _, m := range cfg.Members {
		switch licensehav1.MemberRole(m.Role) {
		case licensehav1.RolePrimary:
			ec.Primary = election.MemberID(m.Name)
		case licensehav1.RoleSecondary:
			ec.Secondary = election.MemberID(m.Name)
		case licensehav1.RoleTertiary:
			ec.Tertiary = election.MemberID(m.Name)
		}
	}
	if _, ok := cfg.Member(self); !ok {
		return ec, fmt.Errorf("member %q is not in the triad's configuration", self)
	}
	return ec, ec.WithDefaults().Validate()
}

func (d *triadDriver) Run(ctx context.Context) error {
	a := d.a
	cfg := a.config()
	ec, err := machineConfig(cfg, a.opts.Member, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	m, err := election.New(ec, d.now())
	if err != nil {
		return err
	}
	d.leases = &kubeLeases{cs: a.cs, namespace: a.opts.Namespace, group: a.opts.Group,
		durationSeconds: int32(max(1, 3*cfg.PeerTimeoutMillis/1000))}
	addr, err := net.ResolveUDPAddr("udp", a.opts.PeerAddr)
	if err != nil {
		return err
	}
	if d.conn, err = net.ListenUDP("udp", addr); err != nil {
		return fmt.Errorf("listening for peer heartbeats: %w", err)
	}
	defer d.conn.Close()

	heartbeats := make(chan election.Heartbeat, 64)
	go d.receive(heartbeats)
	leaseCmds := make(chan election.LeaseCommand, 1)
	leaseResults := make(chan election.LeaseResult, 1)
	// Lease calls outlive ctx: the handover on SIGTERM writes the Lease.
	leaseCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLeases()
	go func() {
		for cmd := range leaseCmds {
			leaseResults <- d.leases.Do(leaseCtx, cmd)
		}
	}()
	defer close(leaseCmds)

	out := m.Tick(d.now())
	timer := time.NewTimer(0)
	defer timer.Stop()
	var shutdownBy time.Time
	var pending *election.Config
	var pendingSince, switchUntil, lastAsk time.Time
	done := ctx.Done()
	for {
		d.apply(ctx, m, out, leaseCmds)
		// After a role edit the serving member hands over to the new
		// primary; it asks until the new primary's heartbeats carry the new
		// roles and the handover starts.
		if st := m.Status(); time.Now().Before(switchUntil) && st.Serving && ec.Primary != ec.Self &&
			st.HandoverReason == "" && time.Since(lastAsk) >= ec.HeartbeatInterval/2 && shutdownBy.IsZero() {
			lastAsk = time.Now()
			out = m.RequestSwitchover(d.now(), ec.Primary)
			continue
		}
		// Other spec changes (timeouts, renamed members) take effect through
		// a fresh machine with a new incarnation, which the protocol treats
		// like a restarted member. An active member first hands the role to
		// the new primary.
		if pending != nil && shutdownBy.IsZero() {
			st := m.Status()
			switch {
			case st.Serving && pending.Primary != ec.Self && st.HandoverReason == "":
				a.log.Info("Roles changed; switching over", "to", pending.Primary)
				out = m.RequestSwitchover(d.now(), pending.Primary)
				continue
			// Wait for the handover to finish (the Lease released to the
			// new primary) before dropping the old machine; give up waiting
			// after a few peer timeouts, as a restart would.
			case (!st.Serving && st.Holding == 0 && st.HandoverReason == "") || pending.Primary == ec.Self ||
				time.Since(pendingSince) > 3*ec.PeerTimeout:
				a.log.Info("Applying the triad's new configuration", "primary", pending.Primary, "secondary", pending.Secondary, "tertiary", pending.Tertiary)
				ec = *pending
				pending = nil
				if m, err = election.New(ec, d.now()); err != nil {
					return err
				}
				out = m.Tick(d.now())
				continue
			}
		}
		if out.Done {
			a.log.Info("Handed over; stopping")
			return nil
		}
		if !shutdownBy.IsZero() && time.Now().After(shutdownBy) {
			a.log.Info("Handover did not complete in time; stopping fenced")
			return nil
		}
		wait := min(max(out.NextWake-d.now(), 0), 100*time.Millisecond)
		timer.Reset(wait)
		select {
		case <-done:
			done = nil
			shutdownBy = time.Now().Add(shutdownLimit)
			a.log.Info("Stopping: handing the active role over if held")
			out = m.Shutdown(d.now())
		case hb := <-heartbeats:
			d.heard[hb.From] = time.Now()
			if hb.Serving {
				d.lastServingPeer = time.Now()
			}
			out = m.Receive(d.now(), hb)
		case res := <-leaseResults:
			out = m.LeaseResult(d.now(), res)
		case newCfg := <-a.cfgCh:
			next, err := machineConfig(newCfg, a.opts.Member, uint64(time.Now().UnixNano()))
			if err != nil {
				a.log.Error(err, "Ignoring a configuration this member cannot run with")
			} else if next.Primary != ec.Primary || next.Secondary != ec.Secondary || next.Tertiary != ec.Tertiary ||
				next.PeerTimeout != ec.PeerTimeout || next.HeartbeatInterval != ec.HeartbeatInterval ||
				next.Failback != ec.Failback || next.FailbackDelay != ec.FailbackDelay {
				// Roles and failback change in place: the member keeps its
				// incarnation, grants and Lease, so a role edit is a
				// sub-second switchover rather than a restart.
				if o, err := m.Reconfigure(d.now(), next); err == nil {
					a.log.Info("Roles changed", "primary", next.Primary, "secondary", next.Secondary, "tertiary", next.Tertiary)
					ec = m.Config()
					out, switchUntil = o, time.Now().Add(5*time.Second)
					continue
				}
				pending, pendingSince = &next, time.Now()
			}
			out = m.Tick(d.now())
		case <-timer.C:
			out = m.Tick(d.now())
		}
	}
}

// apply carries out one output: the server first (a fence must reach the
// server before anything else leaves the member), then the Lease, then the
// heartbeats.
func (d *triadDriver) apply(ctx context.Context, m *election.Machine, out election.Output, leaseCmds chan<- election.LeaseCommand) {
	st := m.Status()
	want := desired{epoch: uint64(max(out.Server.Epoch, 0)), label: string(out.Label), peers: d.peers(m),
		joining: m.Joining(d.now())}
	if h := st.View.Holder; h != "" {
		want.active = string(h)
	}
	switch out.Server.Mode {
	case election.Serve:
		want.role, want.state = server.RoleActive, group.StateActive
		// An absolute instant: it does not move if this goroutine is
		// delayed between here and the server.
		want.until = d.startMono + int64(out.Server.Until)
	case election.Witness:
		want.role, want.state = server.RoleWitness, group.StateWitness
	default:
		want.role, want.state = server.RoleStandby, group.StateStandby
		if out.Label == election.LabelUnhealthy {
			want.state = group.StateFenced
		}
	}
	if out.Server.Mode == election.Serve && !d.serving && !d.lastServingPeer.IsZero() {
		d.a.metrics.takeover.Set(time.Since(d.lastServingPeer).Seconds())
	}
	d.serving = out.Server.Mode == election.Serve
	d.a.setDesired(ctx, want)
	if out.Server.Mode == election.Serve {
		// Serving needs the server to know it now, not at the next loop.
		d.a.applyRole(ctx)
	}
	if out.Lease != nil {
		select {
		case leaseCmds <- *out.Lease:
		default:
			// The machine keeps at most one command outstanding.
		}
	}
	cfg := d.a.config()
	for _, env := range out.Messages {
		member, ok := cfg.Member(string(env.To))
		if !ok || member.Address == "" {
			continue
		}
		data, err := d.seal(env.Heartbeat)
		if err != nil {
			continue
		}
		to := &net.UDPAddr{IP: net.ParseIP(member.Address), Port: group.AgentPeerPort}
		_, _ = d.conn.WriteToUDP(data, to)
	}
}

// peers lists the members heard within the peer timeout.
func (d *triadDriver) peers(m *election.Machine) []string {
	timeout := m.Config().PeerTimeout
	var out []string
	for id, at := range d.heard {
		if time.Since(at) < timeout {
			out = append(out, string(id))
		}
	}
	sort.Strings(out)
	return out
}

// receive decodes heartbeats from the UDP socket until it is closed.
func (d *triadDriver) receive(out chan<- election.Heartbeat) {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		hb, ok := d.open(buf[:n])
		if !ok {
			continue
		}
		select {
		case out <- hb:
		default:
			// A full queue means the loop is behind; heartbeats are
			// periodic, so dropping one is safe.
		}
	}
}

// sealed is a heartbeat on the wire: the members authenticate each other
// with an HMAC keyed by the group's admin token, so nobody else on the
// network can forge a vote, a grant or a Lease view.
type sealed struct {
	Heartbeat json.RawMessage `json:"hb"`
	MAC       []byte          `json:"mac"`
}

func (d *triadDriver) seal(hb election.Heartbeat) ([]byte, error) {
	raw, err := json.Marshal(hb)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealed{Heartbeat: raw, MAC: d.mac(raw)})
}

func (d *triadDriver) open(packet []byte) (election.Heartbeat, bool) {
	var s sealed
	var hb election.Heartbeat
	if json.Unmarshal(packet, &s) != nil || !hmac.Equal(s.MAC, d.mac(s.Heartbeat)) {
		return hb, false
	}
	return hb, json.Unmarshal(s.Heartbeat, &hb) == nil
}

func (d *triadDriver) mac(data []byte) []byte {
	h := hmac.New(sha256.New, d.a.peerKey)
	h.Write(data)
	return h.Sum(nil)
}
