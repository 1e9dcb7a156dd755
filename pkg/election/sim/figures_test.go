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
	kinds := []struct {
		name  string
		fault func(w *World)
	}{
		{"crash of the active", func(w *World) { w.Crash(P) }},
		{"planned switchover", func(w *World) { w.Switchover(S) }},
		{"graceful shutdown", func(w *World) { w.Shutdown(P) }},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-22s %10s %10s %10s   (%d seeds, peerTimeout %v, heartbeat %v, drift ±%.0f%%)\n",
		"no service after", "median", "p99", "max", n, election.DefaultPeerTimeout,
		election.DefaultHeartbeatInterval, 100*election.DefaultMaxClockDrift)
	for _, k := range kinds {
		var gaps []time.Duration
		for seed := range int64(n) {
			w := New(seed, defaults, lan, false)
			rho := w.Cfg.MaxClockDrift
			for _, m := range w.Members {
				m.Rate = 1 - rho + 2*rho*w.Rand().Float64()
			}
			for i := range w.Members {
				w.Start(i)
			}
			w.RunUntil(5*time.Second + time.Duration(w.Rand().Int63n(int64(time.Second))))
			if w.ActiveMember() != P {
				t.Fatalf("%s, seed %d: the primary is not active", k.name, seed)
			}
			k.fault(w)
			// Service stops when the primary's server stops, at the latest
			// at its deadline; count from the fault, which is conservative.
			start := w.Now
			for w.ActiveMember() != S && w.Now-start < 10*time.Second {
				w.RunUntil(w.Now + time.Millisecond)
			}
			if w.ActiveMember() != S {
				t.Fatalf("%s, seed %d: the secondary did not take over", k.name, seed)
			}
			for _, f := range w.Failures() {
				t.Fatalf("%s, seed %d: %s", k.name, seed, f)
			}
			gaps = append(gaps, w.Now-start)
		}
		slices.Sort(gaps)
		fmt.Fprintf(&table, "%-22s %10v %10v %10v\n", k.name, gaps[len(gaps)/2], gaps[len(gaps)*99/100], gaps[len(gaps)-1])
	}
	t.Logf("takeover figures (simulated time, 1 ms resolution):\n%s", table.String())
}
