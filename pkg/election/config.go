package election

import (
	"errors"
	"fmt"
	"time"
)

// Defaults match the LicenseTriad API defaults.
const (
	DefaultPeerTimeout       = 2 * time.Second
	DefaultHeartbeatInterval = 250 * time.Millisecond
	DefaultFailbackDelay     = 30 * time.Second
	DefaultMaxClockDrift     = 0.05
	DefaultFenceDelay        = 100 * time.Millisecond
	// DefaultRenewInterval keeps a steady group quiet: two Lease requests
	// a minute (the holder's renewal and the other candidate's read).
	DefaultRenewInterval = 30 * time.Second
)

// Config configures one member's machine.
type Config struct {
	// Self is this member.
	Self MemberID
	// Primary, Secondary and Tertiary name the triad's members. A backup
	// pair has no tertiary (Pair): its main is the primary, its backup
	// the secondary, and the Lease store stands in for the tertiary's
	// vote (see Pair).
	Primary, Secondary, Tertiary MemberID
	// Incarnation's low 32 bits identify this process: draw them at random
	// when the process starts. The machine sets the high 32 bits itself: it
	// starts at 1 and continues above the former incarnation once a peer
	// echoes that one, so no clock orders incarnations.
	Incarnation uint64

	// PeerTimeout: a peer not heard for this long counts as unreachable, and
	// an active member without a peer's grant for this long stops serving.
	PeerTimeout time.Duration
	// HeartbeatInterval is how often heartbeats are sent; at most half of
	// PeerTimeout.
	HeartbeatInterval time.Duration
	// Failback and FailbackDelay: with Automatic, an active secondary hands
	// the role back once the primary has been in contact and able to reach
	// the Lease store for FailbackDelay. Zero means at once; WithDefaults
	// leaves it alone (the API default is DefaultFailbackDelay).
	Failback      FailbackPolicy
	FailbackDelay time.Duration
	// RenewInterval is how often, at rest, the holder renews the Lease and
	// the other candidate reads it. Default DefaultRenewInterval. Safety
	// never rests on it (grants do), nor does failover speed: a takeover,
	// a handover and a failed call each make the member read or write at
	// once, and heartbeats carry the Lease record the others last saw. What it bounds is how
	// long a candidate that lost the Lease store unnoticed may still say it
	// can take the role (2·RenewInterval; a failed call says so at once).
	RenewInterval time.Duration
	// MaxClockDrift bounds the rate error of every member's monotonic clock
	// against true time (0.05 = each clock runs between 5% slow and 5% fast).
	MaxClockDrift float64
	// FenceDelay bounds how long after a Serve's Until the license server
	// may still accept a request (a server enforces Until itself; a vendor
	// server without that is stopped by the driver at Until). A Fence counts
	// as in effect only once the driver confirms it (Machine.ServerResult).
	FenceDelay time.Duration
	// PriorPeerTimeout is the longest peer timeout a former incarnation of
	// this member may have run with (the group's timing was edited
	// recently); the quiet period of a new incarnation covers it. Zero: the
	// current one.
	PriorPeerTimeout time.Duration
}

// WithDefaults returns c with zero durations and policies set to defaults.
func (c Config) WithDefaults() Config {
	if c.PeerTimeout == 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.Failback == "" {
		c.Failback = FailbackAutomatic
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = DefaultRenewInterval
	}
	if c.MaxClockDrift == 0 {
		c.MaxClockDrift = DefaultMaxClockDrift
	}
	if c.FenceDelay == 0 {
		c.FenceDelay = DefaultFenceDelay
	}
	return c
}

// Validate reports a configuration the protocol cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Pair() {
		if c.Primary == "" || c.Secondary == "" || c.Primary == c.Secondary {
			errs = append(errs, errors.New("a pair's primary and secondary must be two distinct non-empty members"))
		}
	} else if ids := map[MemberID]bool{c.Primary: true, c.Secondary: true, c.Tertiary: true}; len(ids) != 3 || ids[""] {
		errs = append(errs, errors.New("primary, secondary and tertiary must be three distinct non-empty members"))
	}
	if c.Self == "" {
		// Self need not be a member: a member removed from the spec runs
		// on, fenced, until its pod is gone.
		errs = append(errs, errors.New("self must be named"))
	}
	if c.PeerTimeout <= 0 || c.HeartbeatInterval <= 0 || 2*c.HeartbeatInterval > c.PeerTimeout {
		errs = append(errs, errors.New("heartbeat interval must be positive and at most half of the peer timeout"))
	}
	if c.RenewInterval <= 0 || c.FailbackDelay < 0 || c.FenceDelay < 0 || c.PriorPeerTimeout < 0 {
		errs = append(errs, errors.New("renew interval must be positive, failback and fence delays non-negative"))
	}
	if c.MaxClockDrift < 0 || c.MaxClockDrift >= 0.5 {
		errs = append(errs, errors.New("max clock drift must be in [0, 0.5)"))
	}
	if c.Failback != FailbackAutomatic && c.Failback != FailbackManual {
		errs = append(errs, fmt.Errorf("unknown failback policy %q", c.Failback))
	}
	return errors.Join(errs...)
}

// Pair reports a backup pair: two members and no tertiary. The active
// member serves on its peer's grants as in a triad; when they stop (the
// peer is down or cut off) it serves on its Lease writes instead, each
// marked with LeaseServe (LeaseRecord.ServeFor) and renewed every
// PeerTimeout. The other member takes the Lease over only when it no
// longer hears the holder and the Lease shows no such renewal for as long
// as the last one allows: the store's compare-and-swap and the recorded
// ServeFor replace the tertiary's vote and grant. At rest the holder writes
// only every RenewInterval, unmarked.
func (c Config) Pair() bool { return c.Tertiary == "" }

// LeaseServe is how long a pair's holder may serve after sending a marked
// Lease write (pairs only): 4·PeerTimeout, so that the holder renews every
// PeerTimeout while its peer is silent and a missed renewal or two cost
// nothing.
func (c Config) LeaseServe() time.Duration { return 4 * c.PeerTimeout }

// GrantHold is how long, on the voter's clock, a grant binds the voter after
// it last heard the grantee: the grantee serves at most PeerTimeout on its
// own clock after sending that heartbeat (at most PeerTimeout/(1-ρ) true
// time, since the heartbeat was sent before the voter received it), plus
// FenceDelay for the server to stop; the voter's clock may run fast by ρ.
//
//	GrantHold = (PeerTimeout/(1-ρ) + FenceDelay) · (1+ρ)
//
// At the defaults this is 2.316 s: the crash failover time.
func (c Config) GrantHold() time.Duration {
	return c.hold(c.PeerTimeout, c.FenceDelay)
}

// hold is how long a grant valid for validFor on the grantee's clock binds
// the voter, for a grantee server that stops within fenceDelay of its
// deadline.
func (c Config) hold(validFor, fenceDelay time.Duration) time.Duration {
	rho := c.MaxClockDrift
	trueBound := float64(validFor)/(1-rho) + float64(fenceDelay)
	return time.Duration(trueBound*(1+rho)) + 1
}

// QuietPeriod is how long a new incarnation neither grants nor serves: the
// longest a grant of its former incarnation may bind, under the current or
// the prior peer timeout.
func (c Config) QuietPeriod() time.Duration {
	return c.hold(max(c.PeerTimeout, c.PriorPeerTimeout), c.FenceDelay)
}

// localFenceDelay is FenceDelay measured on a clock that may run fast by ρ.
func (c Config) localFenceDelay() time.Duration {
	return time.Duration(float64(c.FenceDelay)*(1+c.MaxClockDrift)) + 1
}

func (c Config) roleOf(id MemberID) Role {
	switch id {
	case "":
		return ""
	case c.Primary:
		return Primary
	case c.Secondary:
		return Secondary
	case c.Tertiary:
		return Tertiary
	}
	return ""
}
