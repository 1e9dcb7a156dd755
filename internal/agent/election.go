package agent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/election"
	"github.com/licenseha/licenseha/pkg/election/kubelease"
	"github.com/licenseha/licenseha/pkg/server"
)

// shutdownLimit bounds the handover on SIGTERM: it normally finishes well
// within a second when a standby can take the role.
const shutdownLimit = 3 * time.Second

// handoverLimit bounds this member's handover on SIGTERM. A vendor server
// is fenced by stopping it, which may take its whole fence grace (a server
// that flushes its state on SIGTERM): the handover waits for that rather
// than giving up and leaving the role to the other side's takeover, which
// waits out the Lease (up to its serve-for time when the holder served on it
// alone).
func (a *Agent) handoverLimit() time.Duration {
	if a.opts.StopToFence {
		return fenceGrace + shutdownLimit
	}
	return shutdownLimit
}

// electionDriver runs the active-role election of a triad and of an
// ActivePassive backup pair: pkg/election's Runner (the Driver the
// simulation runs) with CLOCK_BOOTTIME, UDP heartbeats between the members'
// agents, the Kubernetes Lease and this member's license server. A pair
// runs it with two members: the main as primary, the backup as secondary.
type electionDriver struct {
	a *Agent

	mu sync.Mutex
	// serving and otherHolderAt measure this member's takeovers: from the
	// last moment it knew another member held the role to serving itself.
	serving       bool
	otherHolderAt time.Time
}

func newTriadDriver(a *Agent) (roleDriver, error) {
	return &electionDriver{a: a}, nil
}

// machineConfig maps the group configuration onto the protocol's. A member
// missing from the configuration (removed or renamed) still runs: fenced,
// it hands the role over and waits for its pod to go. A pair's preferred
// side (the main unless spec.preferredSide says otherwise) is the primary
// and the other the secondary; Fixed roles fail back to the primary as soon
// as it is back and able to take the role, Symmetric ones never.
func machineConfig(cfg *group.Config, self string) election.Config {
	ec := election.Config{
		Self:              election.MemberID(self),
		PeerTimeout:       cfg.PeerTimeout(),
		HeartbeatInterval: cfg.HeartbeatInterval(),
		Failback:          election.FailbackPolicy(cfg.Failback),
		FailbackDelay:     cfg.FailbackDelay(),
		PriorPeerTimeout:  cfg.PriorPeerTimeout(),
	}
	if cfg.Kind == group.KindBackupPair {
		ec.Primary, ec.Secondary = election.MemberID(group.SideMain), election.MemberID(group.SideBackup)
		if cfg.PreferredSide == group.SideBackup {
			// A planned switchover: the holder hands over at once, as after
			// any role edit.
			ec.Primary, ec.Secondary = ec.Secondary, ec.Primary
		}
		ec.Failback = election.FailbackAutomatic
		if cfg.Roles == group.RolesSymmetric {
			ec.Failback = election.FailbackManual
		}
		return ec
	}
	for _, m := range cfg.Members {
		switch m.Role {
		case group.RolePrimary:
			ec.Primary = election.MemberID(m.Name)
		case group.RoleSecondary:
			ec.Secondary = election.MemberID(m.Name)
		case group.RoleTertiary:
			ec.Tertiary = election.MemberID(m.Name)
		}
	}
	return ec
}

// randomIncarnation draws the process-unique low bits of the incarnation.
func randomIncarnation() uint64 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return uint64(binary.LittleEndian.Uint32(b[:]))
}

func (d *electionDriver) Run(ctx context.Context) error {
	a := d.a
	a.elected.Store(true)
	cfg := a.config()
	ec := machineConfig(cfg, a.opts.Member)
	ec.Incarnation = randomIncarnation()
	if err := ec.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("the group's configuration: %w", err)
	}
	addr, err := net.ResolveUDPAddr("udp", a.opts.PeerAddr)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("listening for peer heartbeats: %w", err)
	}
	defer conn.Close()
	store := &kubelease.Store{
		// For people reading the Lease: the holder renews it every
		// RenewInterval at rest; nothing reads the duration to decide.
		Mapping: kubelease.Mapping{Group: a.opts.Group, DurationSeconds: int32(2 * ec.WithDefaults().RenewInterval / time.Second)},
		Client:  a.cs, Namespace: a.opts.Namespace, Name: group.LeaseName(a.opts.Group), Timeout: apiTimeout,
	}
	runner, err := election.NewRunner(election.RunnerConfig{
		Machine: ec, Group: a.opts.Group, Key: a.peerKey, Store: store, Conn: conn,
		Addr: d.addr, Server: a.control, Clock: boottime.Since, OnState: d.onState,
	})
	if err != nil {
		return err
	}
	// Lease calls and the handover outlive ctx: the handover on SIGTERM
	// writes the Lease.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		a.log.Info("Stopping: handing the active role over if held")
		sctx, cancel := context.WithTimeout(runCtx, a.handoverLimit())
		defer cancel()
		if err := runner.Shutdown(sctx); err != nil {
			a.log.Info("Handover did not complete in time; stopping fenced")
		}
		stopRun()
	}()
	go d.follow(runCtx, runner)
	err = runner.Run(runCtx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// follow feeds the runner with spec edits and the server's health.
func (d *electionDriver) follow(ctx context.Context, r *election.Runner) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case cfg := <-d.a.cfgCh:
			d.a.log.Info("Group configuration changed", "generation", cfg.Generation)
			r.Configure(machineConfig(cfg, d.a.opts.Member))
		case <-t.C:
			r.SetServerHealth(d.a.serverHealthy())
		}
	}
}

// addr is a member's heartbeat address: its pod IP from the group
// configuration.
func (d *electionDriver) addr(id election.MemberID) net.Addr {
	m, ok := d.a.config().Member(string(id))
	if !ok || m.Address == "" {
		return nil
	}
	ip := net.ParseIP(m.Address)
	if ip == nil {
		return nil
	}
	return &net.UDPAddr{IP: ip, Port: group.AgentPeerPort}
}

// onState records what the protocol wants, for the pod report, the
// readiness probe, state sync and metrics. The server itself is driven
// through the runner's ServerControl.
func (d *electionDriver) onState(st election.RunnerState) {
	want := desired{epoch: uint64(max(st.Desired.Epoch, 0)), label: string(st.Label), joining: st.Joining,
		active: string(st.Holder)}
	for _, id := range st.Hears {
		want.peers = append(want.peers, string(id))
	}
	switch st.Desired.Mode {
	case election.Serve:
		want.role, want.state = server.RoleActive, group.StateActive
		want.until = int64(st.Desired.Until)
	case election.Witness:
		want.role, want.state = server.RoleWitness, group.StateWitness
	default:
		want.role, want.state = server.RoleStandby, group.StateStandby
		if st.Label == election.LabelUnhealthy {
			want.state = group.StateFenced
		}
	}
	d.mu.Lock()
	serving := st.Desired.Mode == election.Serve
	if st.Holder != "" && st.Holder != election.MemberID(d.a.opts.Member) {
		d.otherHolderAt = time.Now()
	}
	if serving && !d.serving && !d.otherHolderAt.IsZero() {
		d.a.metrics.takeover.Set(time.Since(d.otherHolderAt).Seconds())
	}
	d.serving = serving
	d.mu.Unlock()
	d.a.setWant(want)
}
