package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/election"
)

// A backup pair (LicenseBackupPair, ActivePassive) runs the same machine
// with two members: P is the main, S the backup, slot T stays empty.

// pairDefaults are the pair's API defaults (peer timeout 2 s, failback as
// soon as the main can take the role with Fixed roles).
var pairDefaults = election.Config{}

func newPair(t *testing.T, cfg election.Config) *World {
	t.Helper()
	w := NewPair(1, cfg, lan, testing.Verbose())
	rho := w.Cfg.MaxClockDrift
	w.Members[P].Rate, w.Members[S].Rate = 1+rho, 1-rho
	w.Start(P)
	w.Start(S)
	watch(t, w)
	return w
}

// alwaysActive runs for d and fails at the first moment who is not active.
func alwaysActive(t *testing.T, w *World, who int, d time.Duration) {
	t.Helper()
	end := w.Now + d
	for w.Now < end {
		w.RunUntil(w.Now + time.Millisecond)
		if a := w.ActiveMember(); a != who {
			t.Fatalf("member %d should serve throughout, but %d serves at %v", who, a, w.Now)
		}
	}
}

func TestPairFrozenMainIsTakenOverAfterPeerTimeout(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	w.Pause(P)
	took := waitFor(t, w, P, S, 10*time.Second)
	// The backup's grant to the main binds it for GrantHold; the Lease
	// shows no marked write, so nothing else is waited for.
	if bound := w.Cfg.GrantHold() + 300*time.Millisecond; took > bound {
		t.Fatalf("takeover took %v, want at most %v", took, bound)
	}
	t.Logf("frozen main: the backup serves %v after the freeze", took)
	// Resumed, the main (same incarnation, no quiet period) takes the role
	// back at once; the world's checks fail the test on any overlap.
	w.Resume(P)
	a, back := waitActive(t, w, S, 5*time.Second)
	if a != P || back > time.Second {
		t.Fatalf("the resumed main should serve again within 1 s, got %d after %v", a, back)
	}
	t.Logf("resumed main: serving again after %v", back)
}

func TestPairMainReturnsWithoutAGap(t *testing.T) {
	// A pair fails back as soon as the main can take the role (the API has
	// no failback delay for pairs); a restarted main first waits out its
	// quiet period.
	cfg := pairDefaults
	cfg.FailbackDelay = 0
	w := newPair(t, cfg)
	steady(t, w)
	w.Crash(P)
	waitActive(t, w, P, 10*time.Second)
	w.Start(P)
	// Failback: the backup hands the role back once the main has been in
	// contact for FailbackDelay; nobody serves only for the handover.
	var gap, longest time.Duration
	end := w.Now + 20*time.Second
	for w.Now < end && w.ActiveMember() != P || gap > 0 {
		w.RunUntil(w.Now + time.Millisecond)
		switch a := w.ActiveMember(); {
		case a < 0:
			gap += time.Millisecond
			longest = max(longest, gap)
		case a == P:
			gap = 0
			end = w.Now
		default:
			gap = 0
		}
		if w.Now >= end+20*time.Second {
			break
		}
	}
	if w.ActiveMember() != P {
		t.Fatal("the main did not take the role back")
	}
	if longest > time.Second {
		t.Fatalf("failback left clients without service for %v, want at most 1 s", longest)
	}
	t.Logf("failback: no service for %v", longest)
}

func TestPairPartitionBetweenMembersKeepsTheMainServing(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	cut(w, P, S)
	// The main serves on marked Lease writes; the backup sees them and
	// stays out.
	alwaysActive(t, w, P, 60*time.Second)
	w.Heal()
	alwaysActive(t, w, P, 30*time.Second)
}

func TestPairMainKeepsServingWhileTheBackupIsDown(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	w.Crash(S)
	alwaysActive(t, w, P, 2*time.Minute)
	w.Start(S)
	alwaysActive(t, w, P, time.Minute)
}

func TestPairMainCutOffFromBackupAndStoreStopsAndIsReplaced(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	cut(w, P, S)
	w.SetStore(P, false)
	took := waitFor(t, w, P, S, 15*time.Second)
	t.Logf("main cut off from backup and API server: the backup serves after %v", took)
}

func TestPairFrozenMainThatServedOnTheLeaseIsTakenOverOnceItsWriteRanOut(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	// The main serves on marked writes (cut off from the backup), then
	// freezes: the backup waits for the last write's ServeFor.
	cut(w, P, S)
	w.RunUntil(w.Now + 10*time.Second)
	w.Pause(P)
	w.Heal()
	took := waitFor(t, w, P, S, 30*time.Second)
	if min := w.Cfg.LeaseServe() - w.Cfg.PeerTimeout; took < min {
		t.Fatalf("took over after %v, before the main's marked write (%v) can have run out", took, w.Cfg.LeaseServe())
	}
	t.Logf("frozen main on marked writes: the backup serves after %v", took)
}

// TestPairIsQuietAtRest counts the Lease requests of a steady pair: the
// holder renews every RenewInterval, the backup reads as often.
func TestPairIsQuietAtRest(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	w.RunUntil(w.Now + time.Minute)
	before := w.Store.Requests
	w.RunUntil(w.Now + 10*time.Minute)
	perMinute := float64(w.Store.Requests-before) / 10
	if perMinute > 6 {
		t.Fatalf("a steady pair makes %.1f Lease requests a minute, want at most 6", perMinute)
	}
	if w.ActiveMember() != P {
		t.Fatal("the main should serve")
	}
	t.Logf("steady pair: %.1f Lease requests a minute", perMinute)
}

func TestPairSimulation(t *testing.T) {
	n := *seedsFlag / 5
	if testing.Short() {
		n /= 10
	}
	repro := func(seed int64) string {
		return fmt.Sprintf("go test ./pkg/election/sim -run 'TestPairSimulation$' -seed=%d -v", seed)
	}
	recoveries := simulate(t, n, RandomPairRun, repro)
	if recoveries == nil {
		return
	}
	t.Logf("%d pair seeds; recovery after faults: median %v, max %v", n, recoveries[len(recoveries)/2], recoveries[len(recoveries)-1])
}

// TestPairTakeoverFigures prints a pair's takeover figures (make
// bench-election): crash and freeze of the main, a planned switchover.
func TestPairTakeoverFigures(t *testing.T) {
	n := *figuresFlag
	if testing.Short() {
		n = 20
	}
	kinds := []faultKind{
		{"crash of the main", func(w *World) { w.Crash(P) }},
		{"freeze of the main", func(w *World) { w.Pause(P) }},
		{"planned switchover", func(w *World) { w.SwapRoles(P, S) }}, // spec.preferredSide: backup
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-22s %10s %10s %10s   (backup pair, %d seeds, peerTimeout %v)\n", "no service after", "median", "p99", "max", n, election.DefaultPeerTimeout)
	newWorld := func(seed int64) *World { return NewPair(seed, pairDefaults, lan, false) }
	takeoverFigures(t, &table, n, newWorld, 20*time.Second, [2]string{"main", "backup"}, kinds)
	t.Logf("pair takeover figures (simulated time, 1 ms resolution):\n%s", table.String())
}

// TestPairPreferredSideEditMovesTheRole: a planned switchover of a pair is
// an edit of its preferred side (primary and secondary swap); the holder
// hands over at once and, with Fixed roles, the role stays there.
func TestPairPreferredSideEditMovesTheRole(t *testing.T) {
	w := newPair(t, pairDefaults)
	steady(t, w)
	for _, to := range []int{S, P} {
		from := 1 - to
		at := w.Now
		w.SwapRoles(P, S)
		took := waitFor(t, w, from, to, 5*time.Second)
		if took > time.Second {
			t.Fatalf("switchover took %v", took)
		}
		t.Logf("switchover to %s: serving after %v", w.Members[to].Name, w.Now-at)
		alwaysActive(t, w, to, time.Minute)
	}
}
