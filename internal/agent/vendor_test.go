package agent

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/election"
)

// standIn is a stand-in vendor server as a real process: it forks a child
// (whose pid it writes to dir/child.pid), writes a state file every 50 ms
// and ignores SIGTERM (as its child does), as vendor servers that flush
// their state slowly on shutdown do.
func standIn(dir string) []string {
	return []string{"sh", "-c", `trap '' TERM; sleep 600 & echo $! > "$0/child.pid"; n=0; while :; do n=$((n+1)); echo $n > "$0/state"; sleep 0.05; done`, dir}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// TestFenceStopsAVendorServerThatIgnoresSIGTERMByItsDeadline: a fence of
// a vendor server (stop-to-fence) that ignores SIGTERM kills it, its child
// and the services that run only while the member serves, no later than
// the serve deadline another member may start at; a service marked Always
// keeps running. Before, the fence waited its full 5 s grace after SIGTERM,
// serving past the deadline.
func TestFenceStopsAVendorServerThatIgnoresSIGTERMByItsDeadline(t *testing.T) {
	dir := t.TempDir()
	helperDir := t.TempDir()
	a := &Agent{opts: Options{GroupKind: group.KindTriad, StopToFence: true}, log: logr.Discard(),
		procs: newProcesses(logr.Discard(), standIn(dir), []group.Service{
			{Name: "helper", Command: standIn(helperDir)},
			{Name: "console", Command: []string{"sleep", "600"}, Always: true},
		})}
	a.control = &serverControl{a: a}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.procs.hold(0)
	go func() { a.procs.run(ctx, 100*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	go a.control.watchdog(ctx)

	console := a.procs.services[1].sup
	waitFor(t, "the Always service runs while the member does not serve", func() bool { return console.Status().Running })
	if a.procs.server.Status().Running || a.procs.services[0].sup.Status().Running {
		t.Fatal("the server or an Active service runs before the member serves")
	}

	until := time.Duration(boottime.Now()) + 800*time.Millisecond
	if err := a.control.Apply(ctx, election.ServerCommand{ServerState: election.ServerState{Mode: election.Serve, Until: until}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server and its helper serve", func() bool {
		return a.procs.server.Status().Running && a.procs.services[0].sup.Status().Running && readPid(dir) > 0
	})
	child := readPid(dir)

	start := time.Now()
	if err := a.control.Apply(ctx, election.ServerCommand{ServerState: election.ServerState{Mode: election.Fence}}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	deadlineLeft := time.Duration(int64(until) - boottime.Now())
	if a.procs.server.Status().Running || a.procs.services[0].sup.Status().Running {
		t.Fatal("the fence returned with the server or its helper running")
	}
	if deadlineLeft < -300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("the fence took %v and ended %v after the serve deadline (the grace is %v)", took, -deadlineLeft, fenceGrace)
	}
	waitFor(t, "the server's forked child is gone", func() bool { return !alive(child) })
	if !console.Status().Running {
		t.Fatal("the Always service was stopped by the fence")
	}
	// Stopped, it writes nothing more.
	before, _ := os.ReadFile(filepath.Join(dir, "state"))
	time.Sleep(200 * time.Millisecond)
	if after, _ := os.ReadFile(filepath.Join(dir, "state")); string(after) != string(before) {
		t.Fatal("the fenced server still writes its state")
	}
}

func readPid(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "child.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// TestHoldWithoutGraceKillsAStopInProgress: a hold that started with a
// grace (a fence) and a hold without one (the serve deadline's watchdog)
// meet: the second kills the process at once. Before, it returned at once
// with the process still running.
func TestHoldWithoutGraceKillsAStopInProgress(t *testing.T) {
	dir := t.TempDir()
	s := &Supervisor{Command: standIn(dir), Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, 100*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the server runs", func() bool { return s.Status().Running })
	go s.Hold(time.Minute)
	waitFor(t, "the first hold is on", func() bool { return s.heldChan() != nil })
	start := time.Now()
	s.Hold(0)
	if s.Status().Running {
		t.Fatal("Hold(0) returned with the server running")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Hold(0) took %v", took)
	}
}

// TestHoldLeavesNoChildBehind: a server that exits soon after SIGTERM
// while its forked child ignores SIGTERM leaves nothing running once the
// hold returns. Before, the child lived on beside a fenced member.
func TestHoldLeavesNoChildBehind(t *testing.T) {
	dir := t.TempDir()
	script := `trap 'exit 0' TERM; sh -c 'trap "" TERM; while :; do sleep 0.05; done' & echo $! > "$0/child.pid"; while :; do sleep 0.05; done`
	s := &Supervisor{Command: []string{"sh", "-c", script, dir}, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, 100*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the server and its child run", func() bool { return s.Status().Running && readPid(dir) > 0 })
	child := readPid(dir)
	s.Hold(5 * time.Second)
	waitFor(t, "the child is gone", func() bool { return !alive(child) })
}

// TestHoldRightAfterStartKeepsItStopped: a hold that meets the first start
// (the agent holds a vendor server as it starts supervising) leaves nothing
// running. Before, a start in progress finished after the hold and the
// server ran although held: a standby served beside the active.
func TestHoldRightAfterStartKeepsItStopped(t *testing.T) {
	for i := range 30 {
		s := &Supervisor{Command: []string{"sleep", "60"}, Log: logr.Discard()}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = s.Run(ctx, 100*time.Millisecond); close(done) }()
		time.Sleep(time.Duration(i%6) * 200 * time.Microsecond)
		s.Hold(0)
		time.Sleep(30 * time.Millisecond)
		running := s.Status().Running
		cancel()
		<-done
		if running {
			t.Fatalf("round %d: the server runs although held", i)
		}
	}
}
