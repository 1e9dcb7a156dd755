package controlplane

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

const (
	// APIServerPort is the API server's port. It listens on its cluster's
	// own address, so every cluster can use the standard port.
	APIServerPort        = 6443
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

// Paths names the files of one cluster under its state directory.
type Paths struct {
	Dir string
}

func (p Paths) PKI(name string) string  { return filepath.Join(p.Dir, "pki", name) }
func (p Paths) Kubeconfig() string      { return filepath.Join(p.Dir, "kubeconfig") }
func (p Paths) EtcdData() string        { return filepath.Join(p.Dir, "etcd") }
func (p Paths) LogFile(n string) string { return filepath.Join(p.Dir, "logs", n+".log") }

// ComponentKubeconfig is the kubeconfig a control-plane component or a node
// uses, each with its own client certificate.
func (p Paths) ComponentKubeconfig(name string) string {
	return filepath.Join(p.Dir, "kubeconfigs", name+".kubeconfig")
}

// ControlPlane runs etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler from the binaries in BinDir.
type ControlPlane struct {
	Paths
	BinDir string
	// ClusterName names the cluster, its user and context in kubeconfigs.
	ClusterName string
	// APIHost is the address the API server listens on and advertises,
	// reachable from the host and from every pod.
	APIHost                      string
	EtcdClientPort, EtcdPeerPort int
	ServiceCIDR                  string
	// KubernetesServiceIP is the first address of ServiceCIDR, which the
	// API server assigns to the "kubernetes" Service.
	KubernetesServiceIP string
	// Clients are the client certificates (and kubeconfigs) to create
	// besides the controller manager's and the scheduler's; "admin" is
	// the one written to Paths.Kubeconfig.
	Clients map[string]CertRequest
	// Extra flags, appended to the defaults (a later flag wins).
	APIServerFlags, ControllerManagerFlags []string

	ca    *CertAuthority
	procs []*component
}

func (cp *ControlPlane) APIServerURL() string {
	return "https://" + net.JoinHostPort(cp.APIHost, strconv.Itoa(APIServerPort))
}

// WritePKI creates the CA, the serving and client certificates, the
// service-account keys and one kubeconfig per client.
func (cp *ControlPlane) WritePKI() error {
	ca, err := NewCertAuthority(cp.Paths)
	if err != nil {
		return err
	}
	cp.ca = ca
	serving := CertRequest{
		CommonName: "kube-apiserver",
		Server:     true,
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(cp.APIHost), net.ParseIP(cp.KubernetesServiceIP)},
	}
	clients := map[string]CertRequest{
		"kube-controller-manager": {CommonName: "system:kube-controller-manager"},
		"kube-scheduler":          {CommonName: "system:kube-scheduler"},
	}
	for name, req := range cp.Clients {
		clients[name] = req
	}
	if err := ca.Issue(cp.PKI("apiserver"), serving); err != nil {
		return err
	}
	if err := ca.Issue(cp.PKI("apiserver-kubelet-client"), CertRequest{CommonName: "kube-apiserver-kubelet-client"}); err != nil {
		return err
	}
	for name, req := range clients {
		if err := cp.IssueClient(name, req); err != nil {
			return err
		}
	}
	if err := writeServiceAccountKeys(cp.Paths); err != nil {
		return err
	}
	return WriteKubeconfig(cp.Paths, cp.ClusterName, cp.Kubeconfig(), cp.APIServerURL(), "admin", true)
}

// Issue signs a certificate with the cluster's CA (after WritePKI) into
// <pki>/<name>.crt and .key.
func (cp *ControlPlane) Issue(name string, req CertRequest) error {
	return cp.ca.Issue(cp.PKI(name), req)
}

// IssueClient issues a client certificate and writes its kubeconfig
// (ComponentKubeconfig(name)).
func (cp *ControlPlane) IssueClient(name string, req CertRequest) error {
	if err := cp.Issue(name, req); err != nil {
		return err
	}
	return WriteKubeconfig(cp.Paths, cp.ClusterName, cp.ComponentKubeconfig(name), cp.APIServerURL(), name, false)
}

// Start launches etcd and the API server, waits until the API server is
// ready, then launches the controller manager and the scheduler.
func (cp *ControlPlane) Start(ctx context.Context) error {
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", cp.EtcdClientPort)
	if err := cp.run("etcd", false,
		"--name="+cp.ClusterName,
		"--data-dir="+cp.EtcdData(),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", cp.EtcdPeerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", cp.EtcdPeerPort),
		fmt.Sprintf("--initial-cluster=%s=http://127.0.0.1:%d", cp.ClusterName, cp.EtcdPeerPort),
		"--unsafe-no-fsync", // a throw-away development cluster
		"--log-level=warn",
	); err != nil {
		return err
	}
	pki := cp.PKI
	apiServerFlags := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + cp.APIHost,
		"--advertise-address=" + cp.APIHost,
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"),
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=" + cp.ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--enable-admission-plugins=NodeRestriction,PodSecurity,ServiceAccount,DefaultStorageClass",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if err := cp.run("kube-apiserver", false, append(apiServerFlags, cp.APIServerFlags...)...); err != nil {
		return err
	}
	admin, _, err := ClientFromKubeconfig(cp.Kubeconfig())
	if err != nil {
		return err
	}
	if err := WaitAPIServerReady(ctx, admin, 60*time.Second); err != nil {
		return fmt.Errorf("%w (see %s)", err, cp.LogFile("kube-apiserver"))
	}
	cmFlags := []string{
		"--kubeconfig=" + cp.ComponentKubeconfig("kube-controller-manager"),
		"--root-ca-file=" + pki("ca.crt"),
		"--service-account-private-key-file=" + pki("sa.key"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + cp.ServiceCIDR,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
	}
	if err := cp.run("kube-controller-manager", true, append(cmFlags, cp.ControllerManagerFlags...)...); err != nil {
		return err
	}
	if err := cp.run("kube-scheduler", true,
		"--kubeconfig="+cp.ComponentKubeconfig("kube-scheduler"),
		"--v=2", // its scheduling decisions, for troubleshooting
		"--leader-elect=false",
		"--secure-port=0",
	); err != nil {
		return err
	}
	return nil
}

// component is one running control-plane process.
type component struct {
	cp   *ControlPlane
	name string
	path string
	args []string
	// setup runs once the process has started (it may move it to a cgroup).
	setup func(pid int) error
	// restart: the component is started again when it exits (the
	// controller manager and the scheduler exit when the API server fails
	// them during their start; a kubelet restarts such static pods too).
	restart bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	stopping bool
}

// run starts one component with its log in <state>/logs.
func (cp *ControlPlane) run(name string, restart bool, args ...string) error {
	return cp.RunProcess(name, filepath.Join(cp.BinDir, name), restart, nil, args...)
}

// RunProcess starts and supervises another program beside the control plane
// (a node's daemons), logged to LogFile(name) and recorded for "down" like
// the components; setup, when not nil, runs with its pid after each start.
// Stop stops it with the components, in reverse start order.
func (cp *ControlPlane) RunProcess(name, path string, restart bool, setup func(pid int) error, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(cp.LogFile(name)), 0o755); err != nil {
		return err
	}
	if err := os.Remove(cp.LogFile(name)); err != nil && !os.IsNotExist(err) {
		return err
	}
	c := &component{cp: cp, name: name, path: path, args: args, restart: restart, setup: setup}
	if err := c.start(); err != nil {
		return err
	}
	cp.procs = append(cp.procs, c)
	return nil
}

func (c *component) start() error {
	logFile, err := os.OpenFile(c.cp.LogFile(c.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(c.path, c.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: Ctrl-C on the terminal reaches only the cluster tool,
	// which then stops the components in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.name, err)
	}
	if c.setup != nil {
		if err := c.setup(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("setting up %s: %w", c.name, err)
		}
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		close(exited)
		c.mu.Lock()
		again := c.restart && !c.stopping
		c.mu.Unlock()
		if !again {
			return
		}
		log.Printf("%s exited (%v); starting it again in 1s (see %s)", c.name, err, c.cp.LogFile(c.name))
		time.Sleep(time.Second)
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		if !stopping {
			if err := c.start(); err != nil {
				log.Printf("restarting %s: %v", c.name, err)
			}
		}
	}()
	return RecordPid(c.cp.Dir, c.name, cmd.Process.Pid)
}

// stop terminates the component: SIGTERM, and SIGKILL after 5 s.
func (c *component) stop() {
	c.mu.Lock()
	c.stopping = true
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Stop terminates the components in reverse start order.
func (cp *ControlPlane) Stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].stop()
	}
	cp.procs = nil
}

// WaitAPIServerReady polls /readyz until it answers ok.
func WaitAPIServerReady(ctx context.Context, cs *kubernetes.Clientset, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %v", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RecordPid notes a component's process in <dir>/pids/<name> so that
// "down" can stop it even when the process that started it is gone.
func RecordPid(stateDir, name string, pid int) error {
	dir := filepath.Join(stateDir, "pids")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(pid)), 0o644)
}
