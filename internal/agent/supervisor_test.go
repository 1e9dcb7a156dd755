package agent

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSupervisorRestartsAndHolds(t *testing.T) {
	s := &Supervisor{Command: []string{"sleep", "60"}, Log: logr.Discard(), MinBackoff: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, time.Second); close(done) }()

	waitFor(t, "the server runs", func() bool { return s.Status().Running })
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()

	// A crash is restarted with back-off.
	s.Signal(9)
	waitFor(t, "the server is restarted", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.running && s.cmd.Process.Pid != pid
	})
	if st := s.Status(); st.Restarts != 1 || st.LastExitCode != -1 {
		t.Fatalf("status after a kill = %+v, want one restart and exit code -1", st)
	}

	// Held: stopped and not restarted (a fenced vendor server).
	s.Hold(time.Second)
	if s.Status().Running {
		t.Fatal("the server still runs after Hold returned")
	}
	time.Sleep(200 * time.Millisecond)
	if s.Status().Running {
		t.Fatal("a held server was restarted")
	}
	s.Release()
	waitFor(t, "the released server runs again", func() bool { return s.Status().Running })

	cancel()
	<-done
	if s.Status().Running {
		t.Fatal("the server outlived the supervisor")
	}
}
