// Command demo shows licenseha on the local cluster (hack/realcluster: real
// kubelets, containerd, kube-proxy; every pod from the licenseha image): it
// starts the cluster, installs the operator with the Helm chart, applies
// config/samples (a triad and a backup pair), watches the triad form,
// crashes and freezes the active member while a client holds printer
// seats, and reports the measured failover and failback. Everything keeps
// running afterwards. Run it with `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
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
	"github.com/licenseha/licenseha/test/probe"
)

// image is the licenseha image every node imports (make image); the chart
// runs the operator from it and the operator the members.
const image = "ghcr.io/licenseha/licenseha:dev"

var (
	root, state, kubeconfig, k8sBin string
	kube                            crclient.Client
	start                           = time.Now()
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
	state = filepath.Join(root, ".local-real")
	kubeconfig = filepath.Join(state, "kubeconfig")
	step("Kubernetes binaries")
	info("Built once from the Go module proxy and cached; each one it builds is reported below as it is done")
	for _, set := range [][]string{nil, {"kubelet", "kube-proxy"}} {
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
		info("Starting it (real control plane; three real nodes: kubelet, containerd, runc, CNI bridge each; kube-proxy; pods from the licenseha image)")
		if err := realcluster(ctx, "up", "--detach", "--k8s-bin-dir", k8sBin); err != nil {
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
	if err := installOperator(ctx); err != nil {
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
	if t.Status.ActiveMember != "a" {
		// A member that started first took the role; the primary takes it
		// back once it has been in contact for failbackDelaySeconds.
		info("Waiting for the primary a to take the role (failbackDelaySeconds: 20 s in the sample)")
		if t, err = waitTriad(ctx, 90*time.Second, func(t *licensehav1.LicenseTriad) bool {
			return t.Status.Phase == licensehav1.TriadActive && t.Status.ActiveMember == "a"
		}); err != nil {
			return err
		}
	}
	table(ctx)

	targets, err := memberTargets(ctx)
	if err != nil {
		return err
	}
	w := probe.NewWatcher(targets, 50*time.Millisecond)
	go w.Run(ctx)
	load, err := probe.StartLoad(ctx, probe.ClientConfig(targets, "a", "demo-client"),
		"LabelDesigner", 5, 50*time.Millisecond)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	info("A client holds 5 printer seats and sends a heartbeat every 50 ms; a probe asks every member every 50 ms whether it serves")

	step("Freeze: freeze the active member's pod (cgroup freezer: a hung server, no restart to the rescue)")
	frozen := t.Status.ActiveMember
	if err := crash(ctx, w, load, frozen, "pause"); err != nil {
		return err
	}

	step("Failback: resume %s; the primary takes the role back after failbackDelaySeconds (20 s in the sample)", frozen)
	resumed := time.Now()
	if err := realcluster(ctx, "fault", "resume", "plant-a-"+frozen); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	info("Right after resuming, %s serves: %v (its serve bound lapsed while frozen, so it fenced itself)", frozen, contains(w.Serving(), frozen))
	back, err := w.WaitFor(ctx, "a", 90*time.Second)
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	info("Primary a serves again %.1f s after the resume; client's longest gap during failback: %d ms",
		back.Sub(resumed).Seconds(), load.LongestGapSince(resumed).Milliseconds())
	table(ctx)

	step("Crash: SIGKILL the processes of the active member's container (its cgroup)")
	if err := crash(ctx, w, load, "a", "kill"); err != nil {
		return err
	}
	info("The kubelet restarted a's container at once; a takes the role back after failbackDelaySeconds")

	step("Summary")
	info("Seats lost: %d of 5; moments with two members serving: %d ms", load.Lost(), w.Overlap().Milliseconds())
	fmt.Printf(`
Everything keeps running. Try:
    export KUBECONFIG=%s
    kubectl get licenseha                         # (kubectl is %s/kubectl)
    bin/kubectl-licenseha status plant-a
    bin/kubectl-licenseha logs plant-a            # the members' logs; the operator's: %s
    bin/realcluster fault pause plant-a-a         # more faults: docs/local-cluster.md
Stop it all with: make local-down
`, kubeconfig, k8sBin, operatorLogs)
	return nil
}

// crash applies a fault to a member and reports how service came back.
func crash(ctx context.Context, w *probe.Watcher, load *probe.Load, member, fault string) error {
	before := w.Overlap()
	at := time.Now()
	if err := realcluster(ctx, "fault", fault, "plant-a-"+member); err != nil {
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
			return nil, fmt.Errorf("the triad did not form within %s; see %s and kubectl describe ltriad plant-a", timeout, operatorLogs)
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

// operatorLogs is the command that shows the operator's log.
const operatorLogs = "kubectl -n licenseha-system logs deploy/licenseha-operator"

// installOperator installs (or upgrades) the operator with the Helm chart
// from the checkout, running from the imported image and trusting the
// samples' development key, and waits until it is available.
func installOperator(ctx context.Context) error {
	keys, err := os.ReadFile(filepath.Join(root, "config", "samples", "dev-trusted-keys.pem"))
	if err != nil {
		return err
	}
	repo, tag, _ := strings.Cut(image, ":")
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "helm"), "upgrade", "--install", "licenseha",
		filepath.Join(root, "charts", "licenseha"), "-n", "licenseha-system", "--create-namespace",
		"--set", "crds.enabled=false", "--set", "image.repository="+repo, "--set", "image.tag="+tag,
		"--set", "image.pullPolicy=Never", "--set-string", "trustedKeys.pem="+string(keys), "--wait", "--timeout", "3m")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HELM_CACHE_HOME="+filepath.Join(state, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(state, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(state, "helm", "data"))
	info("helm upgrade --install licenseha charts/licenseha -n licenseha-system (image %s, pull policy Never)", image)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("installing the chart: %w: %s", err, out)
	}
	info("Operator ready (Deployment licenseha-operator in licenseha-system; log: %s)", operatorLogs)
	return nil
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

// realcluster runs the cluster tool, bin/realcluster.
func realcluster(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "realcluster"), args...)
	cmd.Env = append(os.Environ(), "REALCLUSTER_STATE_DIR="+state)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("realcluster %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
