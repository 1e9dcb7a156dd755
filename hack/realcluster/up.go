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
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/informers"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

// pauseImage is the sandbox image containerd runs for every pod (built by
// make image from hack/pause).
const pauseImage = "localhost/licenseha/pause:dev"

type upOptions struct {
	stateDir   string
	k8sBinDir  string
	nodes      int
	images     []string
	detach     bool
	nodeLease  time.Duration
	nodeGrace  time.Duration
	containerd string
}

func parseUpFlags(args []string) (upOptions, error) {
	var o upOptions
	var images string
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "state directory: kubeconfig, certificates, etcd data, logs ($REALCLUSTER_STATE_DIR)")
	fs.StringVar(&o.k8sBinDir, "k8s-bin-dir", os.Getenv("REALCLUSTER_K8S_BIN_DIR"), "directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (default: built by hack/envtest-assets.sh)")
	fs.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&images, "images", "", "comma-separated image tarballs imported into every node (default: bin/pause-image.tar and bin/licenseha-image.tar of make image)")
	fs.BoolVar(&o.detach, "detach", false, "run in the background; return once the nodes are ready")
	fs.DurationVar(&o.nodeLease, "node-lease", 4*time.Second, "the kubelets' node lease duration (renewed every quarter of it)")
	fs.DurationVar(&o.nodeGrace, "node-grace", 20*time.Second, "kube-controller-manager's node-monitor-grace-period: how long a silent node stays Ready")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.nodes < 1 || o.nodes > maxNodes {
		return o, fmt.Errorf("--nodes must be between 1 and %d", maxNodes)
	}
	var err error
	if o.stateDir, err = filepath.Abs(o.stateDir); err != nil {
		return o, err
	}
	if images == "" {
		root, err := repoRoot()
		if err != nil {
			return o, err
		}
		images = filepath.Join(root, "bin", "pause-image.tar") + "," + filepath.Join(root, "bin", "licenseha-image.tar")
	}
	for _, img := range strings.Split(images, ",") {
		if img = strings.TrimSpace(img); img != "" {
			abs, err := filepath.Abs(img)
			if err != nil {
				return o, err
			}
			if _, err := os.Stat(abs); err != nil {
				return o, fmt.Errorf("image %s: %w (run make image)", img, err)
			}
			o.images = append(o.images, abs)
		}
	}
	o.containerd, err = exec.LookPath("containerd")
	if err != nil {
		return o, errors.New("containerd not found: run make deps (Debian packages containerd, runc, containernetworking-plugins)")
	}
	return o, nil
}

func runUp(args []string) error {
	o, err := parseUpFlags(args)
	if err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	in, err := instanceFromEnv()
	if err != nil {
		return err
	}
	lock, err := takeLock(in)
	if err != nil {
		return err
	}
	if o.detach {
		lock.Close() // the background process takes it
		return detach(o, args)
	}
	defer lock.Close()
	if o.k8sBinDir == "" {
		if o.k8sBinDir, err = k8sAssets(); err != nil {
			return err
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	c := &cluster{in: in, opts: o, paths: controlplane.Paths{Dir: o.stateDir}}
	err = c.start(ctx)
	if err == nil {
		<-ctx.Done()
		log.Printf("stopping the cluster")
	} else {
		log.Printf("start failed: %v", err)
	}
	c.stop()
	return err
}

// cluster is one running real-node cluster.
type cluster struct {
	in    instance
	opts  upOptions
	paths controlplane.Paths
	cp    *controlplane.ControlPlane

	cancel context.CancelFunc
}

func (c *cluster) start(ctx context.Context) error {
	began := time.Now()
	if err := cleanup(c.in, c.paths); err != nil {
		return fmt.Errorf("removing the leftovers of an earlier cluster: %w", err)
	}
	for _, e := range []string{"pki", "kubeconfigs", "kubeconfig", "etcd", "logs/kube-apiserver.log", "pids", "ready", "volumes"} {
		if err := os.RemoveAll(filepath.Join(c.paths.Dir, e)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(c.paths.Dir, "volumes"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(c.paths), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if err := saveSysctls(c.in); err != nil {
		return err
	}
	if err := setupHostNetwork(c.in, c.opts.nodes); err != nil {
		return err
	}
	in := c.in
	c.cp = &controlplane.ControlPlane{
		Paths:               c.paths,
		BinDir:              c.opts.k8sBinDir,
		ClusterName:         in.name(),
		APIHost:             in.apiHost(),
		EtcdClientPort:      in.etcdClientPort(),
		EtcdPeerPort:        in.etcdPeerPort(),
		ServiceCIDR:         in.serviceCIDR(),
		KubernetesServiceIP: in.kubernetesSvcIP(),
		Clients: map[string]controlplane.CertRequest{
			"admin":      {CommonName: "realcluster-admin", Organization: []string{"system:masters"}},
			"kube-proxy": {CommonName: "system:kube-proxy"},
			"services":   {CommonName: "realcluster-services", Organization: []string{"system:masters"}},
		},
		APIServerFlags: []string{"--kubelet-preferred-address-types=InternalIP,Hostname"},
		ControllerManagerFlags: []string{
			"--node-monitor-period=1s",
			"--node-monitor-grace-period=" + c.opts.nodeGrace.String(),
		},
	}
	if err := c.cp.WritePKI(); err != nil {
		return fmt.Errorf("creating certificates: %w", err)
	}
	if err := c.cp.Start(ctx); err != nil {
		return err
	}
	log.Printf("API server ready at %s after %.1fs", c.cp.APIServerURL(), time.Since(began).Seconds())

	for k := 0; k < c.opts.nodes; k++ {
		if err := c.startNode(ctx, k); err != nil {
			return err
		}
	}
	proxyConf := filepath.Join(c.in.varRoot(), "kube-proxy.yaml")
	if err := os.WriteFile(proxyConf, []byte(kubeProxyConfig(c.in, c.cp)), 0o644); err != nil {
		return err
	}
	if err := c.cp.RunProcess("kube-proxy", filepath.Join(c.opts.k8sBinDir, "kube-proxy"), true, nil, "--config="+proxyConf, "--v=1"); err != nil {
		return err
	}

	cs, _, err := controlplane.ClientFromKubeconfig(c.cp.ComponentKubeconfig("services"))
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	factory := informers.NewSharedInformerFactory(cs, 0)
	p := controlplane.NewProvisioner(cs, filepath.Join(c.paths.Dir, "volumes"), factory)
	if err := p.CreateStorageClass(ctx); err != nil {
		return fmt.Errorf("creating the default StorageClass: %w", err)
	}
	dns, err := controlplane.NewDNSServer(in.apiHost(), factory.Core().V1().Services().Lister(), factory.Discovery().V1().EndpointSlices().Lister())
	if err != nil {
		return err
	}
	factory.Start(runCtx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go dns.Serve(runCtx)
	go p.Run(runCtx)

	if err := controlplane.WaitNodesSchedulable(ctx, cs, c.opts.nodes, 120*time.Second); err != nil {
		return err
	}
	log.Printf("%d node(s) ready after %.1fs", c.opts.nodes, time.Since(began).Seconds())
	if err := controlplane.WaitDefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	if err := os.WriteFile(readyFile(c.paths), []byte(time.Now().Format(time.RFC3339)), 0o644); err != nil {
		return err
	}
	log.Printf("real-node cluster ready after %.1fs: %d node(s); export KUBECONFIG=%s", time.Since(began).Seconds(), c.opts.nodes, c.paths.Kubeconfig())
	return nil
}

// stop stops kube-proxy and the kubelets, removes the pods' containers,
// stops the containerds and the control plane, then removes everything else.
func (c *cluster) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	if c.cp != nil {
		c.cp.Stop()
	}
	if err := cleanup(c.in, c.paths); err != nil {
		log.Printf("clean-up: %v", err)
	}
	_ = os.Remove(readyFile(c.paths))
	_ = os.Remove(pidFile(c.paths))
}

// takeLock fails when this instance runs already.
func takeLock(in instance) (*os.File, error) {
	f, err := controlplane.TakeLock(in.lockFile())
	if errors.Is(err, controlplane.ErrLocked) {
		return nil, fmt.Errorf("real-node cluster instance %d is running already (lock %s held): stop it with \"realcluster down\" or choose another $REALCLUSTER_INSTANCE", in.index, in.lockFile())
	}
	return f, err
}

// k8sAssets builds (when missing) and locates the Kubernetes binaries.
func k8sAssets() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "envtest-assets.sh")
	var dir string
	for _, set := range [][]string{nil, {"kubelet", "kube-proxy"}} {
		cmd := exec.Command(script, set...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%s: %w (or pass --k8s-bin-dir)", script, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		dir = lines[len(lines)-1]
	}
	return dir, nil
}

// detach starts "up" again in its own session with its output in the state
// directory, and waits until it is ready or has failed.
func detach(o upOptions, args []string) error {
	p := controlplane.Paths{Dir: o.stateDir}
	return controlplane.Detach("real-node cluster", o.stateDir, p.LogFile("realcluster"), readyFile(p), p.Kubeconfig(), args)
}
