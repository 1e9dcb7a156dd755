// Package boottime reads the node's CLOCK_BOOTTIME, which every process on a
// node shares, which never goes back, and which keeps counting while a
// process is stopped and while the system is suspended (CLOCK_MONOTONIC
// stops then). The member agent and its license server agree on serve
// deadlines through it: a deadline on this clock does not move when the
// process that set it is delayed, frozen or suspended.
package boottime

import (
	"time"

	"golang.org/x/sys/unix"
)

// Now returns CLOCK_BOOTTIME in nanoseconds.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic("CLOCK_BOOTTIME unavailable: " + err.Error())
	}
	return ts.Nano()
}

// Since returns CLOCK_BOOTTIME as a Duration: a clock reading for the
// election's state machine.
func Since() time.Duration { return time.Duration(Now()) }
