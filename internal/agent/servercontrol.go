package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/election"
	"github.com/licenseha/licenseha/pkg/server"
)

// serverControl is the one way the agent changes its license server's role
// (election.ServerControl). Every request carries a sequence number the
// server enforces, so a late "active" never undoes a "fence"; a fence that
// is not confirmed in time is escalated by the election driver to Stop,
// which kills the server process (the supervisor restarts it, fenced).
//
// A vendor server without licenseha's admin API (StopToFence) is fenced by
// not running: a fence sends it SIGTERM and returns once it is gone (the
// driver kills it after the fence delay if it lingers), and a watchdog
// kills it at its serve deadline if no renewal came, as the reference
// server fences itself at its deadline.
type serverControl struct {
	a *Agent
	// seq numbers the requests of backup pair members (triad requests
	// carry the election's own sequence).
	seq atomic.Uint64
	// deadline is the serve deadline (CLOCK_BOOTTIME ns) of a vendor
	// server, 0 when it must not run.
	deadline atomic.Int64
	// mu serialises a pair's role changes.
	mu sync.Mutex
}

var _ election.ServerControl = (*serverControl)(nil)

var errDeadlinePassed = errors.New("the serve deadline has passed")

// Apply implements election.ServerControl.
func (c *serverControl) Apply(ctx context.Context, cmd election.ServerCommand) error {
	a := c.a
	if a.opts.StopToFence {
		return c.applyByProcess(ctx, cmd)
	}
	req := server.RoleRequest{Epoch: uint64(max(cmd.Epoch, 0)), Active: string(cmd.Active), Seq: cmd.Seq}
	switch cmd.Mode {
	case election.Serve:
		req.Role = server.RoleActive
		if int64(cmd.Until) <= boottime.Now() {
			return errDeadlinePassed // serving now would be unsafe
		}
		req.ServeUntilBoottime = int64(cmd.Until)
	case election.Witness:
		req.Role = server.RoleWitness
	default:
		req.Role = server.RoleStandby
	}
	_, err := a.admin.SetRole(ctx, req)
	if err != nil && req.Role != server.RoleActive && server.IsCode(err, server.CodeStaleSequence) {
		// The server already holds a newer state than this fence: nothing
		// to escalate.
		return nil
	}
	if err != nil {
		a.metrics.roleFailures.Inc()
		a.log.Error(err, "Setting the server's role failed", "role", req.Role, "epoch", req.Epoch, "seq", req.Seq)
		return err
	}
	a.metrics.epoch.Set(float64(req.Epoch))
	c.noteApplied(req.Role, req.Epoch)
	return nil
}

// fenceGrace is how long a fenced vendor process may take to stop after
// SIGTERM before it is killed, at most: never past its serve deadline.
const fenceGrace = 5 * time.Second

// finalPublishReserve is the part of the time left until the serve
// deadline that a fenced member with synced folders keeps for publishing
// what its server wrote while stopping: the server is killed that much
// earlier, so a member that takes over at the deadline reads it.
const finalPublishReserve = 500 * time.Millisecond

func (c *serverControl) applyByProcess(ctx context.Context, cmd election.ServerCommand) error {
	if cmd.Mode == election.Serve {
		if int64(cmd.Until) <= boottime.Now() {
			return errDeadlinePassed
		}
		if c.a.procs.held() {
			// Taking over: the synced files first, then the processes.
			c.a.files.catchUp(ctx)
			if int64(cmd.Until) <= boottime.Now() {
				return errDeadlinePassed
			}
		}
		c.deadline.Store(int64(cmd.Until))
		c.a.procs.release()
		c.noteApplied(server.RoleActive, uint64(max(cmd.Epoch, 0)))
		return nil
	}
	// SIGTERM, and SIGKILL after fenceGrace or at the serve deadline,
	// whichever comes first: a server that ignores SIGTERM never serves
	// past the time another member may start. The deadline stays set
	// until the processes are gone, so the watchdog kills them there even
	// if this hold started earlier with a longer grace.
	wasServing := !c.a.procs.held()
	grace := fenceGrace
	if d := c.deadline.Load(); d != 0 {
		left := time.Duration(d - boottime.Now())
		if _, syncs := c.a.files.active(); syncs && wasServing {
			// The final file publication must land before another member
			// may start and read it.
			left -= finalPublishReserve
		}
		grace = min(grace, max(left, 0))
	}
	c.a.procs.hold(grace) // returns once the processes are gone
	c.deadline.Store(0)
	c.noteApplied(server.RoleStandby, uint64(max(cmd.Epoch, 0)))
	if wasServing {
		// What the server wrote while it stopped reaches the others.
		c.a.files.final(ctx)
	}
	return nil
}

func (c *serverControl) noteApplied(role server.Role, epoch uint64) {
	a := c.a
	a.mu.Lock()
	prev := a.applied.role
	a.applied.role, a.applied.epoch = role, epoch
	a.mu.Unlock()
	if prev != role {
		a.log.Info("Server role set", "role", role, "epoch", epoch)
	}
}

// Stop implements election.ServerControl: the server process is killed and
// restarted by the supervisor (a vendor server stays stopped).
func (c *serverControl) Stop(ctx context.Context) error {
	if c.a.opts.StopToFence && c.a.procs.held() && !c.a.procs.server.Status().Running {
		// The fence itself outlasted the fence delay (a vendor server
		// that took its grace to stop): nothing is left to stop.
		c.a.log.Info("The fence took longer than the fence delay; the server had stopped already")
	} else {
		c.a.log.Info("Stopping the license server: a fence was not confirmed in time")
	}
	c.deadline.Store(0)
	c.a.procs.kill(ctx)
	return nil
}

// watchdog stops a vendor server whose serve deadline passed without a
// renewal (the agent's driver would have fenced it; this covers a driver
// that is stuck).
func (c *serverControl) watchdog(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for ticked(ctx, t) {
		if d := c.deadline.Load(); d != 0 && boottime.Now() >= d {
			c.a.log.Info("Serve deadline passed without renewal; stopping the server")
			c.a.procs.hold(0)
			c.deadline.Store(0)
		}
	}
}

// applyDesired brings the server in line with a pair member's desired role
// (the pair's leader election decides it): requests are serialised and
// sequenced.
func (c *serverControl) applyDesired(ctx context.Context, want desired) {
	if want.role == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.a
	a.mu.Lock()
	applied := a.applied
	a.mu.Unlock()
	renew := want.role == server.RoleActive && want.until > applied.until+int64(50*time.Millisecond)
	if want.role == applied.role && want.epoch == applied.epoch && want.active == applied.active && !renew {
		return
	}
	cmd := election.ServerCommand{ServerState: election.ServerState{Seq: c.seq.Add(1), Epoch: int64(want.epoch)},
		Active: election.MemberID(want.active)}
	switch want.role {
	case server.RoleActive:
		cmd.Mode = election.Serve
		cmd.Until = time.Duration(want.until)
		if want.until == 0 {
			cmd.Until = time.Duration(boottime.Now()) + 365*24*time.Hour // ActiveActive: no bound
		}
	case server.RoleWitness:
		cmd.Mode = election.Witness
	default:
		cmd.Mode = election.Fence
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Apply(ctx, cmd); err != nil {
		return
	}
	a.mu.Lock()
	a.applied = want
	a.mu.Unlock()
}
