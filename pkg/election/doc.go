// Package election decides which member of a LicenseTriad is active: the
// only member whose license server serves clients.
//
// The protocol (docs/design/active-role.md has the full argument) combines
// the Lease <triad>-active with peer grants:
//
//   - Members send each other heartbeats every HeartbeatInterval. A peer
//     answers the Lease holder's heartbeat with a grant that echoes the
//     heartbeat's send time. The holder serves until that send time plus
//     PeerTimeout on its own clock, so an active member cut off from both
//     peers stops within PeerTimeout, whatever its Lease says.
//   - A member grants to at most one member at a time. A grant binds the
//     voter for GrantHold after it last heard the grantee, long enough to
//     cover the grantee's deadline under clock-rate skew and FenceDelay.
//     Two members can therefore never both hold a usable grant, and since
//     the tertiary never serves and a candidate never serves while bound by
//     its own grant to the other, no two members serve at once.
//   - The Lease (a compare-and-swap register) names the holder and carries
//     the fencing epoch, which grows by one on every acquisition. The
//     secondary takes it over only when neither it nor the tertiary hears
//     the holder; it serves once the tertiary's grant to the old holder has
//     run out (≈ PeerTimeout + margin, 2.3–2.4 s at the defaults), without
//     waiting for the Lease to expire. Handovers (switchover, failback,
//     shutdown) release the Lease after the server has stopped, naming the
//     target, and complete in about FenceDelay plus two Lease calls.
//   - If the Lease store is unreachable the active keeps serving for as
//     long as a peer grants it (failsafe); nobody can acquire the Lease.
//
// Machine is the protocol as a pure, deterministic state machine: inputs
// carry the member's clock reading and every input returns an Output
// (server state, role label, at most one Lease command, heartbeats, next
// wake-up time). Driver wraps it with everything else a member does apart
// from I/O: the heartbeat codec (Codec), the ordered and confirmed
// application of the server state with escalation to stopping the server,
// spec edits and the server's health. Package sim runs three Drivers through
// seeded faults; Runner runs one in real time, and that is what the member
// agent uses:
//
//	r, _ := election.NewRunner(election.RunnerConfig{
//		Machine: election.Config{Self: me, Primary: p, Secondary: s, Tertiary: t, ...},
//		Group: triadName, Key: sharedKey,
//		Store:  &kubelease.Store{...},  // coordination/v1 Lease, CAS on resourceVersion
//		Conn:   udpConn, Addr: memberAddress,
//		Server: serverControl,          // sequenced role requests, Stop on escalation
//		Clock:  boottime.Since,
//	})
//	go r.Run(ctx)
//	// on an edit: r.Configure(cfg); health: r.SetServerHealth(ok);
//	// on SIGTERM: r.Shutdown(ctx); on a switchover request: r.Switchover(target)
package election
