package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Helpers both cluster tools use around the control plane: the background
// start, the host lock, the readiness waits.

// Detach starts "<this binary> up --state-dir=<stateDir> args..." (without
// --detach) in its own session, logging to logFile, and waits until it
// writes readyFile (then it prints where things are) or exits.
func Detach(what, stateDir, logFile, readyFile, kubeconfig string, args []string) error {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return err
	}
	_ = os.Remove(readyFile)
	log, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer log.Close()
	var rest []string
	for _, a := range args {
		if a != "--detach" && a != "-detach" && a != "--detach=true" {
			rest = append(rest, a)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, append([]string{"up", "--state-dir=" + stateDir}, rest...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(20 * time.Minute) // the first run may build the binaries
	for {
		if _, err := os.Stat(readyFile); err == nil {
			fmt.Printf("%s running (pid %d); kubeconfig: %s; log: %s\n", what, cmd.Process.Pid, kubeconfig, logFile)
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the %s exited (%v); see %s", what, err, logFile)
		case <-deadline:
			return fmt.Errorf("the %s did not become ready in time; see %s", what, logFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ErrLocked: another process holds the lock.
var ErrLocked = errors.New("lock held")

// TakeLock locks path exclusively (flock), or fails with ErrLocked.
func TakeLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	return f, nil
}

// ReadPid reads a pid file.
func ReadPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// RepoRoot is the checkout the running binary belongs to (bin/<tool>).
func RepoRoot() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return filepath.Dir(filepath.Dir(exe)), nil
}

// WaitDefaultServiceAccount waits for the "default" ServiceAccount, without
// which the ServiceAccount admission rejects pods in the default namespace.
func WaitDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface) error {
	// Long enough for one restart of a controller manager whose first
	// requests the API server left hanging (it gives up after 30 s).
	deadline := time.Now().Add(75 * time.Second)
	for {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the default ServiceAccount did not appear (is kube-controller-manager running?): %w", err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// WaitNodesSchedulable waits until want nodes are Ready and carry no
// NoSchedule or NoExecute taint. The controller manager taints a node it
// saw before its first status (node.kubernetes.io/not-ready) and lifts the
// taint a few seconds later; pods created meanwhile could wait many seconds
// for the scheduler to try them again.
func WaitNodesSchedulable(ctx context.Context, cs kubernetes.Interface, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		ready, why := 0, "no nodes yet"
		if err == nil {
			for _, n := range nodes.Items {
				if reason := Unschedulable(&n); reason != "" {
					why = n.Name + ": " + reason
					continue
				}
				ready++
			}
		} else {
			why = err.Error()
		}
		if ready >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes are schedulable after %s (%s)", ready, want, timeout, why)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// Unschedulable says why the scheduler would not place a pod without
// tolerations on n, "" when it would.
func Unschedulable(n *corev1.Node) string {
	if n.Spec.Unschedulable {
		return "cordoned"
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return "taint " + t.Key
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return ""
			}
			return "not ready"
		}
	}
	return "no Ready condition yet"
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
