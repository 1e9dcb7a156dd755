package agent

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
)

// reapOrphans makes the agent the reaper of its server's orphans: vendor
// servers fork helpers and daemonise, and whatever they leave behind is
// re-parented to the agent (PID 1 of its container, and a child
// sub-reaper otherwise). Without this their zombies pile up until the pid
// limit stops the server from forking. It reaps, on every SIGCHLD and
// every second, the zombie children the agent did not start itself: those
// in another process group than the agent's that the supervisor does not
// wait for (the server process itself, the services).
func reapOrphans(ctx context.Context, managed func(pid int) bool, log logr.Logger) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Info("Cannot become the sub-reaper of the server's orphans", "error", err.Error())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	self, pgid := os.Getpid(), syscall.Getpgrp()
	for {
		if n := len(reapZombies(self, pgid, managed)); n > 0 {
			log.V(1).Info("Reaped orphaned processes of the server", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-t.C:
		}
	}
}

// reapZombies reaps the zombie children of self outside process group
// pgid for which managed is false, and returns their pids.
func reapZombies(self, pgid int, managed func(pid int) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var reaped []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, ppid, pgrp, ok := procStat(pid)
		if !ok || state != 'Z' || ppid != self || pgrp == pgid || managed(pid) {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			reaped = append(reaped, pid)
		}
	}
	return reaped
}

// procStat reads a process's state, parent and process group from
// /proc/<pid>/stat (the command name may hold spaces and parentheses: the
// fields follow the last ')').
func procStat(pid int) (state byte, ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return 0, 0, 0, false
	}
	return f[0][0], ppid, pgrp, true
}
