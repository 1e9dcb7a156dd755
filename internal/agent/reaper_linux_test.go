package agent

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// zombiesOf lists the zombie children of self.
func zombiesOf(self int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ppid, _, ok := procStat(pid); ok && st == 'Z' && ppid == self {
			out = append(out, pid)
		}
	}
	return out
}

// TestReapsTheServersOrphans: a server that daemonises a helper (the helper
// outlives its parent and is re-parented to the agent) leaves a zombie
// behind unless the agent reaps it; the server process itself, which the
// supervisor waits for, is never reaped behind its back.
func TestReapsTheServersOrphans(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a sub-reaper: %v", err)
	}
	self, pgid := os.Getpid(), syscall.Getpgrp()

	// The "server": forks a helper that outlives it, then exits.
	srv := exec.Command("sh", "-c", "sleep 0.2 & exit 0")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Run(); err != nil {
		t.Fatal(err)
	}
	// A managed child that has exited but not been waited for yet.
	managed := exec.Command("sh", "-c", "exit 3")
	managed.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := managed.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // the helper has exited: a zombie of ours
	if len(zombiesOf(self)) < 2 {
		t.Fatalf("want the orphan and the managed child as zombies, got %v", zombiesOf(self))
	}
	reaped := reapZombies(self, pgid, func(pid int) bool { return pid == managed.Process.Pid })
	if len(reaped) != 1 || reaped[0] == managed.Process.Pid {
		t.Fatalf("reaped %v, want exactly the orphaned helper", reaped)
	}
	err := managed.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("the managed child's exit status was taken from its owner: %v", err)
	}
	if z := zombiesOf(self); len(z) != 0 {
		t.Fatalf("zombies left: %v", z)
	}
}
