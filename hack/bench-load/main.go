// Command bench-load measures whether a triad at default settings fails
// over when nobody asked it to, while a CPU hog (stress-ng) keeps every core
// of the machine busy: the cluster's kubelets, containerd, API server and the
// members' agents all compete with it. It runs a triad on the local cluster
// with a client holding seats and a probe asking every member whether it
// serves, starts the hog for a given time, and counts the failovers, the
// changes of the serving member and the client's longest gap. At the end,
// with the hog still running, it crashes the active member and reports how
// long the client waited: the crash must still fail over within the bound.
// Run it with `make bench-load` (root; DURATION=30m by default).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/probe"
)

const (
	ns    = "bench-load"
	triad = "load"
	seats = 5
)

func main() {
	duration := flag.Duration("duration", 30*time.Minute, "how long the CPU hog runs before the crash")
	instance := flag.Int("instance", 6, "local cluster instance to use")
	peerTimeout := flag.Int("peer-timeout", 0, "spec.failover.peerTimeoutSeconds of the triad (0: the default)")
	workers := flag.Int("workers", 2*runtime.NumCPU(), "stress-ng CPU workers (twice the cores by default)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *instance, *duration, int32(*peerTimeout), *workers); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, instance int, duration time.Duration, peerTimeout int32, workers int) error {
	hog, err := exec.LookPath("stress-ng")
	if err != nil {
		return errors.New("stress-ng is not installed (make bench-load installs it)")
	}
	env, err := harness.Start(ctx, harness.Options{Instance: instance, Log: logf})
	if err != nil {
		return err
	}
	defer env.Stop()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if _, err := env.CreateTriad(ctx, ns, triad, func(t *licensehav1.LicenseTriad) {
		t.Spec.Failover.PeerTimeoutSeconds = peerTimeout
	}); err != nil {
		return err
	}
	t, err := env.WaitTriad(ctx, ns, triad, 3*time.Minute, func(t *licensehav1.LicenseTriad) bool {
		return t.Status.Phase == licensehav1.TriadActive && t.Status.ActiveMember == "a" && t.Status.MembersInQuorum == 3
	})
	if err != nil {
		return err
	}
	targets, err := env.Targets(ctx, ns, triad, "a", "b", "c")
	if err != nil {
		return err
	}
	w := probe.NewWatcher(targets, 50*time.Millisecond)
	go w.Run(ctx)
	load, err := probe.StartLoad(ctx, probe.ClientConfig(targets, "a", "bench-load"), "LabelDesigner", seats, 50*time.Millisecond)
	if err != nil {
		return err
	}
	if _, err := w.WaitFor(ctx, "a", time.Minute); err != nil {
		return err
	}
	failovers0 := t.Status.Failovers
	changes0 := len(w.History())

	logf("Starting the CPU hog: %s --cpu %d for %s (%d cores)", hog, workers, duration, runtime.NumCPU())
	hctx, stopHog := context.WithCancel(ctx)
	defer stopHog()
	cmd := exec.CommandContext(hctx, hog, "--cpu", fmt.Sprint(workers), "--cpu-method", "all", "--timeout", "0")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting stress-ng: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	began := time.Now()
	var load1 float64
	for time.Since(began) < duration {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
		}
		load1 = loadAverage()
		cur := &licensehav1.LicenseTriad{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: triad}, cur); err == nil {
			logf("%s under load (load average %.1f): failovers %d, serving-set changes %d, serving %v, client's longest gap %d ms",
				time.Since(began).Round(time.Minute), load1, cur.Status.Failovers-failovers0, len(w.History())-changes0,
				w.Serving(), load.LongestGapSince(began).Milliseconds())
		}
	}
	cur := &licensehav1.LicenseTriad{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: triad}, cur); err != nil {
		return err
	}
	falseFailovers := cur.Status.Failovers - failovers0
	changes := len(w.History()) - changes0
	quietGap := load.LongestGapSince(began)
	quietLost := load.Lost()
	quietOverlap := w.Overlap()

	// The crash, with the hog still running.
	active := cur.Status.ActiveMember
	overlap0 := w.Overlap()
	at := time.Now()
	if err := env.Fault(ctx, "kill", harness.PodName(ns, triad, active)); err != nil {
		return err
	}
	served, who := time.Time{}, ""
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		// A crash nobody noticed within 10 s counts as no outage.
		if _, back, member, ok := w.Outage(at, 10*time.Second); ok {
			served, who = back, member
			break
		}
	}
	time.Sleep(time.Second)
	crashGap := load.LongestGapSince(at)
	stopHog()

	fmt.Printf("\nA triad (peerTimeoutSeconds %s) under a CPU hog: stress-ng --cpu %d on %d cores, %s, load average %.1f at the end\n",
		orDefault(peerTimeout), workers, runtime.NumCPU(), duration, load1)
	fmt.Printf("  failovers nobody asked for:  %d (status.failovers), serving-set changes seen by the probe: %d\n", falseFailovers, changes)
	fmt.Printf("  client's longest gap:        %d ms, seats lost %d, two serving %d ms\n", quietGap.Milliseconds(), quietLost, quietOverlap.Milliseconds())
	if served.IsZero() {
		fmt.Printf("  crash of the active (%s) under load: nobody served within 2 minutes\n", active)
	} else {
		fmt.Printf("  crash of the active (%s) under load: %s serves after %.2f s; client's gap %.2f s; seats lost %d; two serving %d ms\n",
			active, who, served.Sub(at).Seconds(), crashGap.Seconds(), load.Lost()-quietLost, (w.Overlap() - overlap0).Milliseconds())
	}
	return nil
}

func orDefault(pt int32) string {
	if pt == 0 {
		return "default"
	}
	return fmt.Sprint(pt)
}

// loadAverage is the one-minute load average of the machine.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscan(string(data), &l)
	return l
}
