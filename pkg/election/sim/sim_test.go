package sim

import (
	"flag"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

var (
	seedFlag  = flag.Int64("seed", -1, "run only this simulation seed, with a trace")
	seedsFlag = flag.Int("seeds", 10000, "number of simulation seeds (-short: a tenth)")
	baseFlag  = flag.Int64("seedbase", 0, "first simulation seed")
)

// TestSimulation runs thousands of seeded fault scenarios and checks on every
// step that no two members serve at once and the tertiary never serves, that
// service returns once the faults stop, and that failback respects its
// policy and delay.
func TestSimulation(t *testing.T) {
	n := *seedsFlag
	if testing.Short() {
		n /= 10
	}
	recoveries := simulate(t, n, RandomRun, Repro)
	if recoveries == nil {
		return
	}
	t.Logf("%d seeds; recovery after faults: median %v, p99 %v, max %v", n,
		recoveries[len(recoveries)/2], recoveries[len(recoveries)*99/100], recoveries[len(recoveries)-1])
}

// simulate runs n seeded scenarios of run, or with -seed only that one with
// its trace, and fails the test for each failing seed (stopping after ten),
// saying how to reproduce it (repro). It returns the recoveries after
// faults, sorted; nil with -seed.
func simulate(t *testing.T, n int, run func(seed int64, trace bool) Outcome, repro func(seed int64) string) []time.Duration {
	t.Helper()
	if *seedFlag >= 0 {
		o := run(*seedFlag, true)
		t.Logf("config: %+v\ntrace:\n%s", o.Config, o.Trace)
		for _, f := range o.Failures {
			t.Error(f)
		}
		return nil
	}
	var recoveries []time.Duration
	failed := 0
	for _, o := range runSeeds(n, run) {
		recoveries = append(recoveries, o.Recovery)
		if len(o.Failures) > 0 {
			failed++
			t.Errorf("seed %d: %s\n  reproduce: %s", o.Seed, o.Failures[0], repro(o.Seed))
			if failed >= 10 {
				t.Fatal("stopping after 10 failing seeds")
			}
		}
	}
	slices.Sort(recoveries)
	return recoveries
}

// runSeeds runs n seeded scenarios from -seedbase on every core (each run
// is a pure function of its seed), without traces.
func runSeeds(n int, run func(seed int64, trace bool) Outcome) []Outcome {
	outcomes := make([]Outcome, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				outcomes[k] = run(*baseFlag+int64(k), false)
				outcomes[k].Trace = ""
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
	return outcomes
}
