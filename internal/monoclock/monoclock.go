// Package monoclock reads the node's CLOCK_MONOTONIC, which every process on
// a node shares and which keeps counting while a process is stopped. The
// agent and its license server, two processes in one pod, agree on
// deadlines through it: a deadline on this clock does not move when the
// process that set it is delayed or frozen.
package monoclock

import "golang.org/x/sys/unix"

// Now returns CLOCK_MONOTONIC in nanoseconds.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("CLOCK_MONOTONIC unavailable: " + err.Error())
	}
	return ts.Nano()
}
