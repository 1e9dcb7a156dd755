package main

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
	// The API server listens on its instance's bridge address, so every
	// instance can use the standard port.
	apiServerPort        = 6443
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

// controlPlane runs etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler from the binaries in binDir.
type controlPlane struct {
	l      layout
	binDir string
	// apiHost is the address the API server listens on and advertises: the
	// bridge's address, reachable from the host and from every pod.
	apiHost string
	procs   []*component
}

func (cp *controlPlane) apiServerURL() string {
	return "https://" + net.JoinHostPort(cp.apiHost, strconv.Itoa(apiServerPort))
}

// writePKI creates the CA, the serving and client certificates, the
// service-account keys and one kubeconfig per component.
func (cp *controlPlane) writePKI() error {
	ca, err := newCertAuthority(cp.l)
	if err != nil {
		return err
	}
	serving := certRequest{
		commonName: "kube-apiserver",
		server:     true,
		dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		ips: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(cp.apiHost), net.ParseIP(kubernetesServiceIP)},
	}
	clients := map[string]certRequest{
		"admin":                   {commonName: "localcluster-admin", organization: []string{"system:masters"}},
		"kube-controller-manager": {commonName: "system:kube-controller-manager"},
		"kube-scheduler":          {commonName: "system:kube-scheduler"},
		// The node agent serves every node of the cluster with one client, so
		// it is an administrator rather than system:node:<name>.
		"node-agent": {commonName: "localcluster-node-agent", organization: []string{"system:masters"}},
	}
	if err := ca.issue(cp.l.pki("apiserver"), serving); err != nil {
		return err
	}
	kubelet := certRequest{commonName: "localcluster-kubelet", server: true, ips: []net.IP{net.ParseIP(cp.apiHost)}}
	if err := ca.issue(cp.l.pki("kubelet"), kubelet); err != nil {
		return err
	}
	if err := ca.issue(cp.l.pki("apiserver-kubelet-client"), certRequest{commonName: "kube-apiserver-kubelet-client"}); err != nil {
		return err
	}
	for name, req := range clients {
		if err := ca.issue(cp.l.pki(name), req); err != nil {
			return err
		}
		if err := writeKubeconfig(cp.l, cp.l.componentKubeconfig(name), cp.apiServerURL(), name, false); err != nil {
			return err
		}
	}
	if err := writeServiceAccountKeys(cp.l); err != nil {
		return err
	}
	return writeKubeconfig(cp.l, cp.l.kubeconfig(), cp.apiServerURL(), "admin", true)
}

// start launches etcd and the API server, waits until the API server is
// ready, then launches the controller manager and the scheduler.
func (cp *controlPlane) start(ctx context.Context) error {
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort)
	if err := cp.run("etcd", false,
		"--name=localcluster",
		"--data-dir="+cp.l.etcdData(),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeerPort),
		fmt.Sprintf("--initial-cluster=localcluster=http://127.0.0.1:%d", etcdPeerPort),
		"--unsafe-no-fsync", // a throw-away development cluster
		"--log-level=warn",
	); err != nil {
		return err
	}
	pki := cp.l.pki
	if err := cp.run("kube-apiserver", false,
		"--etcd-servers="+etcdURL,
		"--bind-address="+cp.apiHost,
		"--advertise-address="+cp.apiHost,
		fmt.Sprintf("--secure-port=%d", apiServerPort),
		"--tls-cert-file="+pki("apiserver.crt"),
		"--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--service-account-issuer="+serviceAccountIssuer,
		"--service-account-key-file="+pki("sa.pub"),
		"--service-account-signing-key-file="+pki("sa.key"),
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate="+pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pki("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--enable-admission-plugins=NodeRestriction,PodSecurity,ServiceAccount,DefaultStorageClass",
		"--allow-privileged=true",
		"--profiling=false",
	); err != nil {
		return err
	}
	admin, _, err := clientFromKubeconfig(cp.l.componentKubeconfig("admin"))
	if err != nil {
		return err
	}
	if err := waitAPIServerReady(ctx, admin, 60*time.Second); err != nil {
		return fmt.Errorf("%w (see %s)", err, cp.l.logFile("kube-apiserver"))
	}
	if err := cp.run("kube-controller-manager", true,
		"--kubeconfig="+cp.l.componentKubeconfig("kube-controller-manager"),
		"--root-ca-file="+pki("ca.crt"),
		"--service-account-private-key-file="+pki("sa.key"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range="+serviceCIDR,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
	); err != nil {
		return err
	}
	if err := cp.run("kube-scheduler", true,
		"--kubeconfig="+cp.l.componentKubeconfig("kube-scheduler"),
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
	cp   *controlPlane
	name string
	args []string
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
func (cp *controlPlane) run(name string, restart bool, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(cp.l.logFile(name)), 0o755); err != nil {
		return err
	}
	if err := os.Remove(cp.l.logFile(name)); err != nil && !os.IsNotExist(err) {
		return err
	}
	c := &component{cp: cp, name: name, args: args, restart: restart}
	if err := c.start(); err != nil {
		return err
	}
	cp.procs = append(cp.procs, c)
	return nil
}

func (c *component) start() error {
	logFile, err := os.OpenFile(c.cp.l.logFile(c.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(c.cp.binDir, c.name), c.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: Ctrl-C on the terminal reaches only localcluster,
	// which then stops the components in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.name, err)
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
		log.Printf("%s exited (%v); starting it again in 1s (see %s)", c.name, err, c.cp.l.logFile(c.name))
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
	return recordPid(c.cp.l, c.name, cmd.Process.Pid)
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

// stop terminates the components in reverse start order.
func (cp *controlPlane) stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].stop()
	}
	cp.procs = nil
}

func waitAPIServerReady(ctx context.Context, cs *kubernetes.Clientset, timeout time.Duration) error {
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

// recordPid notes a component's process so that "down" can stop it even
// when the localcluster process that started it is gone.
func recordPid(l layout, name string, pid int) error {
	dir := filepath.Join(l.dir, "pids")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(pid)), 0o644)
}
