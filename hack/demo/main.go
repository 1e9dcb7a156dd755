// Command demo shows licenseha on the local cluster: it starts the cluster
// and the operator, applies config/samples (a triad and a backup pair),
// watches the triad form, crashes and freezes the active member while a
// client holds printer seats, and reports the measured failover and
// failback. Everything keeps running afterwards. Run it with `make demo`,
// or on real nodes (hack/realcluster, pods from the licenseha image) with
// `make demo NODES=real`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/probe"
)

var (
	// nodes is "process" (hack/localcluster) or "real" (hack/realcluster).
	nodes                           = flag.String("nodes", "real", `"process": pods run as processes (hack/localcluster); "real": real kubelets and containerd (hack/realcluster)`)
	root, state, kubeconfig, k8sBin string
	// tool is the cluster tool in bin/, stateEnv its state directory variable.
	tool, stateEnv = "localcluster", "LOCALCLUSTER_STATE_DIR"
	kube           crclient.Client
	start          = time.Now()
)

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...)
}

func info(format string, args ...any) {
	fmt.Printf("    [%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
}

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "\nError:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var err error
	if root, err = os.Getwd(); err != nil {
		return err
	}
	state = filepath.Join(root, ".local")
	assetSets := [][]string{nil}
	what := "real etcd, kube-apiserver, controller-manager, scheduler; pods run as processes"
	switch *nodes {
	case "process":
	case "real":
		tool, stateEnv, state = "realcluster", "REALCLUSTER_STATE_DIR", filepath.Join(root, ".local-real")
		assetSets = append(assetSets, []string{"kubelet", "kube-proxy"})
		what = "real control plane; three real nodes: kubelet, containerd, runc, CNI bridge each; kube-proxy; pods from the licenseha image"
	default:
		return fmt.Errorf("-nodes=%q: want process or real", *nodes)
	}
	kubeconfig = filepath.Join(state, "kubeconfig")
	step("Kubernetes binaries")
	info("Built once from the Go module proxy and cached; each one it builds is reported below as it is done")
	for _, set := range assetSets {
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "envtest-assets.sh"), set...)
		// What it builds, and how long each took, as it goes.
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("Kubernetes binaries: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		k8sBin = lines[len(lines)-1]
	}

	step("Local cluster")
	if _, err := kubectl(ctx, "get", "--raw", "/readyz"); err != nil {
		info("Starting it (%s)", what)
		if err := localcluster(ctx, "up", "--detach", "--k8s-bin-dir", k8sBin); err != nil {
			return err
		}
	} else {
		info("Already running")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = licensehav1.AddToScheme(scheme)
	if kube, err = crclient.New(cfg, crclient.Options{Scheme: scheme}); err != nil {
		return err
	}

	step("CRDs and operator")
	if _, err := kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(root, "config", "crd", "bases")); err != nil {
		return err
	}
	// The operator needs the kinds served (not just stored) when it starts.
	// kubectl wait fails on a CRD that has no conditions yet: ask again.
	for tries := 0; ; tries++ {
		_, err := kubectl(ctx, "wait", "--for=condition=Established", "--timeout=30s",
			"crd/licensetriads.licenseha.io", "crd/licensebackuppairs.licenseha.io")
		if err == nil {
			break
		}
		if tries == 20 {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	info("CRDs installed: licensetriads.licenseha.io, licensebackuppairs.licenseha.io")
	pid, err := startOperator()
	if err != nil {
		return err
	}
	if err := waitOperatorReady(ctx, pid, 60*time.Second); err != nil {
		return err
	}

	step("Samples: a triad (plant-a) and a backup pair (plant-b), with their licence Secrets")
	out2, err := kubectl(ctx, "apply", "-k", filepath.Join(root, "config", "samples"))
	if err != nil {
		return err
	}
	fmt.Print(indent(out2))

	step("Waiting for the triad to form")
	t, err := waitTriad(ctx, 90*time.Second, func(t *licensehav1.LicenseTriad) bool {
		return t.Status.Phase == licensehav1.TriadActive
	})
	if err != nil {
		return err
	}
	info("Triad plant-a is Active: member %s serves, quorum %s", t.Status.ActiveMember, t.Status.Quorum)
	table(ctx)

	targets, err := memberTargets(ctx)
	if err != nil {
		return err
	}
	w := probe.NewWatcher(targets, 50*time.Millisecond)
	go w.Run(ctx)
	members := map[string]string{}
	var endpoints []string
	for _, tg := range targets {
		members[tg.Name] = tg.URL
		endpoints = append(endpoints, tg.URL)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	load, err := probe.StartLoad(ctx, lhclient.Config{Endpoints: endpoints, Home: members["a"], Members: members, ClientID: "demo-client", Logger: quiet},
		"LabelDesigner", 5, 50*time.Millisecond)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	info("A client holds 5 printer seats and sends a heartbeat every 50 ms; a probe asks every member every 50 ms whether it serves")

	if *nodes == "real" {
		step("Crash: SIGKILL the processes of the active member's container (its cgroup)")
	} else {
		step("Crash: SIGKILL every process of the active member's pod")
	}
	active := t.Status.ActiveMember
	if err := crash(ctx, w, load, active, "kill"); err != nil {
		return err
	}

	if *nodes == "real" {
		step("Freeze: freeze the active member's pod (cgroup freezer: a hung server, no restart to the rescue)")
	} else {
		step("Freeze: SIGSTOP the active member (a hung server: no restart to the rescue)")
	}
	now := w.Serving()
	if len(now) != 1 {
		return fmt.Errorf("expected one member serving, saw %v", now)
	}
	frozen := now[0]
	if err := crash(ctx, w, load, frozen, "pause"); err != nil {
		return err
	}

	step("Failback: resume %s; the primary takes the role back after failbackDelaySeconds (20 s in the sample)", frozen)
	resumed := time.Now()
	if err := localcluster(ctx, "fault", "resume", "plant-a-"+frozen); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	info("Right after resuming, %s serves: %v (its serve bound lapsed while frozen, so it fenced itself)", frozen, contains(w.Serving(), frozen))
	back, err := w.WaitFor(ctx, "a", 90*time.Second)
	if err != nil {
		return err
	}
	info("Primary a serves again %.1f s after the resume; client's longest gap during failback: %d ms",
		back.Sub(resumed).Seconds(), load.LongestGapSince(back.Add(-5*time.Second)).Milliseconds())
	time.Sleep(2 * time.Second)
	table(ctx)

	step("Summary")
	info("Seats lost: %d of 5; moments with two members serving: %d ms", load.Lost(), w.Overlap().Milliseconds())
	fmt.Printf(`
Everything keeps running. Try:
    export KUBECONFIG=%s
    kubectl get licenseha                         # (kubectl is %s/kubectl)
    bin/kubectl-licenseha status plant-a
    bin/%s fault pause plant-a-a         # more faults: docs/local-cluster.md
Stop it all with: make %s
`, kubeconfig, k8sBin, tool, map[string]string{"localcluster": "local-down", "realcluster": "realnode-down"}[tool])
	return nil
}

// crash applies a fault to a member and reports how service came back.
func crash(ctx context.Context, w *probe.Watcher, load *probe.Load, member, fault string) error {
	before := w.Overlap()
	at := time.Now()
	if err := localcluster(ctx, "fault", fault, "plant-a-"+member); err != nil {
		return err
	}
	info("%s %s", map[string]string{"kill": "Killed", "pause": "Froze"}[fault], member)
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Service is back when, after the fault, a moment without the old
		// active serving was seen and exactly one member serves now.
		s := w.Serving()
		h := w.History()
		gone := false
		for _, c := range h {
			if c.At.After(at) && !contains(c.Serving, member) {
				gone = true
			}
		}
		if gone && len(s) == 1 {
			served := h[len(h)-1].At
			time.Sleep(time.Second)
			info("Member %s serves %.2f s after the fault; the client's longest gap was %d ms; seats lost: %d; overlap: %d ms",
				s[0], served.Sub(at).Seconds(), load.LongestGapSince(at).Milliseconds(), load.Lost(), (w.Overlap() - before).Milliseconds())
			table(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nobody serves 60 s after the fault (serving: %v)", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func waitTriad(ctx context.Context, timeout time.Duration, pred func(*licensehav1.LicenseTriad) bool) (*licensehav1.LicenseTriad, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		t := &licensehav1.LicenseTriad{}
		if err := kube.Get(ctx, crclient.ObjectKey{Namespace: "default", Name: "plant-a"}, t); err == nil {
			line := fmt.Sprintf("phase %s, quorum %s, active %q", t.Status.Phase, t.Status.Quorum, t.Status.ActiveMember)
			if line != last {
				info("%s", line)
				last = line
			}
			if pred(t) {
				return t, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the triad did not form within %s; see %s and kubectl describe ltriad plant-a", timeout, managerLog())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func memberTargets(ctx context.Context) ([]probe.Target, error) {
	var out []probe.Target
	for _, m := range []string{"a", "b", "c"} {
		p := &corev1.Pod{}
		if err := kube.Get(ctx, crclient.ObjectKey{Namespace: "default", Name: "plant-a-" + m}, p); err != nil {
			return nil, err
		}
		out = append(out, probe.Target{Name: m, URL: "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)})
	}
	return out, nil
}

func table(ctx context.Context) {
	out, err := kubectl(ctx, "get", "licenseha", "-o", "wide")
	if err == nil {
		fmt.Print(indent(out))
	}
	if out, err := kubectl(ctx, "get", "pods", "-l", "licenseha.io/group=plant-a", "-L", "licenseha.io/role"); err == nil {
		fmt.Print(indent(out))
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// startOperator runs the operator beside the cluster, detached, unless one
// is running already, and returns its pid. The pid goes where the local
// cluster records its own processes (.local/pids/manager), so that
// "make local-down" stops the operator with the cluster.
func startOperator() (int, error) {
	pidFile := filepath.Join(state, "pids", "manager")
	if data, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && running(pid) && isManager(pid) {
			info("Operator already running (pid %d, log %s)", pid, managerLog())
			return pid, nil
		}
	}
	logFile, err := os.OpenFile(filepath.Join(state, "manager.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(root, "bin", "manager"), "--leader-elect=false",
		"--metrics-bind-address=:18080", "--health-probe-bind-address=:18081",
		"--image=ghcr.io/licenseha/licenseha:dev",
		"--trusted-keys-file="+filepath.Join(root, "config", "samples", "dev-trusted-keys.pem"))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the operator: %w", err)
	}
	pid := cmd.Process.Pid
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return 0, err
	}
	info("Operator started beside the cluster (pid %d, log %s, metrics :18080)", pid, managerLog())
	return pid, cmd.Process.Release()
}

// waitOperatorReady waits until the operator answers its readiness probe,
// and fails at once, pointing at its log, if it exited.
func waitOperatorReady(ctx context.Context, pid int, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if resp, err := hc.Get("http://127.0.0.1:18081/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				info("Operator ready")
				return nil
			}
		}
		if !running(pid) {
			return fmt.Errorf("the operator exited; see %s", managerLog())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator is not ready after %s; see %s", timeout, managerLog())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// running reports whether pid is alive (an exited child not yet reaped is
// a zombie, which signal 0 still reaches).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// isManager tells whether pid runs the operator binary (and not a process
// that got the pid of an operator gone since); the binary may have been
// rebuilt since it started.
func isManager(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "manager"
}

func kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(k8sBin, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// managerLog is the operator's log, relative to the checkout.
func managerLog() string { return filepath.Join(filepath.Base(state), "manager.log") }

// localcluster runs the cluster tool (bin/localcluster or bin/realcluster).
func localcluster(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", tool), args...)
	cmd.Env = append(os.Environ(), stateEnv+"="+state)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}
