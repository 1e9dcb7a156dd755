package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Supervisor runs the license server as a child process: it starts it,
// restarts it with back-off when it exits, forwards signals, and stops it
// with SIGTERM then SIGKILL.
type Supervisor struct {
	Command []string
	Log     logr.Logger
	// Hide, when set, is a directory the server must not reach (the
	// service-account token): the server is started through `agent
	// sandbox` (see SandboxExec), and OnSandbox learns, at every start,
	// whether it could be hidden.
	Hide      string
	OnSandbox func(hidden bool, detail string)
	// MinBackoff and MaxBackoff bound the restart delay; it doubles after
	// every exit that follows a short run and resets after a long one.
	MinBackoff, MaxBackoff time.Duration

	// spawn is held from starting the server until it is recorded, so
	// that the orphan reaper never mistakes it for an orphan.
	spawn   sync.Mutex
	mu      sync.Mutex
	cmd     *exec.Cmd
	running bool
	// held keeps the server stopped (a vendor server that is fenced by not
	// running); released wakes Run up to start it.
	held     bool
	released chan struct{}
	restarts int
	lastExit int
	exited   chan struct{}
}

// errHeld: the process was not started because it is held.
var errHeld = errors.New("held")

// Status is what the supervisor knows about the server process.
type Status struct {
	Running  bool
	Restarts int
	// LastExitCode is the exit code of the last run, -1 when it was killed
	// by a signal.
	LastExitCode int
}

// waitsFor says whether pid is the server process, which the supervisor
// itself waits for.
func (s *Supervisor) waitsFor(pid int) bool {
	s.spawn.Lock()
	defer s.spawn.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil && s.cmd.Process != nil && s.cmd.Process.Pid == pid
}

// Status returns the process status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Running: s.running, Restarts: s.restarts, LastExitCode: s.lastExit}
}

// Run starts the server and keeps it running until ctx ends, then stops it
// within grace.
func (s *Supervisor) Run(ctx context.Context, grace time.Duration) error {
	if len(s.Command) == 0 {
		return errors.New("no server command given after --")
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = 200 * time.Millisecond
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 10 * time.Second
	}
	backoff := s.MinBackoff
	for {
		if ch := s.heldChan(); ch != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-ch:
			}
			continue
		}
		started := time.Now()
		if err := s.start(); errors.Is(err, errHeld) {
			continue
		} else if err != nil {
			s.Log.Error(err, "Starting the server failed", "command", s.Command[0])
		} else {
			select {
			case <-ctx.Done():
				s.stop(grace)
				return nil
			case <-s.exited:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if s.heldChan() != nil {
			continue // stopped on purpose, not a crash
		}
		if time.Since(started) > time.Minute {
			backoff = s.MinBackoff
		}
		st := s.Status()
		s.Log.Info("Server exited; restarting", "exitCode", st.LastExitCode, "restarts", st.Restarts, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.MaxBackoff)
	}
}

func (s *Supervisor) start() error {
	argv := s.Command
	var statusR, statusW *os.File
	if s.Hide != "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the agent binary for the sandbox: %w", err)
		}
		if statusR, statusW, err = os.Pipe(); err != nil {
			return err
		}
		// The status pipe is the child's fd 3 (the first of ExtraFiles).
		argv = append([]string{self, "sandbox", "--hide=" + s.Hide, "--status-fd=3", "--"}, s.Command...)
	}
	s.spawn.Lock()
	defer s.spawn.Unlock()
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held {
		// Held between Run's check and here: Hold saw nothing running,
		// so nothing may start.
		if statusW != nil {
			statusR.Close()
			statusW.Close()
		}
		return errHeld
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	// Its own process group, so a stop reaches the server's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if statusW != nil {
		cmd.ExtraFiles = []*os.File{statusW}
	}
	err := cmd.Start()
	if statusW != nil {
		statusW.Close()
		if err != nil {
			statusR.Close()
		} else {
			go func() {
				st, ok := readSandboxStatus(statusR)
				statusR.Close()
				if ok && s.OnSandbox != nil {
					s.OnSandbox(st.hidden, st.detail)
				}
			}()
		}
	}
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	s.mu.Lock()
	if s.cmd != nil {
		s.restarts++
	}
	s.cmd, s.running, s.exited = cmd, true, exited
	s.mu.Unlock()
	s.Log.Info("Server started", "pid", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		s.mu.Lock()
		s.running, s.lastExit = false, code
		s.mu.Unlock()
		close(exited)
	}()
	return nil
}

// heldChan returns a channel closed on release while the server is held,
// nil otherwise.
func (s *Supervisor) heldChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held {
		return nil
	}
	return s.released
}

// Hold stops the server (SIGTERM, then SIGKILL after grace) and keeps it
// stopped until Release: how a vendor server without licenseha's admin API
// is fenced. It returns once the process is gone.
func (s *Supervisor) Hold(grace time.Duration) {
	// A start in progress completes (and is seen running) before the hold
	// is set, or sees the hold and does not start: never a process that
	// runs although held.
	s.spawn.Lock()
	s.mu.Lock()
	s.spawn.Unlock()
	if s.held {
		// Already stopping or stopped. A hold without grace (a serve
		// deadline passed) must not wait for a process that ignores the
		// SIGTERM of an earlier hold: it is killed now.
		running, exited := s.running, s.exited
		s.mu.Unlock()
		if running && grace == 0 {
			s.Signal(syscall.SIGKILL)
			<-exited
		}
		return
	}
	s.held, s.released = true, make(chan struct{})
	running := s.running
	s.mu.Unlock()
	if running {
		s.Log.Info("Stopping the server: this member must not serve")
		s.stop(grace)
	}
}

// Kill stops the server process at once (SIGKILL to its process group) and
// returns when it is gone or ctx ends; unless held, Run restarts it.
func (s *Supervisor) Kill(ctx context.Context) {
	s.mu.Lock()
	exited, running := s.exited, s.running
	s.mu.Unlock()
	if !running {
		return
	}
	s.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-ctx.Done():
	}
}

// Release lets the server run again (the member serves).
func (s *Supervisor) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.held = false
		close(s.released)
	}
}

// Signal forwards sig to the server's process group.
func (s *Supervisor) Signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, running := s.cmd, s.running
	s.mu.Unlock()
	if cmd != nil && running {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// stop sends SIGTERM and, after grace, SIGKILL. Once the process is gone,
// whatever is left of its process group (children that ignore SIGTERM and
// outlive their parent) is killed: a stopped server leaves nothing that
// could still serve.
func (s *Supervisor) stop(grace time.Duration) {
	s.mu.Lock()
	exited, cmd := s.exited, s.cmd
	s.mu.Unlock()
	s.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		s.Log.Info("Server did not stop in time; killing it", "grace", grace)
		s.Signal(syscall.SIGKILL)
		<-exited
	}
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	st := s.Status()
	s.Log.Info("Server stopped", "exitCode", st.LastExitCode)
}
