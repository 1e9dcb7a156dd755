package sim

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/election"
)

var figuresFlag = flag.Int("figures", 200, "seeds per takeover figure")

// TestTakeoverFigures measures, at the API defaults on a LAN with clocks
// skewed up to the configured bound, how long clients are without service
// when the active crashes, on a planned switchover and on a graceful
// shutdown. It prints the figures (make bench-election) and checks only that
// every handover reached the secondary.
func TestTakeoverFigures(t *testing.T) {
	n := *figuresFlag
	if testing.Short() {
		n = 20
	}
	kinds := []faultKind{
		{"crash of the active", func(w *World) { w.Crash(P) }},
		{"planned switchover", func(w *World) { w.Switchover(S) }},
		{"graceful shutdown", func(w *World) { w.Shutdown(P) }},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-22s %10s %10s %10s   (%d seeds, peerTimeout %v, heartbeat %v, drift ±%.0f%%)\n",
		"no service after", "median", "p99", "max", n, election.DefaultPeerTimeout,
		election.DefaultHeartbeatInterval, 100*election.DefaultMaxClockDrift)
	newWorld := func(seed int64) *World { return New(seed, defaults, lan, false) }
	takeoverFigures(t, &table, n, newWorld, 10*time.Second, [2]string{"primary", "secondary"}, kinds)
	t.Logf("takeover figures (simulated time, 1 ms resolution):\n%s", table.String())
}

// faultKind is one fault a takeover figure measures.
type faultKind struct {
	name  string
	fault func(w *World)
}

// takeoverFigures writes a line to table for each kind of fault: over n
// worlds newWorld(seed) whose members' clocks run at rates skewed up to the
// configured bound, P serves, the fault strikes, and S must serve within
// the given time; the line tells how long clients were without service
// (median, p99, max). names are P's and S's in failure messages.
func takeoverFigures(t *testing.T, table *strings.Builder, n int, newWorld func(seed int64) *World, within time.Duration, names [2]string, kinds []faultKind) {
	t.Helper()
	for _, k := range kinds {
		var gaps []time.Duration
		for seed := range int64(n) {
			w := newWorld(seed)
			rho := w.Cfg.MaxClockDrift
			for _, m := range w.Members {
				m.Rate = 1 - rho + 2*rho*w.Rand().Float64()
			}
			for i := range w.slots() {
				w.Start(i)
			}
			w.RunUntil(5*time.Second + time.Duration(w.Rand().Int63n(int64(time.Second))))
			if w.ActiveMember() != P {
				t.Fatalf("%s, seed %d: the %s is not active", k.name, seed, names[0])
			}
			k.fault(w)
			// Service stops when the primary's server stops, at the latest
			// at its deadline; count from the fault, which is conservative.
			start := w.Now
			for w.ActiveMember() != S && w.Now-start < within {
				w.RunUntil(w.Now + time.Millisecond)
			}
			if w.ActiveMember() != S {
				t.Fatalf("%s, seed %d: the %s did not take over", k.name, seed, names[1])
			}
			for _, f := range w.Failures() {
				t.Fatalf("%s, seed %d: %s", k.name, seed, f)
			}
			gaps = append(gaps, w.Now-start)
		}
		slices.Sort(gaps)
		fmt.Fprintf(table, "%-22s %10v %10v %10v\n", k.name, gaps[len(gaps)/2], gaps[len(gaps)*99/100], gaps[len(gaps)-1])
	}
}
