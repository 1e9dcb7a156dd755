package sim

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/licenseha/licenseha/pkg/election"
)

// Outcome summarises one randomized run.
type Outcome struct {
	Seed     int64
	Config   election.Config
	Failures []string
	Trace    string
	// Recovery is how long after the faults stopped service returned.
	Recovery time.Duration
}

// RandomRun runs one seeded scenario: a fault phase with random crashes,
// restarts, pauses, graceful shutdowns, switchovers, partitions (one- and
// two-way, between members and between members and the store), message loss
// and long delays, with every member's clock at its own rate; then a calm
// phase in which everything is healed and service must return within
// RecoveryBound and, with automatic failback, end up on the primary.
//
// Besides the per-step safety checks of World it checks at every decision to
// fail back that the policy is Automatic and the primary has been up for
// FailbackDelay.
func RandomRun(seed int64, trace bool) Outcome { return randomRun(seed, trace, false) }

// RandomPairRun is RandomRun for a backup pair: two members (slot T stays
// empty), faults among them and between them and the store, and the edits
// a pair's spec allows (timing, failback policy).
func RandomPairRun(seed int64, trace bool) Outcome { return randomRun(seed, trace, true) }

func randomRun(seed int64, trace, pair bool) Outcome {
	rng := rand.New(rand.NewSource(seed))
	cfg := election.Config{PeerTimeout: []time.Duration{time.Second, 2 * time.Second}[rng.Intn(2)]}
	cfg.HeartbeatInterval = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, cfg.PeerTimeout / 2}[rng.Intn(3)]
	cfg.RenewInterval = renewInterval(rng, cfg.PeerTimeout)
	cfg.Failback = election.FailbackAutomatic
	if rng.Intn(4) == 0 {
		cfg.Failback = election.FailbackManual
	}
	cfg.FailbackDelay = []time.Duration{0, time.Second, 3 * time.Second, 6 * time.Second}[rng.Intn(4)]
	net := Network{MinDelay: 100 * time.Microsecond, MaxDelay: 5 * time.Millisecond,
		LongDelay: 2 * cfg.PeerTimeout}
	var w *World
	if pair {
		w = NewPair(rng.Int63(), cfg, net, trace)
	} else {
		w = New(rng.Int63(), cfg, net, trace)
	}
	if rng.Intn(2) == 0 {
		// Slow, failed, lost and reordered requests to the servers.
		w.Server = ServerFaults{MaxDelay: 2 * time.Millisecond, SlowProb: 0.05, SlowDelay: 400 * time.Millisecond,
			FailProb: 0.02, LostProb: 0.02}
	}
	cfg = w.Cfg
	rho := cfg.MaxClockDrift
	for _, m := range w.Members {
		switch rng.Intn(3) {
		case 0:
			m.Rate = 1 - rho
		case 1:
			m.Rate = 1 + rho
		default:
			m.Rate = 1 - rho + 2*rho*rng.Float64()
		}
	}
	out := Outcome{Seed: seed, Config: cfg}
	w.OnHandover = func(w *World, i int, st election.Status) {
		if st.HandoverReason != election.ReasonFailback {
			return
		}
		if w.Members[i].Driver.Machine().Config().Failback == election.FailbackManual {
			w.fail("failback with policy Manual")
		}
		// The secondary may be hearing an incarnation of the primary that
		// has just died (its heartbeats can arrive up to 2·PT late): one
		// that lived for the delay must have stopped recently at most.
		pi := w.IndexOf(st.HandoverTo)
		if pi < 0 {
			return
		}
		p := w.Members[pi]
		lives := p.Lives
		if p.Alive {
			lives = append(lives, [2]time.Duration{p.Up, w.Now})
		}
		longest := time.Duration(0)
		for _, l := range lives {
			if l[1] >= w.Now-4*cfg.PeerTimeout {
				longest = max(longest, l[1]-l[0])
			}
		}
		if float64(longest) < float64(w.Cfg.FailbackDelay)/(1+rho) {
			w.fail("failback when the primary had been up only %v (delay %v)", longest, cfg.FailbackDelay)
		}
	}
	for i := range w.Members {
		w.Start(i)
	}

	// Fault phase.
	faultEnd := time.Duration(5+rng.Intn(16)) * time.Second
	calm := false // set once the fault phase is over: pending restarts are void
	times := make([]time.Duration, 2+rng.Intn(12))
	for k := range times {
		times[k] = time.Second + time.Duration(rng.Int63n(int64(faultEnd-time.Second)))
	}
	slices.Sort(times)
	for _, at := range times {
		w.RunUntil(at)
		injectFault(w, rng, &calm)
	}
	w.RunUntil(faultEnd)

	// Calm phase: heal everything, every member gets the current spec;
	// maybe one member stays down for good.
	calm = true
	w.Net.Loss, w.Net.LongDelayProb = 0, 0
	w.Server = ServerFaults{MaxDelay: w.Server.MaxDelay}
	w.Heal()
	w.Deliver()
	down := -1
	if rng.Intn(3) == 0 {
		down = rng.Intn(w.slots())
		w.down[down] = true
	}
	for i, m := range w.Members {
		switch {
		case i == down:
			w.Crash(i)
		case m.ShuttingDown: // it exits within a second: bring it back then
			w.After(time.Second+time.Millisecond, func() { w.Start(i) })
		case m.Paused:
			w.Resume(i)
		case !m.Alive:
			w.Start(i)
		}
	}
	cfg = w.Cfg
	out.Config = cfg
	bound := RecoveryBound(cfg)
	step := 10 * time.Millisecond
	recovered := false
	for t := faultEnd; t <= faultEnd+bound; t += step {
		w.RunUntil(t)
		if w.ActiveMember() >= 0 {
			out.Recovery, recovered = t-faultEnd, true
			break
		}
	}
	if !recovered {
		w.fail("no member serves %v after the faults stopped", bound)
	}
	// Once recovered, without faults, service may only blink for
	// handovers (failback).
	end := faultEnd + bound + time.Duration(float64(cfg.FailbackDelay)*(1+rho)) + 3*time.Second
	var gapStart time.Duration = -1
	for t := faultEnd + bound; t <= end; t += step {
		w.RunUntil(t)
		if w.ActiveMember() >= 0 {
			gapStart = -1
		} else if gapStart < 0 {
			gapStart = t
		} else if t-gapStart > time.Second {
			w.fail("service gap of %v without faults", t-gapStart)
			break
		}
	}
	if a, primary := w.ActiveMember(), w.IndexOf(w.Cfg.Primary); cfg.Failback == election.FailbackAutomatic && primary >= 0 && down != primary && a != primary {
		w.fail("automatic failback did not return the role to the primary (active: %d)", a)
	}
	out.Failures, out.Trace = w.Failures(), w.Trace()
	return out
}

// renewInterval draws the Lease renewal interval: the quiet default or a
// short one.
func renewInterval(rng *rand.Rand, pt time.Duration) time.Duration {
	return []time.Duration{election.DefaultRenewInterval, pt / 2, 5 * time.Second}[rng.Intn(3)]
}

// RecoveryBound is how soon after faults stop service must return: a
// restarted member's quiet period, a takeover's peer timeout and the
// grant-hold of the former holder's voters, plus slack for heartbeats and
// Lease calls.
func RecoveryBound(cfg election.Config) time.Duration {
	cfg = cfg.WithDefaults()
	b := 2*cfg.PeerTimeout + cfg.QuietPeriod() + 4*cfg.HeartbeatInterval + cfg.PeerTimeout + time.Second
	if cfg.Pair() {
		// A holder cut off from its peer serves on marked Lease writes
		// (LeaseServe, as long as the longest timing edit allows); its
		// successor waits for the last one to run out.
		b += time.Duration(float64(4*max(cfg.PeerTimeout, cfg.PriorPeerTimeout, 3*time.Second))*1.2) + cfg.PeerTimeout
	}
	return b
}

func injectFault(w *World, rng *rand.Rand, calm *bool) {
	restart := func(i int) {
		if !*calm {
			w.Start(i)
		}
	}
	n := w.slots()
	i := rng.Intn(n)
	j := (i + 1 + rng.Intn(n-1)) % n
	dur := time.Duration(rng.Int63n(int64(8 * time.Second)))
	k := rng.Intn(10)
	if n == 2 && k == 4 {
		k = 3 // a pair member's only peer: a two-way partition
	}
	switch k {
	case 0:
		w.Crash(i)
		w.After(time.Duration(rng.Int63n(int64(6*time.Second))), func() { restart(i) })
	case 1:
		w.Pause(i)
		w.After(time.Duration(rng.Int63n(int64(5*time.Second))), func() { w.Resume(i) })
	case 2: // one-way partition
		w.SetLink(i, j, false)
		w.After(dur, func() { w.SetLink(i, j, true) })
	case 3: // two-way partition
		w.SetLink(i, j, false)
		w.SetLink(j, i, false)
		w.After(dur, func() { w.SetLink(i, j, true); w.SetLink(j, i, true) })
	case 4: // isolate a member from both peers
		for _, x := range []int{j, 3 - i - j} {
			w.SetLink(i, x, false)
			w.SetLink(x, i, false)
		}
		w.After(dur, func() {
			for _, x := range []int{j, 3 - i - j} {
				w.SetLink(i, x, true)
				w.SetLink(x, i, true)
			}
		})
	case 5:
		w.SetStore(i, false)
		w.After(dur, func() { w.SetStore(i, true) })
	case 6:
		w.Net.Loss = []float64{0, 0.01, 0.1, 0.3}[rng.Intn(4)]
		w.Net.LongDelayProb = []float64{0, 0.01, 0.05}[rng.Intn(3)]
	case 7:
		w.Shutdown(i)
		w.After(time.Second+time.Duration(rng.Int63n(int64(4*time.Second))), func() { restart(i) })
	case 8:
		switch rng.Intn(4) {
		case 0:
			w.Switchover(rng.Intn(n))
		case 1:
			// The license server crashes, or crash-loops for a while.
			w.CrashServer(i, []time.Duration{200 * time.Millisecond, time.Duration(rng.Int63n(int64(6 * time.Second)))}[rng.Intn(2)])
		default:
			randomEdit(w, rng, *calm)
		}
	default: // the store is unreachable for everyone
		for x := range 3 {
			w.SetStore(x, false)
		}
		w.After(dur, func() {
			for x := range 3 {
				w.SetStore(x, true)
			}
		})
	}
}

// Repro is the command that replays a seed with a trace.
func Repro(seed int64) string {
	return fmt.Sprintf("go test ./pkg/election/sim -run 'TestSimulation$' -seed=%d -v", seed)
}

// editDelays says when each member's agent sees an edit: mostly within a few
// hundred milliseconds; sometimes one member late, or not until the faults
// stop (it cannot reach the API server).
func editDelays(rng *rand.Rand) [3]time.Duration {
	var d [3]time.Duration
	for i := range d {
		d[i] = time.Duration(rng.Int63n(int64(300 * time.Millisecond)))
	}
	switch rng.Intn(4) {
	case 0:
		d[rng.Intn(3)] = 2*time.Second + time.Duration(rng.Int63n(int64(6*time.Second)))
	case 1:
		d[rng.Intn(3)] = -1
	}
	return d
}

// randomEdit edits the spec as a user may: any permutation of the roles
// (promoting the tertiary, demoting the holder), renaming a member (the
// Lease holder included), or changing the timing.
func randomEdit(w *World, rng *rand.Rand, calm bool) {
	cfg := w.Cfg
	if cfg.Pair() {
		// A pair's spec: roles Fixed or Symmetric (failback automatic or
		// manual), the preferred side (a planned switchover swaps primary
		// and secondary) and timing; its members' names never change.
		switch rng.Intn(3) {
		case 0:
			cfg.Failback = []election.FailbackPolicy{election.FailbackAutomatic, election.FailbackManual}[rng.Intn(2)]
			w.Edit(cfg, editDelays(rng))
		case 1:
			cfg.Primary, cfg.Secondary = cfg.Secondary, cfg.Primary
			w.Edit(cfg, editDelays(rng))
		default:
			editTiming(w, rng, cfg)
		}
		return
	}
	switch rng.Intn(4) {
	case 0, 1:
		ids := []election.MemberID{cfg.Primary, cfg.Secondary, cfg.Tertiary}
		rng.Shuffle(3, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		cfg.Primary, cfg.Secondary, cfg.Tertiary = ids[0], ids[1], ids[2]
		w.Edit(cfg, editDelays(rng))
	case 2:
		if calm {
			return
		}
		i := rng.Intn(3)
		w.renames++
		name := election.MemberID(fmt.Sprintf("%s%d", strings.TrimRight(string(w.Members[i].Name), "0123456789"), w.renames))
		w.Rename(i, name, editDelays(rng), time.Duration(rng.Int63n(int64(1500*time.Millisecond))))
	default:
		editTiming(w, rng, cfg)
	}
}

// editTiming changes the group's timing.
func editTiming(w *World, rng *rand.Rand, cfg election.Config) {
	old := cfg.PeerTimeout
	cfg.PeerTimeout = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}[rng.Intn(3)]
	cfg.HeartbeatInterval = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, cfg.PeerTimeout / 2}[rng.Intn(3)]
	cfg.RenewInterval = renewInterval(rng, cfg.PeerTimeout)
	// The operator keeps the longest recent peer timeout in the spec,
	// so that restarted members' quiet periods cover it.
	cfg.PriorPeerTimeout = max(cfg.PriorPeerTimeout, old, cfg.PeerTimeout)
	w.Edit(cfg, editDelays(rng))
}
