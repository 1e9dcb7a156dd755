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
// carry the member's monotonic clock reading and every input returns an
// Output (server state, role label, at most one Lease command, heartbeats,
// next wake-up time). Package sim drives three machines through seeded
// faults. Runner drives a Machine in real time with a LeaseStore, a
// Transport (UDPTransport) and a state callback; that is what the member
// agent uses:
//
//	conn, _ := net.ListenUDP("udp", &net.UDPAddr{Port: agentPort})
//	tr := election.NewUDPTransport(conn, triadName, key, peerAddrs)
//	r, _ := election.NewRunner(election.RunnerConfig{
//		Machine:   election.Config{Self: me, Primary: p, Secondary: s, Tertiary: t,
//			Incarnation: uint64(time.Now().UnixNano()), PeerTimeout: ..., ...},
//		Store:     kubeLeaseStore,      // coordination/v1 Lease, CAS on resourceVersion
//		Transport: tr,
//		OnState:   applyToServerAndLabel, // Serve/Fence/Witness, epoch, deadline, label
//	})
//	go r.Run(ctx)
//	// on SIGTERM: r.Shutdown(ctxWithOneSecond); on a switchover request: r.Switchover(target)
package election
