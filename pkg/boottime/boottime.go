// Package boottime reads the clock on which a license server's serve
// deadline is expressed: CLOCK_BOOTTIME of the node, in nanoseconds.
//
// The agent and its license server are two processes in one pod; they agree
// on a deadline ("serve until instant T") by reading the same clock, so the
// deadline does not move however long the request carrying it takes, or if
// the agent is stopped between computing and sending it. CLOCK_BOOTTIME is
// shared by every process on a node (containers share the kernel's), never
// goes backwards, is not set by NTP or an administrator, and keeps counting
// while a process is stopped (SIGSTOP, a cgroup freeze) and while the whole
// system is suspended. CLOCK_MONOTONIC stops during suspend: a deadline on it
// would be extended by the length of the suspend, letting a server that
// wakes up serve past the moment its peers took over.
//
// On other systems than Linux, Now falls back to a clock local to the
// process (it does not count suspend and is not shared with other
// processes); it is enough for programs that only build requests or read
// answers, such as clients and the kubectl plugin, but a supervised server
// needs Linux.
package boottime

import "time"

// Since returns Now as a Duration: the clock reading the election's driver
// runs on, so that its deadlines are CLOCK_BOOTTIME instants.
func Since() time.Duration { return time.Duration(Now()) }
