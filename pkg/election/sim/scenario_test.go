package sim

import (
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/election"
)

// Targeted scenarios, one per protocol rule, at default settings unless
// stated. Each runs with clocks skewed to the configured bound (primary
// fast, secondary slow, tertiary fast: the worst case for a takeover) and
// fails on any safety violation.

// defaults are the API defaults (a zero FailbackDelay means "at once").
var defaults = election.Config{FailbackDelay: election.DefaultFailbackDelay}

var lan = Network{MinDelay: 200 * time.Microsecond, MaxDelay: 2 * time.Millisecond}

func newTriad(t *testing.T, cfg election.Config) *World {
	t.Helper()
	w := New(1, cfg, lan, testing.Verbose())
	rho := w.Cfg.MaxClockDrift
	w.Members[P].Rate, w.Members[S].Rate, w.Members[T].Rate = 1+rho, 1-rho, 1+rho
	for i := range w.Members {
		w.Start(i)
	}
	watch(t, w)
	return w
}

// watch fails t, once it ends, with each safety violation w saw and, with
// -v, logs w's trace if t failed.
func watch(t *testing.T, w *World) {
	t.Cleanup(func() {
		for _, f := range w.Failures() {
			t.Error(f)
		}
		if t.Failed() && testing.Verbose() {
			t.Log(w.Trace())
		}
	})
}

// cut cuts the links between member i and each of others, both ways.
func cut(w *World, i int, others ...int) {
	for _, j := range others {
		w.SetLink(i, j, false)
		w.SetLink(j, i, false)
	}
}

// waitActive runs until a member other than not is active and returns it
// and the time it took.
func waitActive(t *testing.T, w *World, not int, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := w.Now
	for w.Now-start <= within {
		if a := w.ActiveMember(); a >= 0 && a != not {
			return a, w.Now - start
		}
		w.RunUntil(w.Now + time.Millisecond)
	}
	t.Fatalf("no member other than %d active within %v", not, within)
	return -1, 0
}

// waitFor runs until a member other than not is active, fails unless it is
// want, and returns the time it took.
func waitFor(t *testing.T, w *World, not, want int, within time.Duration) time.Duration {
	t.Helper()
	a, took := waitActive(t, w, not, within)
	if a != want {
		t.Fatalf("want member %s to serve, got %d", w.Members[want].Name, a)
	}
	return took
}

// steady runs until the primary serves.
func steady(t *testing.T, w *World) {
	t.Helper()
	if a, _ := waitActive(t, w, -1, 10*time.Second); a != P {
		t.Fatalf("the primary should serve first, got %d", a)
	}
	w.RunUntil(w.Now + 5*time.Second)
}

// neverActive runs for d and fails if anybody (who < 0) or member who is
// active meanwhile.
func neverActive(t *testing.T, w *World, who int, d time.Duration) {
	t.Helper()
	end := w.Now + d
	for w.Now < end {
		w.RunUntil(w.Now + time.Millisecond)
		if a := w.ActiveMember(); a >= 0 && (who < 0 || a == who) {
			t.Fatalf("member %d is active at %v", a, w.Now)
		}
	}
}

func TestCrashOfActiveFailsOverAfterPeerTimeoutPlusMargin(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	epoch := w.Members[P].Epoch()
	w.Crash(P)
	a, took := waitActive(t, w, P, 10*time.Second)
	cfg := w.Cfg
	t.Logf("secondary serves %v after the crash (peer timeout %v, grant hold %v)", took, cfg.PeerTimeout, cfg.GrantHold())
	if a != S || w.Members[S].Epoch() <= epoch {
		t.Fatalf("want the secondary with a newer epoch, got member %d epoch %d", a, w.Members[S].Epoch())
	}
	// The grant the secondary itself gave binds it for GrantHold of its
	// (slow) clock; a heartbeat round and a Lease call come on top.
	lo := time.Duration(float64(cfg.GrantHold()) / (1 + cfg.MaxClockDrift))
	hi := time.Duration(float64(cfg.GrantHold())/(1-cfg.MaxClockDrift)) + 2*cfg.HeartbeatInterval
	if took < lo || took > hi {
		t.Fatalf("failover took %v, want within [%v, %v]", took, lo, hi)
	}
}

func TestTertiaryNeverServesAndServiceReturnsWithACandidate(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.Crash(P)
	w.Crash(S)
	neverActive(t, w, -1, 30*time.Second)
	if l := w.Members[T].Label(); l != election.LabelWitness {
		t.Fatalf("tertiary label %q", l)
	}
	w.Start(S)
	took := waitFor(t, w, -1, S, 10*time.Second)
	t.Logf("secondary serves %v after it came back to the tertiary", took)
}

func TestActiveCutOffFromBothPeersStopsWithinPeerTimeout(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	at := w.Now
	cut(w, P, S, T)
	for w.Members[P].Active(w.Now) {
		w.RunUntil(w.Now + time.Millisecond)
	}
	stopped := w.Now - at
	// Its last grant echoed a heartbeat sent before the cut: it ends
	// PeerTimeout later on the primary's (fast) clock.
	if bound := w.Cfg.PeerTimeout; stopped > bound {
		t.Fatalf("isolated active served %v after the cut, want at most %v", stopped, bound)
	}
	took := waitFor(t, w, P, S, 10*time.Second)
	t.Logf("isolated primary stopped after %v; the secondary serves %v after the cut", stopped, stopped+took)
}

func TestActiveCutOffFromLeaseStoreKeepsServingWithItsQuorum(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.SetStore(P, false)
	neverActive(t, w, S, 60*time.Second)
	if !w.Members[P].Active(w.Now) {
		t.Fatal("the primary stopped serving although both peers confirm it")
	}
	// The whole API server goes away: still serving; and now a crash of
	// the active cannot be taken over, because nobody can take the Lease.
	for i := range 3 {
		w.SetStore(i, false)
	}
	w.RunUntil(w.Now + 30*time.Second)
	if !w.Members[P].Active(w.Now) {
		t.Fatal("the primary stopped serving in failsafe mode")
	}
	w.Crash(P)
	neverActive(t, w, -1, 30*time.Second)
	w.SetStore(S, true)
	waitFor(t, w, P, S, 10*time.Second) // once it reaches the store
}

func TestSecondaryDoesNotTakeOverAPrimaryTheTertiaryReaches(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	cut(w, P, S)
	neverActive(t, w, S, 60*time.Second)
	if !w.Members[P].Active(w.Now) {
		t.Fatal("the primary stopped serving although the tertiary confirms it")
	}
}

func TestMuteActiveIsReplaced(t *testing.T) {
	// One-way: the primary still hears its peers but nobody hears it.
	w := newTriad(t, defaults)
	steady(t, w)
	w.SetLink(P, S, false)
	w.SetLink(P, T, false)
	waitFor(t, w, P, S, 10*time.Second)
}

func TestPausedActiveDoesNotServeAfterResumeUntilConfirmed(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	old := w.Members[P].Epoch()
	w.Pause(P)
	waitFor(t, w, P, S, 10*time.Second)
	w.RunUntil(w.Now + time.Second)
	served := false
	w.OnServeStart = func(w *World, i int, epoch int64) {
		if i == P {
			served = true
			if epoch <= old {
				w.fail("resumed primary serves its stale epoch %d", epoch)
			}
		}
	}
	w.Resume(P)
	if w.Members[P].Active(w.Now) || w.Members[P].lastActs.Desired.Mode == election.Serve {
		t.Fatal("the primary serves right after resuming")
	}
	// Failback (30 s by default) is the only way back for it.
	w.RunUntil(w.Now + 20*time.Second)
	if served || w.ActiveMember() != S {
		t.Fatalf("want the secondary to keep serving, active %d, primary served %v", w.ActiveMember(), served)
	}
}

func TestShortPauseOfActiveIsRidden(t *testing.T) {
	// A pause shorter than the peer timeout: the primary's own deadline
	// passes or not, but nobody else may serve meanwhile.
	w := newTriad(t, defaults)
	steady(t, w)
	w.Pause(P)
	w.RunUntil(w.Now + 1500*time.Millisecond)
	w.Resume(P)
	neverActive(t, w, S, 10*time.Second)
	waitFor(t, w, -1, P, 5*time.Second)
}

func TestSwitchoverIsSubSecond(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.Switchover(S)
	took := waitFor(t, w, P, S, time.Second)
	t.Logf("secondary serves %v after the request", took)
	// And back: a switchover to the primary is honoured at once, failback
	// delay or not.
	w.RunUntil(w.Now + time.Second)
	w.Switchover(P)
	waitFor(t, w, S, P, time.Second)
}

func TestSwitchoverToTertiaryIsIgnored(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.Switchover(T)
	neverActive(t, w, S, 5*time.Second)
	if w.ActiveMember() != P {
		t.Fatal("the primary should keep serving")
	}
}

func TestGracefulShutdownHandsOverWithinASecond(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.Shutdown(P)
	start := w.Now
	took := waitFor(t, w, P, S, time.Second)
	for w.Members[P].Alive {
		w.RunUntil(w.Now + time.Millisecond)
	}
	t.Logf("secondary serves %v after SIGTERM; the primary exited after %v", took, w.Now-start)
	if w.Now-start >= time.Second {
		t.Fatalf("the primary took %v to exit", w.Now-start)
	}
}

func TestActiveRestartedAtOnceIsTakenOverWithoutWaitingForItsQuietPeriod(t *testing.T) {
	// The kubelet restarts a killed container at once: the primary's new
	// incarnation is heard again well before the peer timeout ends, while
	// the Lease still names its former incarnation. The secondary takes
	// over as after a plain crash instead of waiting for the restarted
	// primary's quiet period, and the primary takes the role back by
	// failback.
	w := newTriad(t, election.Config{FailbackDelay: 5 * time.Second})
	steady(t, w)
	w.Crash(P)
	w.RunUntil(w.Now + 300*time.Millisecond)
	w.Start(P)
	a, took := waitActive(t, w, -1, 10*time.Second)
	cfg := w.Cfg
	t.Logf("member %d serves %v after the restart (peer timeout %v, grant hold %v, quiet period %v)", a, took, cfg.PeerTimeout, cfg.GrantHold(), cfg.QuietPeriod())
	hi := time.Duration(float64(cfg.GrantHold())/(1-cfg.MaxClockDrift)) + 2*cfg.HeartbeatInterval
	if a != S || took+300*time.Millisecond > hi {
		t.Fatalf("member %d serves %v after the crash, want the secondary within %v", a, took+300*time.Millisecond, hi)
	}
	waitFor(t, w, S, P, 15*time.Second) // failback
}

func TestFailbackWaitsForTheDelay(t *testing.T) {
	w := newTriad(t, election.Config{FailbackDelay: 10 * time.Second})
	steady(t, w)
	w.Crash(P)
	waitActive(t, w, P, 10*time.Second)
	w.RunUntil(w.Now + 5*time.Second)
	w.Start(P)
	a, took := waitActive(t, w, S, 30*time.Second)
	t.Logf("primary serves again %v after it came back (delay %v)", took, w.Cfg.FailbackDelay)
	lo := time.Duration(float64(w.Cfg.FailbackDelay) / (1 + w.Cfg.MaxClockDrift))
	if a != P || took < lo || took > w.Cfg.FailbackDelay+2*time.Second {
		t.Fatalf("failback to %d after %v, want the primary within [%v, %v]", a, took, lo, w.Cfg.FailbackDelay+2*time.Second)
	}
}

func TestFailbackDelayRestartsWhenPrimaryFlaps(t *testing.T) {
	w := newTriad(t, election.Config{FailbackDelay: 10 * time.Second})
	steady(t, w)
	w.Crash(P)
	waitActive(t, w, P, 10*time.Second)
	w.Start(P)
	w.RunUntil(w.Now + 8*time.Second)
	w.Crash(P) // down before the delay elapsed
	w.RunUntil(w.Now + time.Second)
	w.Start(P)
	neverActive(t, w, P, 9*time.Second)
	waitFor(t, w, S, P, 5*time.Second) // failback
}

func TestManualFailbackLeavesSecondaryActive(t *testing.T) {
	w := newTriad(t, election.Config{Failback: election.FailbackManual, FailbackDelay: time.Second})
	steady(t, w)
	w.Crash(P)
	waitActive(t, w, P, 10*time.Second)
	w.Start(P)
	neverActive(t, w, P, 60*time.Second)
	if w.ActiveMember() != S {
		t.Fatal("the secondary should keep serving")
	}
}

func TestRestartedVoterHonoursTheGrantOfItsFormerIncarnation(t *testing.T) {
	// The primary serves on the tertiary's grant alone (cut off from the
	// secondary). The tertiary restarts at the moment the primary is cut
	// off from it too: the new incarnation does not know what it granted,
	// so it must not grant the secondary before that grant has run out.
	// Clocks: the primary slow (its grant lasts longest in true time), the
	// others fast (they wait least).
	w := New(1, defaults, lan, testing.Verbose())
	rho := w.Cfg.MaxClockDrift
	w.Members[P].Rate, w.Members[S].Rate, w.Members[T].Rate = 1-rho, 1+rho, 1+rho
	for i := range w.Members {
		w.Start(i)
	}
	watch(t, w)
	steady(t, w)
	cut(w, P, S)
	w.RunUntil(w.Now + 3*time.Second)
	cut(w, P, T)
	w.Crash(T)
	w.Start(T)
	waitFor(t, w, P, S, 10*time.Second)
}

func TestHandoverTargetThatCannotReachTheStoreIsPassedOver(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.Switchover(S)
	w.SetStore(S, false) // the target loses the API server as the request lands
	// The primary takes the released Lease back.
	took := waitFor(t, w, -1, P, 5*time.Second)
	t.Logf("the primary serves %v after the switchover to a target without the store", took)
}

func TestRoleSwapInPlaceIsASubSecondSwitchover(t *testing.T) {
	w := newTriad(t, defaults)
	steady(t, w)
	w.SwapRoles(P, S)
	took := waitFor(t, w, P, S, time.Second) // the new primary
	t.Logf("the new primary serves %v after the roles were swapped", took)
	// The old primary is the secondary now: no failback to it, however long.
	neverActive(t, w, P, 2*election.DefaultFailbackDelay)
}

func TestRestartedMemberIsJoiningForOneGrantHold(t *testing.T) {
	// A restarted member cannot vouch for the active member until the
	// grants of its former incarnation have run out; agents report this as
	// Joining (the pod is not ready and does not count in the quorum), so
	// the operator never takes another member away while it would leave
	// the active with a voter that cannot vote yet.
	w := newTriad(t, defaults)
	steady(t, w)
	w.Crash(T)
	w.Start(T)
	m := w.Members[T]
	started := m.local(w.Now)
	if !m.Driver.Machine().Joining(started) {
		t.Fatal("a restarted member should be joining")
	}
	for m.Driver.Machine().Joining(m.local(w.Now)) {
		w.RunUntil(w.Now + time.Millisecond)
	}
	joined := m.local(w.Now) - started
	t.Logf("joining for %v (grant hold %v)", joined, w.Cfg.GrantHold())
	if hold := w.Cfg.GrantHold(); joined < hold || joined > hold+2*time.Millisecond {
		t.Fatalf("joining for %v, want the grant hold %v", joined, hold)
	}
	if a := w.ActiveMember(); a != P {
		t.Fatalf("the primary should have served throughout, active is %d", a)
	}
}
