package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// backoff is the restart back-off: the first restart is immediate, then
// base, 2*base, ... up to max, as in the kubelet.
type backoff struct {
	base, max time.Duration
}

func (b backoff) next(prev time.Duration) time.Duration {
	switch {
	case prev == 0:
		return b.base
	case prev*2 > b.max:
		return b.max
	}
	return prev * 2
}

// runContainer runs one container until it has finished for good under the
// pod's restart policy, restarting it with back-off. It returns the last
// exit code, and stopped when the pod is being deleted.
func (w *podWorker) runContainer(st *containerState) (code int32, stopped bool) {
	policy := w.bound.Spec.RestartPolicy
	if st.init && policy == corev1.RestartPolicyAlways {
		policy = corev1.RestartPolicyOnFailure // init containers never restart after success
	}
	var crashDelay, errDelay time.Duration
	restarting := false
	for {
		if w.runCtx.Err() != nil {
			return 0, true
		}
		p, err := w.startContainer(w.runCtx, st.spec)
		if err != nil {
			reason := "RunContainerError"
			var ce createError
			if errors.As(err, &ce) {
				reason = ce.reason
			}
			w.setState(st, func() { st.state = waiting(reason, err.Error()) })
			errDelay = w.a.backoff.next(errDelay)
			if !sleepCtx(w.runCtx, errDelay) {
				return 0, true
			}
			continue
		}
		errDelay = 0
		started := time.Now()
		w.mu.Lock()
		if restarting {
			st.restartCount++
		}
		st.proc = p
		st.containerID = fmt.Sprintf("localcluster://%s/%s/%d", w.bound.UID, st.spec.Name, st.restartCount)
		st.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}
		st.started = st.spec.StartupProbe == nil
		st.ready = st.started && st.spec.ReadinessProbe == nil && !st.init
		if w.terminating { // deleted while starting
			go w.stopContainer(st.spec, p, w.grace)
		}
		w.mu.Unlock()
		w.changed()
		w.postStart(st.spec, p)

		probeCtx, cancelProbes := context.WithCancel(w.runCtx)
		if !st.init {
			go w.probe(probeCtx, st, p)
		}
		<-p.done
		cancelProbes()

		w.mu.Lock()
		st.proc, st.ready = nil, false
		st.state = corev1.ContainerState{Terminated: terminated(p.exit, started)}
		stopping := w.terminating
		w.mu.Unlock()
		w.changed()
		if stopping {
			return p.exit.code, true
		}
		if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && p.exit.code == 0) {
			return p.exit.code, false
		}
		// A container that ran for long has earned a fresh back-off.
		if time.Since(started) > 2*w.a.backoff.max {
			crashDelay = 0
		}
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s", crashDelay, st.spec.Name, w.bound.Name, w.bound.Namespace)
		w.setState(st, func() {
			st.lastState = st.state
			if crashDelay > 0 {
				st.state = waiting("CrashLoopBackOff", msg)
			}
		})
		restarting = true
		if !sleepCtx(w.runCtx, crashDelay) {
			return p.exit.code, true
		}
		crashDelay = w.a.backoff.next(crashDelay)
	}
}

func (w *podWorker) setState(st *containerState, change func()) {
	w.mu.Lock()
	change()
	w.mu.Unlock()
	w.changed()
}

func waiting(reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
}

func terminated(e exitInfo, started time.Time) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		ExitCode:   e.code,
		Reason:     "Completed",
		StartedAt:  metav1.NewTime(started),
		FinishedAt: metav1.Now(),
	}
	if e.code != 0 {
		t.Reason = "Error"
	}
	if e.signal != "" {
		t.Message = "killed by " + e.signal
	}
	return t
}

// probe runs a container's startup, readiness and liveness probes for one
// run of the container (ctx ends when the process exits).
func (w *podWorker) probe(ctx context.Context, st *containerState, p *process) {
	c := st.spec
	target := func() probeTarget { return w.probeTarget(c, p) }
	if c.StartupProbe != nil {
		result := make(chan bool, 1)
		startupCtx, stopStartup := context.WithCancel(ctx)
		go probeLoop(startupCtx, c.StartupProbe, target, func(ok bool, msg string) {
			if !ok {
				w.killForProbe(c, p, c.StartupProbe, "startup", msg)
			}
			result <- ok
			stopStartup()
		})
		select {
		case <-ctx.Done():
			stopStartup()
			return
		case ok := <-result:
			if !ok {
				return
			}
		}
		w.setState(st, func() { st.started, st.ready = true, c.ReadinessProbe == nil })
	}
	if c.ReadinessProbe != nil {
		go probeLoop(ctx, c.ReadinessProbe, target, func(ok bool, _ string) {
			w.setState(st, func() { st.ready = ok })
		})
	}
	if c.LivenessProbe != nil {
		go probeLoop(ctx, c.LivenessProbe, target, func(ok bool, msg string) {
			if !ok {
				w.killForProbe(c, p, c.LivenessProbe, "liveness", msg)
			}
		})
	}
}

// killForProbe restarts a container whose liveness or startup probe failed,
// giving it the pod's (or the probe's) termination grace period.
func (w *podWorker) killForProbe(c *corev1.Container, p *process, probe *corev1.Probe, kind, msg string) {
	grace := w.podGrace()
	if probe.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*probe.TerminationGracePeriodSeconds) * time.Second
	}
	log.Printf("pod %s/%s: %s probe failed, restarting container %s: %s", w.bound.Namespace, w.bound.Name, kind, c.Name, msg)
	go w.stopContainer(c, p, grace)
}

// podGrace is the pod's termination grace period (the kubelet's default 30s).
func (w *podWorker) podGrace() time.Duration {
	if g := w.bound.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}
