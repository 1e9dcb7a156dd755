package boottime

import (
	"testing"

	"golang.org/x/sys/unix"
)

// CLOCK_BOOTTIME is CLOCK_MONOTONIC plus the time the system spent
// suspended: read after it, it is never behind.
func TestNowIsNotBehindMonotonic(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	mono := ts.Nano()
	if now := Now(); now < mono {
		t.Fatalf("CLOCK_BOOTTIME %d is behind CLOCK_MONOTONIC %d read before it", now, mono)
	}
}
