package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	procs   []*exec.Cmd
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
	if err := cp.run("etcd",
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
	if err := cp.run("kube-apiserver",
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
	if err := cp.run("kube-controller-manager",
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
	if err := cp.run("kube-scheduler",
		"--kubeconfig="+cp.l.componentKubeconfig("kube-scheduler"),
		"--leader-elect=false",
		"--secure-port=0",
	); err != nil {
		return err
	}
	return nil
}

// run starts one component with its log in <state>/logs.
func (cp *controlPlane) run(name string, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(cp.l.logFile(name)), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(cp.l.logFile(name))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(cp.binDir, name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: Ctrl-C on the terminal reaches only localcluster,
	// which then stops the components in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	cp.procs = append(cp.procs, cmd)
	return recordPid(cp.l, name, cmd.Process.Pid)
}

// stop terminates the components in reverse start order.
func (cp *controlPlane) stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
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
