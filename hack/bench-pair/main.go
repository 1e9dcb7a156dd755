// Command bench-pair measures the sample backup pair of `make demo`
// (default/plant-b): a client at home on the main holds seats of the main's
// licence; the main is frozen, the client moves to the backup (which serves
// the main's licence id through the mapping), the main resumes, the client
// returns home. It prints the client's gaps and the times of both moves.
// With -mode ActivePassive it first recreates plant-b in that mode (roles
// Fixed; the licence Secrets stay) and also watches which server serves:
// when the backup took over, when the main had the role back, and whether
// both ever served at once. Run it with `make bench-pair [MODE=...]` after
// `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/probe"
)

func main() {
	trials := flag.Int("trials", 5, "freeze/resume cycles")
	mode := flag.String("mode", string(licensehav1.ActiveActive), "pair mode: ActiveActive or ActivePassive (recreates plant-b in that mode)")
	flag.Parse()
	if err := run(*trials, licensehav1.PairMode(*mode)); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(trials int, mode licensehav1.PairMode) error {
	ctx := context.Background()
	root, _ := os.Getwd()
	state, tool, stateEnv := filepath.Join(root, ".local-real"), "realcluster", "REALCLUSTER_STATE_DIR"
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(state, "kubeconfig"))
	if err != nil {
		return fmt.Errorf("no local cluster (run make demo first): %w", err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = licensehav1.AddToScheme(scheme)
	kube, err := crclient.New(cfg, crclient.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := ensureMode(ctx, kube, mode); err != nil {
		return err
	}
	url := func(pod string) (string, error) {
		p := &corev1.Pod{}
		if err := kube.Get(ctx, crclient.ObjectKey{Namespace: "default", Name: pod}, p); err != nil {
			return "", err
		}
		return "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort), nil
	}
	mainURL, err := url("plant-b-main")
	if err != nil {
		return err
	}
	backupURL, err := url("plant-b-backup")
	if err != nil {
		return err
	}
	var watcher *probe.Watcher
	if mode == licensehav1.ActivePassive {
		watcher = probe.NewWatcher([]probe.Target{{Name: "main", URL: mainURL}, {Name: "backup", URL: backupURL}}, 20*time.Millisecond)
		go watcher.Run(ctx)
		if _, err := watcher.WaitFor(ctx, "main", 2*time.Minute); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var moves []lhclient.Move
	load, err := probe.StartLoad(ctx, lhclient.Config{Endpoints: []string{mainURL, backupURL}, Home: mainURL,
		ClientID: "bench-pair", HomeCheckInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnMove: func(m lhclient.Move) { mu.Lock(); moves = append(moves, m); mu.Unlock() }},
		"LIC-PLANT-B-MAIN", 3, 50*time.Millisecond)
	if err != nil {
		return err
	}
	fault := func(kind string) error {
		cmd := exec.Command(filepath.Join(root, "bin", tool), "fault", kind, "plant-b-main")
		cmd.Env = append(os.Environ(), stateEnv+"="+state)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	// waitMove returns the client's first move to server to after since.
	waitMove := func(since time.Time, to string) (lhclient.Move, error) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			for _, m := range moves {
				if m.To == to && m.At.After(since) {
					mu.Unlock()
					return m, nil
				}
			}
			mu.Unlock()
		}
		return lhclient.Move{}, fmt.Errorf("the client did not move to %s", to)
	}
	var away, home, gaps, takeover, back []time.Duration
	// half strikes the main with fault kind, then waits until server serves
	// (with a watcher) and the client has moved to url, appending how long
	// each took to served and moved; it returns when the fault struck.
	half := func(kind, server, url string, served, moved *[]time.Duration) (time.Time, error) {
		at := time.Now()
		if err := fault(kind); err != nil {
			return at, err
		}
		if watcher != nil {
			t, err := watcher.WaitFor(ctx, server, 30*time.Second)
			if err != nil {
				return at, err
			}
			*served = append(*served, t.Sub(at))
		}
		m, err := waitMove(at, url)
		if err != nil {
			return at, err
		}
		*moved = append(*moved, m.At.Sub(at))
		return at, nil
	}
	for i := 0; i < trials; i++ {
		at, err := half("pause", "backup", backupURL, &takeover, &away)
		if err != nil {
			_ = fault("resume")
			return err
		}
		time.Sleep(time.Second)
		gaps = append(gaps, load.LongestGapSince(at))
		if _, err := half("resume", "main", mainURL, &back, &home); err != nil {
			return err
		}
		time.Sleep(time.Second)
		fmt.Fprintf(os.Stderr, "trial %d: moved to the backup after %d ms (longest gap %d ms), home again %d ms after the resume\n",
			i+1, away[i].Milliseconds(), gaps[i].Milliseconds(), home[i].Milliseconds())
	}
	fmt.Printf("| %d trials | median | max |\n|---|---|---|\n", trials)
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"backup serves after the main froze", takeover}, {"main serves again after its resume", back},
		{"client moved to the backup after the main froze", away}, {"client's longest gap", gaps}, {"client back home after the main resumed", home}} {
		if len(r.d) == 0 {
			continue
		}
		s := append([]time.Duration(nil), r.d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		fmt.Printf("| %s | %d ms | %d ms |\n", r.name, s[len(s)/2].Milliseconds(), s[len(s)-1].Milliseconds())
	}
	fmt.Printf("| seats lost | %d | |\n", load.Lost())
	if watcher != nil {
		fmt.Printf("| both servers serving at once | %d ms | |\n", watcher.Overlap().Milliseconds())
	}
	return nil
}

// ensureMode recreates the sample pair plant-b in mode (roles Fixed for
// ActivePassive) unless it already runs so; its licence Secrets stay
// (dissolvePolicy Retain).
func ensureMode(ctx context.Context, kube crclient.Client, mode licensehav1.PairMode) error {
	key := crclient.ObjectKey{Namespace: "default", Name: "plant-b"}
	p := &licensehav1.LicenseBackupPair{}
	if err := kube.Get(ctx, key, p); err != nil {
		return fmt.Errorf("the sample pair (run make demo first): %w", err)
	}
	if p.Spec.Mode == mode {
		return nil
	}
	fmt.Fprintf(os.Stderr, "recreating %s as %s\n", key, mode)
	spec := *p.Spec.DeepCopy()
	if err := kube.Delete(ctx, p); err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		pods := &corev1.PodList{}
		err := kube.Get(ctx, key, &licensehav1.LicenseBackupPair{})
		if lerr := kube.List(ctx, pods, crclient.InNamespace("default"), crclient.MatchingLabels{licensehav1.LabelGroup: "plant-b"}); lerr != nil {
			return lerr
		}
		if crclient.IgnoreNotFound(err) == nil && err != nil && len(pods.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("plant-b did not go away")
		}
	}
	spec.Mode = mode
	if mode == licensehav1.ActivePassive {
		spec.Roles = licensehav1.RolesFixed
	} else {
		spec.Roles = ""
	}
	np := &licensehav1.LicenseBackupPair{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: p.Labels}, Spec: spec}
	if err := kube.Create(ctx, np); err != nil {
		return err
	}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		ready := 0
		for _, pod := range []string{"plant-b-main", "plant-b-backup"} {
			po := &corev1.Pod{}
			if err := kube.Get(ctx, crclient.ObjectKey{Namespace: "default", Name: pod}, po); err == nil && po.Status.PodIP != "" && po.DeletionTimestamp == nil {
				ready++
			}
		}
		if ready == 2 {
			return nil
		}
	}
	return fmt.Errorf("the recreated plant-b has no pods with addresses after 3 minutes")
}
