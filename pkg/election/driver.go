package election

import (
	"errors"
	"time"
)

// Driver is a member's whole election apart from the I/O itself: the
// Machine, the heartbeat codec, the ordered and confirmed application of the
// server state, spec edits and the server's health. The agent's Runner runs
// it with the real clock, the Kubernetes Lease, UDP and the license server;
// package sim runs the very same Driver with a simulated network, Lease store
// and server. A Driver is a pure state machine: every input takes the
// member's clock reading and returns the Actions to carry out.
type Driver struct {
	m     *Machine
	codec *Codec
	out   Output

	// Server application. issued is the newest seq sent to the server;
	// serveBusy: a Serve request is in flight (renewals wait for it, a
	// fence never does). fenceSeq/fenceAt: the newest non-serving request
	// not yet confirmed, sent at fenceAt; stopping: the server process is
	// being stopped because that fence was not confirmed in time.
	started   bool
	issued    uint64
	serveBusy bool
	fenceSeq  uint64
	fenceAt   time.Duration
	stopping  bool
}

// ServerCommand asks the driver's caller to set the server's state. Report
// the outcome with Driver.ServerDone. Requests carry Seq; the server must
// refuse one older than a request it applied.
type ServerCommand struct {
	ServerState
	// Active is the member the Lease names, a hint the server passes on to
	// clients.
	Active MemberID
}

// Datagram is a sealed heartbeat for a peer.
type Datagram struct {
	To   MemberID
	Data []byte
}

// Actions are what the caller must do after an input, in this order:
// Server (or StopServer) first, then Lease, then Datagrams.
type Actions struct {
	// Server, when set, is a request to send to the license server.
	Server *ServerCommand
	// StopServer: a fence was not confirmed within FenceDelay (or failed):
	// stop the server process; report with ServerStopped. Requests to the
	// server still in flight must be abandoned before it is stopped.
	StopServer bool
	// Lease is a Lease command to execute (report with LeaseResult).
	Lease *LeaseCommand
	// Datagrams are sealed heartbeats to send, best effort.
	Datagrams []Datagram
	// Desired is the server state the protocol wants now, Label the pod's
	// role label; NextWake is when to call Tick at the latest; Done: a
	// shutdown completed.
	Desired  ServerState
	Label    Label
	NextWake time.Duration
	Done     bool
}

// NewDriver returns a driver for cfg, started at now. group and key
// authenticate heartbeats (Codec).
func NewDriver(cfg Config, group string, key []byte, now time.Duration) (*Driver, error) {
	if len(key) == 0 {
		return nil, errors.New("election: the heartbeat key is empty")
	}
	m, err := New(cfg, now)
	if err != nil {
		return nil, err
	}
	d := &Driver{m: m, codec: NewCodec(group, key)}
	return d, nil
}

// Machine exposes the protocol machine for status queries.
func (d *Driver) Machine() *Machine { return d.m }

// Start returns the first actions (the initial server state and
// heartbeats).
func (d *Driver) Start(now time.Duration) Actions { return d.actions(now, d.m.Tick(now)) }

// Tick lets time pass; call it at Actions.NextWake.
func (d *Driver) Tick(now time.Duration) Actions { return d.actions(now, d.m.Tick(now)) }

// Datagram processes a datagram from the network. Anything that does not
// open (forged, for another receiver, garbage) is dropped.
func (d *Driver) Datagram(now time.Duration, data []byte) Actions {
	hb, err := d.codec.Open(d.m.cfg.Self, data)
	if err != nil {
		return d.actions(now, d.m.Tick(now))
	}
	return d.actions(now, d.m.Receive(now, hb))
}

// LeaseResult reports a Lease command's outcome.
func (d *Driver) LeaseResult(now time.Duration, r LeaseResult) Actions {
	return d.actions(now, d.m.LeaseResult(now, r))
}

// ServerDone reports the outcome of a ServerCommand: err nil means the
// server applied it (and so holds this state or a newer one).
func (d *Driver) ServerDone(now time.Duration, seq uint64, mode Mode, err error) Actions {
	if mode == Serve {
		d.serveBusy = false
	}
	if err == nil {
		if d.fenceSeq != 0 && seq >= d.fenceSeq {
			d.fenceSeq = 0
		}
		return d.actions(now, d.m.ServerResult(now, seq, true))
	}
	if mode != Serve && seq == d.fenceSeq && !d.stopping {
		// A fence failed: do not wait for FenceDelay.
		d.fenceAt = now - d.m.cfg.FenceDelay
	}
	return d.actions(now, d.m.Tick(now))
}

// ServerStopped reports that the server process is gone (after StopServer):
// whatever it was told, it no longer serves.
func (d *Driver) ServerStopped(now time.Duration) Actions {
	seq := d.fenceSeq
	d.stopping, d.fenceSeq = false, 0
	d.serveBusy = false
	if seq == 0 {
		return d.actions(now, d.m.Tick(now))
	}
	return d.actions(now, d.m.ServerResult(now, seq, true))
}

// Configure applies a spec edit (see Machine.Reconfigure).
func (d *Driver) Configure(now time.Duration, cfg Config) (Actions, error) {
	out, err := d.m.Reconfigure(now, cfg)
	if err != nil {
		return d.actions(now, d.m.Tick(now)), err
	}
	return d.actions(now, out), nil
}

// SetServerHealth reports whether the license server can serve.
func (d *Driver) SetServerHealth(now time.Duration, healthy bool) Actions {
	if healthy == d.m.healthy {
		return d.actions(now, d.m.Tick(now))
	}
	return d.actions(now, d.m.SetServerHealth(now, healthy))
}

// Switchover asks the holder to hand the role to target.
func (d *Driver) Switchover(now time.Duration, target MemberID) Actions {
	return d.actions(now, d.m.RequestSwitchover(now, target))
}

// Shutdown hands the role over and stops (Actions.Done).
func (d *Driver) Shutdown(now time.Duration) Actions {
	return d.actions(now, d.m.Shutdown(now))
}

func (d *Driver) actions(now time.Duration, out Output) Actions {
	d.out = out
	a := Actions{Desired: out.Server, Label: out.Label, NextWake: out.NextWake, Done: out.Done, Lease: out.Lease}
	st := out.Server
	if !d.started || st.Seq > d.issued {
		switch {
		case st.Mode != Serve:
			// A fence goes out at once, whatever is in flight: the server
			// refuses the older requests that arrive after it.
			a.Server = d.command(st)
			// Only a fence the machine waits for (its server may still
			// serve) is escalated; the first state of a server that never
			// served is not.
			if d.m.fenceSeq != 0 && (d.fenceSeq == 0 || st.Seq > d.fenceSeq) {
				if d.fenceSeq == 0 {
					d.fenceAt = now
				}
				d.fenceSeq = st.Seq
			}
		case !d.serveBusy && !d.stopping:
			a.Server = d.command(st)
			d.serveBusy = true
		}
	}
	// A fence not confirmed within FenceDelay: stop the server process.
	if d.fenceSeq != 0 && !d.stopping && now >= d.fenceAt+d.m.cfg.FenceDelay && d.m.cfg.FenceDelay > 0 {
		a.StopServer, d.stopping = true, true
	}
	if d.fenceSeq != 0 && !d.stopping {
		a.NextWake = min(a.NextWake, max(d.fenceAt+d.m.cfg.FenceDelay, now+1))
	}
	for _, hb := range out.Messages {
		data, err := d.codec.Seal(hb)
		if err != nil {
			continue
		}
		a.Datagrams = append(a.Datagrams, Datagram{To: hb.To, Data: data})
	}
	return a
}

func (d *Driver) command(st ServerState) *ServerCommand {
	d.started, d.issued = true, st.Seq
	c := &ServerCommand{ServerState: st}
	switch {
	case st.Mode != Serve && d.m.handingOver && d.m.handoverTo != "":
		// Fenced for a handover: clients asking here go straight to the
		// member taking over, not back to this one the Lease still names.
		c.Active = d.m.handoverTo
	case d.m.view.Holder != "":
		c.Active = d.m.view.Holder
	}
	return c
}
