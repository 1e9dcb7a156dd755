package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

type upOptions struct {
	stateDir  string
	binDir    string
	k8sBinDir string
	nodes     int
	backoff   backoff
	resync    time.Duration
	detach    bool
}

func parseUpFlags(args []string) (upOptions, error) {
	var o upOptions
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "state directory: kubeconfig, certificates, etcd data, pod files and logs ($LOCALCLUSTER_STATE_DIR)")
	fs.StringVar(&o.binDir, "bin-dir", defaultBinDir(), "directory shown as /usr/local/bin of the licenseha image ($LOCALCLUSTER_BIN_DIR)")
	fs.StringVar(&o.k8sBinDir, "k8s-bin-dir", os.Getenv("LOCALCLUSTER_K8S_BIN_DIR"), "directory with etcd, kube-apiserver, kube-controller-manager and kube-scheduler (default: the output of hack/envtest-assets.sh)")
	fs.IntVar(&o.nodes, "nodes", 3, "number of nodes (each gets its own zone label and pod CIDR)")
	fs.DurationVar(&o.backoff.base, "restart-backoff", 10*time.Second, "container restart back-off after the first immediate restart (kubelet: 10s)")
	fs.DurationVar(&o.backoff.max, "max-restart-backoff", 5*time.Minute, "upper bound of the restart back-off (kubelet: 5m)")
	fs.DurationVar(&o.resync, "volume-resync", 2*time.Second, "how often configMap, secret and projected volumes are refreshed")
	fs.BoolVar(&o.detach, "detach", false, "run in the background; return once the API server and the nodes are ready")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.nodes < 1 || o.nodes > 200 {
		return o, fmt.Errorf("--nodes must be between 1 and 200")
	}
	var err error
	o.stateDir, err = filepath.Abs(o.stateDir)
	if err != nil {
		return o, err
	}
	o.binDir, err = filepath.Abs(o.binDir)
	return o, err
}

func runUp(args []string) error {
	o, err := parseUpFlags(args)
	if err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	lock, err := takeLock()
	if err != nil {
		return err
	}
	if o.detach {
		lock.Close() // the background process takes it
		return detach(o, args)
	}
	defer lock.Close()
	if o.k8sBinDir == "" {
		if o.k8sBinDir, err = envtestAssets(); err != nil {
			return err
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	c := &cluster{opts: o, l: layout{dir: o.stateDir}}
	err = c.start(ctx)
	if err == nil {
		<-ctx.Done()
		log.Printf("stopping the local cluster")
	}
	c.stop()
	return err
}

// takeLock fails when another local cluster runs on this host.
func takeLock() (*os.File, error) {
	f, err := controlplane.TakeLock(lockFile)
	if errors.Is(err, controlplane.ErrLocked) {
		return nil, fmt.Errorf("local cluster instance %d is running already (lock %s held): stop it with \"localcluster down\" or choose another $LOCALCLUSTER_INSTANCE", instanceIndex, lockFile)
	}
	return f, err
}

// envtestAssets builds (when missing) and locates the control-plane binaries.
func envtestAssets() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "envtest-assets.sh")
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w (or pass --k8s-bin-dir)", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// detach starts "up" again in its own session with its output in the state
// directory, and waits until it is ready or has failed.
func detach(o upOptions, args []string) error {
	l := layout{dir: o.stateDir}
	return controlplane.Detach("local cluster", o.stateDir, l.logFile("localcluster"), l.readyFile(), l.kubeconfig(), args)
}

func readPid(path string) (int, error) { return controlplane.ReadPid(path) }
