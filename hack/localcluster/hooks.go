package main

import (
	"context"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// postStart runs the container's postStart hook, if any, right after the
// container started; when it fails the container is killed, as the kubelet
// does (and then restarted under the restart policy).
func (w *podWorker) postStart(c *corev1.Container, p *process) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return
	}
	if ok, msg := w.runHook(w.runCtx, c, p, c.Lifecycle.PostStart); !ok && w.runCtx.Err() == nil {
		log.Printf("pod %s/%s: postStart hook of container %s failed, killing it: %s", w.bound.Namespace, w.bound.Name, c.Name, msg)
		go w.stopContainer(c, p, w.podGrace())
	}
}

// stopContainer runs the container's preStop hook, then stops the container
// (SIGTERM, SIGKILL) within what is left of the grace period.
func (w *podWorker) stopContainer(c *corev1.Container, p *process, grace time.Duration) {
	deadline := time.Now().Add(grace)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if ok, msg := w.runHook(ctx, c, p, c.Lifecycle.PreStop); !ok {
			log.Printf("pod %s/%s: preStop hook of container %s failed: %s", w.bound.Namespace, w.bound.Name, c.Name, msg)
		}
		cancel()
	}
	p.stop(time.Until(deadline))
}

func (w *podWorker) runHook(ctx context.Context, c *corev1.Container, p *process, h *corev1.LifecycleHandler) (bool, string) {
	if h.Sleep != nil {
		sleepCtx(ctx, time.Duration(h.Sleep.Seconds)*time.Second)
		return true, ""
	}
	return runHandler(ctx, corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}, w.probeTarget(c, p))
}

func (w *podWorker) probeTarget(c *corev1.Container, p *process) probeTarget {
	return probeTarget{podIP: w.sandbox.IP, container: c, pid: p.pid(), env: p.env}
}
