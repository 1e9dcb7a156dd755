// Command bench-failover measures what a client sees when a triad's active
// member goes away: crash (SIGKILL), graceful deletion of its pod, planned
// switchover (roles edited), and failback. For each kind it runs N trials on
// the local cluster with a client holding seats and heartbeating every 50 ms
// and a probe asking every member every 50 ms whether it serves, and prints
// the median and maximum client-observed unavailability, the seats lost and
// the time two members served at once. Then, side by side on the same
// cluster (baseline.go), it crashes, freezes and fails the node of the
// serving pod of the triad and of two setups without licenseha (a
// single-replica Deployment; two replicas with client-go leader election),
// and prints one table per fault. Run it with `make bench-failover`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/probe"
)

const (
	ns    = "bench"
	triad = "bench"
	seats = 5
)

type result struct {
	gap     time.Duration
	lost    int
	overlap time.Duration
	err     error
}

type bench struct {
	env      *harness.Env
	w        *probe.Watcher
	load     *probe.Load
	stopLoad context.CancelFunc
	ips      string
}

func main() {
	trials := flag.Int("trials", 20, "trials per kind of fault")
	kinds := flag.String("kinds", "crash,graceful,switchover,failback", "kinds of fault to measure")
	instance := flag.Int("instance", 6, "local cluster instance to use")
	peerTimeout := flag.Int("peer-timeout", 0, "spec.failover.peerTimeoutSeconds of the triad (0: the default, 2)")
	systems := flag.String("systems", "licenseha,deployment,leaderelection", `side by side: systems to measure ("none": skip)`)
	faults := flag.String("faults", "crash,freeze,node", "side by side: faults to inject")
	trialTimeout := flag.Duration("trial-timeout", 120*time.Second, `side by side: a trial without service after this is reported as "> limit"`)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	side := sideOptions{systems: list(*systems), faults: list(*faults), trials: *trials, timeout: *trialTimeout, instance: *instance}
	if err := run(ctx, harness.Options{Instance: *instance, Log: logf}, *trials, int32(*peerTimeout), list(*kinds), side); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// list splits a comma-separated flag; "none" is the empty list.
func list(s string) []string {
	if s == "none" || s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func run(ctx context.Context, opts harness.Options, trials int, peerTimeout int32, kinds []string, side sideOptions) error {
	env, err := harness.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer env.Stop()
	side.imageTar = filepath.Join(env.Root, "bin", "bench-leaderpair-image.tar")
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: objectMeta(ns)}); err != nil {
		return err
	}
	if _, err := env.CreateTriad(ctx, ns, triad, func(t *licensehav1.LicenseTriad) {
		t.Spec.Failover.FailbackDelaySeconds = 3
		if peerTimeout > 0 {
			t.Spec.Failover.PeerTimeoutSeconds = peerTimeout
			// The default heartbeat interval, 250 ms, is at most half of
			// any allowed peer timeout, as the CEL rule requires.
		}
		// As in the real-node suite: the active a and the secondary b on
		// nodes of their own, c beside the operator on node 0, so that a's
		// node can fail without the operator (side by side).
		nodes := map[string]string{"a": "realcluster-node-1", "b": "realcluster-node-2", "c": harness.OperatorNode}
		for i := range t.Spec.Members {
			t.Spec.Members[i].NodeSelector = map[string]string{"kubernetes.io/hostname": nodes[t.Spec.Members[i].Name]}
		}
	}); err != nil {
		return err
	}
	b := &bench{env: env}
	if err := b.settle(ctx); err != nil {
		return err
	}
	targets, err := env.Targets(ctx, ns, triad, "a", "b", "c")
	if err != nil {
		return err
	}
	b.w = probe.NewWatcher(targets, 50*time.Millisecond)
	go b.w.Run(ctx)
	if err := b.startLoad(ctx, targets); err != nil {
		return err
	}

	results := map[string][]result{}
	for _, kind := range kinds {
		for i := 1; i <= trials; i++ {
			r := b.trial(ctx, kind)
			if r.err != nil {
				logf("%s trial %d: %v", kind, i, r.err)
			} else {
				logf("%s trial %d: client gap %d ms, lost %d, overlap %d ms", kind, i, r.gap.Milliseconds(), r.lost, r.overlap.Milliseconds())
			}
			results[kind] = append(results[kind], r)
			if err := b.settle(ctx); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if len(kinds) > 0 {
		report(kinds, results)
	}
	if len(side.systems) > 0 {
		return sideBySide(ctx, env, b, side)
	}
	return nil
}

// settle waits until the triad is back to normal: a serving, all three in
// contact and in sync.
func (b *bench) settle(ctx context.Context) error {
	_, err := b.env.WaitTriad(ctx, ns, triad, 3*time.Minute, func(t *licensehav1.LicenseTriad) bool {
		return t.Status.Phase == licensehav1.TriadActive && t.Status.ActiveMember == "a"
	})
	if err != nil || b.w == nil {
		return err
	}
	// Pods may be being recreated: wait until every member has a pod IP.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if err = b.refreshTargets(ctx); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err == nil {
		_, err = b.w.WaitFor(ctx, "a", 2*time.Minute)
	}
	return err
}

// refreshTargets points the watcher at the members' current pod IPs, and
// gives the client a fresh endpoint list when a pod was recreated with a new
// IP (a client of a real cluster uses the Service or DNS names instead).
func (b *bench) refreshTargets(ctx context.Context) error {
	targets, err := b.env.Targets(ctx, ns, triad, "a", "b", "c")
	if err != nil {
		return err
	}
	b.w.SetTargets(targets)
	if b.load != nil && fmt.Sprint(targets) != b.ips {
		return b.startLoad(ctx, targets)
	}
	return nil
}

// startLoad (re)starts the client holding seats.
func (b *bench) startLoad(ctx context.Context, targets []probe.Target) error {
	if b.stopLoad != nil {
		b.stopLoad()
	}
	lctx, cancel := context.WithCancel(ctx)
	load, err := probe.StartLoad(lctx, probe.ClientConfig(targets, "a", "bench"), "LabelDesigner", seats, 50*time.Millisecond)
	if err != nil {
		cancel()
		return err
	}
	b.load, b.stopLoad, b.ips = load, cancel, fmt.Sprint(targets)
	return nil
}

func (b *bench) trial(ctx context.Context, kind string) result {
	overlap0 := b.w.Overlap()
	lost0 := b.load.Lost()
	at := time.Now()
	var err error
	switch kind {
	case "crash":
		err = b.env.Fault(ctx, "kill", harness.PodName(ns, triad, "a"))
	case "graceful":
		err = b.env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: objectMetaNS(ns, triad+"-a")})
	case "switchover":
		err = b.swapRoles(ctx, "b")
	case "failback":
		// Freeze the primary, let the secondary take over, then resume it:
		// the measured gap is the failback's alone.
		if err = b.env.Fault(ctx, "pause", harness.PodName(ns, triad, "a")); err == nil {
			if _, err = b.w.WaitFor(ctx, "b", time.Minute); err == nil {
				// Let the client settle on b first, so the takeover's gap is
				// not counted as the failback's.
				time.Sleep(2 * time.Second)
				err = b.env.Fault(ctx, "resume", harness.PodName(ns, triad, "a"))
				at = time.Now()
			}
		}
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return result{err: err}
	}
	want := "a"
	if kind == "switchover" {
		want = "b"
	}
	// Service is back when the expected member serves alone again after a
	// moment where a did not (for failback: a serves again).
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if kind == "graceful" {
			if targets, err := b.env.Targets(ctx, ns, triad, "a", "b", "c"); err == nil {
				b.w.SetTargets(targets)
			}
		}
		s := b.w.Serving()
		if len(s) == 1 && (s[0] == want || (kind != "switchover" && kind != "failback")) && b.sawGap(at, kind) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	r := result{gap: b.load.LongestGapSince(at), lost: b.load.Lost() - lost0, overlap: b.w.Overlap() - overlap0}
	switch kind {
	case "switchover":
		if err := b.swapRoles(ctx, "a"); err != nil {
			r.err = err
		}
	case "crash":
		// A crashed container restarts with a growing back-off, as under a
		// kubelet; a fresh pod brings the primary back for the next trial.
		zero := int64(0)
		_ = b.env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: objectMetaNS(ns, triad+"-a")},
			&client.DeleteOptions{GracePeriodSeconds: &zero})
	}
	return r
}

// sawGap is true once, after at, a moment without a serving was seen (the
// fault took effect), except for switchover and failback where the serving
// member simply changes.
func (b *bench) sawGap(at time.Time, kind string) bool {
	for _, c := range b.w.History() {
		if c.At.After(at) && (len(c.Serving) != 1 || c.Serving[0] != "a" || kind == "failback") {
			return true
		}
	}
	return false
}

// swapRoles makes primary the Primary and the other of a/b the Secondary.
func (b *bench) swapRoles(ctx context.Context, primary string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		t := &licensehav1.LicenseTriad{}
		if err := b.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: triad}, t); err != nil {
			return err
		}
		for i := range t.Spec.Members {
			switch t.Spec.Members[i].Name {
			case primary:
				t.Spec.Members[i].Role = licensehav1.RolePrimary
			case "a", "b":
				t.Spec.Members[i].Role = licensehav1.RoleSecondary
			}
		}
		return b.env.Client.Update(ctx, t)
	})
}

func report(kinds []string, results map[string][]result) {
	fmt.Println("| fault | trials | unavailability median | unavailability max | seats lost | overlap (two serving) | errors |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, kind := range kinds {
		var gaps []time.Duration
		lost, errs := 0, 0
		var overlap time.Duration
		for _, r := range results[kind] {
			if r.err != nil {
				errs++
				continue
			}
			gaps = append(gaps, r.gap)
			lost += r.lost
			overlap += r.overlap
		}
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		med, most := time.Duration(0), time.Duration(0)
		if len(gaps) > 0 {
			med, most = gaps[len(gaps)/2], gaps[len(gaps)-1]
		}
		fmt.Printf("| %s | %d | %.2f s | %.2f s | %d | %d ms | %d |\n", kind, len(results[kind]), med.Seconds(), most.Seconds(), lost, overlap.Milliseconds(), errs)
	}
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

func objectMetaNS(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
