// Package podnet opens connections from inside a pod's network namespace of
// the local cluster, for tests that reach what a pod serves only on its
// loopback (the agent's admin endpoint).
//
// A connection keeps the namespace its socket was created in, so only the
// dial runs in the pod's namespace: on an OS thread of its own that is never
// handed back to the Go scheduler and ends with its goroutine. The process's
// main thread is never used for that. The Go runtime does not end the main
// thread when a goroutine locked to it returns; it parks it in whatever
// namespace it is in. /proc/PID/ns/net shows the main thread's namespace, so
// the whole test process would then look like a process of the pod, and the
// local cluster kills every process of a pod's namespace when it tears the
// pod down.
package podnet

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dial connects to addr from inside the network namespace bound at
// netnsPath (e.g. /run/netns/NAME).
func Dial(ctx context.Context, netnsPath, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, moved, err := dialLocked(ctx, netnsPath, network, addr)
		if !moved {
			runtime.UnlockOSThread()
		} // else: never unlocked, so the thread exits with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// dialLocked dials from the namespace on the current thread, which the
// caller has locked. moved tells whether the thread entered the namespace
// (and so must never run another goroutine). On the main thread it dials
// from another thread instead: while this one stays locked here, the
// goroutine Dial starts cannot be scheduled on it.
func dialLocked(ctx context.Context, netnsPath, network, addr string) (c net.Conn, moved bool, err error) {
	if unix.Gettid() == unix.Getpid() {
		c, err := Dial(ctx, netnsPath, network, addr)
		return c, false, err
	}
	fd, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("opening the network namespace %s: %w", netnsPath, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return nil, false, fmt.Errorf("entering the network namespace %s: %w", netnsPath, err)
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	return c, true, err
}
