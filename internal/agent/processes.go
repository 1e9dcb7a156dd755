package agent

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/licenseha/licenseha/internal/group"
)

// processes are what the agent supervises: the server command and the
// services of spec.server.services, each a Supervisor of its own (own
// process group, own restart back-off). A fence stops the server and every
// service that runs only while the member serves; services marked Always
// run for the pod's life.
type processes struct {
	server   *Supervisor
	services []service
}

type service struct {
	group.Service
	sup *Supervisor
}

func newProcesses(log logr.Logger, serverCommand []string, services []group.Service) *processes {
	p := &processes{server: &Supervisor{Command: serverCommand, Log: log.WithName("supervisor")}}
	for _, s := range services {
		p.services = append(p.services, service{Service: s,
			sup: &Supervisor{Command: s.Command, Log: log.WithName("service").WithValues("service", s.Name)}})
	}
	return p
}

// hide keeps the service-account token from every process (see
// SandboxExec); onSandbox learns, at each server start, whether it could.
func (p *processes) hide(dir string, onSandbox func(hidden bool, detail string)) {
	p.server.Hide, p.server.OnSandbox = dir, onSandbox
	for _, s := range p.services {
		s.sup.Hide = dir
	}
}

// fenced are the processes that run only while the member serves (the
// server of a vendor image is one of them; the caller decides).
func (p *processes) fenced() []*Supervisor {
	out := []*Supervisor{p.server}
	for _, s := range p.services {
		if !s.Always {
			out = append(out, s.sup)
		}
	}
	return out
}

func (p *processes) all() []*Supervisor {
	out := []*Supervisor{p.server}
	for _, s := range p.services {
		out = append(out, s.sup)
	}
	return out
}

// run keeps every process running until ctx ends, then stops them all
// within grace, and returns when they are gone.
func (p *processes) run(ctx context.Context, grace time.Duration) {
	p.each(p.all(), func(s *Supervisor) { _ = s.Run(ctx, grace) })
}

// hold stops the fenced processes (SIGTERM, SIGKILL after grace; at once
// with grace 0, also one already stopping) and keeps them stopped until
// release. It returns once every one of them is gone.
func (p *processes) hold(grace time.Duration) {
	p.each(p.fenced(), func(s *Supervisor) { s.Hold(grace) })
}

// release lets the fenced processes run again.
func (p *processes) release() {
	for _, s := range p.fenced() {
		s.Release()
	}
}

// kill kills the fenced processes at once; unless held they restart.
func (p *processes) kill(ctx context.Context) {
	p.each(p.fenced(), func(s *Supervisor) { s.Kill(ctx) })
}

// held says whether the fenced processes are kept stopped.
func (p *processes) held() bool { return p.server.heldChan() != nil }

// waitsFor says whether pid is one of the processes a supervisor waits for.
func (p *processes) waitsFor(pid int) bool {
	for _, s := range p.all() {
		if s.waitsFor(pid) {
			return true
		}
	}
	return false
}

// each runs fn on every supervisor in parallel and waits for all.
func (p *processes) each(sups []*Supervisor, fn func(*Supervisor)) {
	var wg sync.WaitGroup
	for _, s := range sups {
		wg.Add(1)
		go func() { defer wg.Done(); fn(s) }()
	}
	wg.Wait()
}
