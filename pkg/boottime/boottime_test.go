package boottime

import (
	"testing"
	"time"
)

func TestNowAdvancesWithRealTime(t *testing.T) {
	first := Now()
	if first <= 0 {
		t.Fatalf("Now() = %d, want a positive instant", first)
	}
	start := time.Now()
	prev := first
	for range 1000 {
		n := Now()
		if n < prev {
			t.Fatalf("Now() went backwards: %d after %d", n, prev)
		}
		prev = n
	}
	time.Sleep(20 * time.Millisecond)
	elapsed := time.Since(start)
	got := time.Duration(Now() - first)
	// The two clocks run at the same rate while the test runs (no suspend
	// in between); allow for scheduling between the readings.
	if got < 20*time.Millisecond || got > elapsed+50*time.Millisecond {
		t.Fatalf("Now() advanced %v over %v of real time, want about the same", got, elapsed)
	}
}
