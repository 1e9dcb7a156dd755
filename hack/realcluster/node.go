package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

// Debian's containernetworking-plugins install here.
const cniBinDir = "/usr/lib/cni"

// containerdConfig is node k's containerd: its own socket, root, state and
// runc root; the CRI plugin uses the local pause image, the cgroupfs driver
// and its own CNI configuration, keeps the pods' network namespaces in its
// state directory, and does not ask runc for a negative oom_score_adj (root
// here lacks CAP_SYS_RESOURCE; runc fails with "can't get final child's PID
// from pipe" otherwise).
func containerdConfig(n nodePaths) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, filepath.Join(n.varDir(), "containerd"), filepath.Join(n.runDir(), "containerd"), n.socket(),
		filepath.Join(n.runDir(), "containerd-ttrpc.sock"), filepath.Join(n.varDir(), "opt"),
		pauseImage, filepath.Join(n.runDir(), "runc"), cniBinDir, n.cniConfDir())
}

// cniConfig is node k's pod network: a bridge with the node's pod CIDR,
// the host as gateway, hairpin on (a pod reaching itself through a
// Service), no masquerading (pods only talk to the cluster).
func cniConfig(n nodePaths) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "%s-n%d",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.in.name(), n.k, n.in.bridge(n.k), n.in.podCIDR(n.k), filepath.Join(n.varDir(), "ipam"))
}

// kubeletConfig: see docs/design/real-nodes.md for why each setting.
func kubeletConfig(n nodePaths, cp *controlplane.ControlPlane, o upOptions) string {
	name := n.in.nodeName(n.k)
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: %s
healthzPort: 10248
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
clusterDNS: [%s]
clusterDomain: %s
resolvConf: /etc/resolv.conf
nodeLeaseDurationSeconds: %d
nodeStatusUpdateFrequency: 2s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
podLogsDir: %s
volumePluginDir: %s
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
staticPodPath: ""
maxPods: 110
registerNode: true
`, n.in.nodeIP(n.k), n.in.nodeIP(n.k), cp.PKI(name+"-serving.crt"), cp.PKI(name+"-serving.key"), cp.PKI("ca.crt"),
		n.socket(), filepath.Join(n.in.nodeCgroup(n.k), "pods"), n.in.apiHost(), controlplane.ClusterDomain,
		int(o.nodeLease.Seconds()), filepath.Join(n.varDir(), "pod-logs"), filepath.Join(n.varDir(), "volume-plugins"))
}

// startNode starts node k: its containerd (in the node's daemons cgroup),
// the images, then its kubelet.
func (c *cluster) startNode(ctx context.Context, k int) error {
	n := nodePaths{in: c.in, k: k}
	name := c.in.nodeName(k)
	for _, d := range []string{n.varDir(), n.runDir(), n.cniConfDir(), n.kubeletDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(n.containerdConf(), []byte(containerdConfig(n)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.cniConfDir(), "10-bridge.conflist"), []byte(cniConfig(n)), 0o644); err != nil {
		return err
	}
	daemons := filepath.Join(c.in.nodeCgroup(k), "daemons")
	if err := createCgroup(daemons); err != nil {
		return err
	}
	if err := createCgroup(filepath.Join(c.in.nodeCgroup(k), "pods")); err != nil {
		return err
	}
	intoCgroup := func(pid int) error { return moveToCgroup(daemons, pid) }
	if err := c.cp.RunProcess("containerd-n"+fmt.Sprint(k), c.opts.containerd, true, intoCgroup, "--config", n.containerdConf()); err != nil {
		return err
	}
	if err := waitSocket(ctx, n.socket(), 30*time.Second); err != nil {
		return fmt.Errorf("containerd of %s: %w (see %s)", name, err, c.cp.LogFile("containerd-n"+fmt.Sprint(k)))
	}
	for _, img := range c.opts.images {
		if out, err := exec.CommandContext(ctx, "ctr", "--address", n.socket(), "-n", "k8s.io", "images", "import", img).CombinedOutput(); err != nil {
			return fmt.Errorf("importing %s into %s: %v: %s", img, name, err, strings.TrimSpace(string(out)))
		}
	}
	// The node's credentials: a client certificate system:node:<name>
	// (the Node authorizer and NodeRestriction admit it) and a serving
	// certificate for its IP.
	if err := c.cp.IssueClient(name, controlplane.CertRequest{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}); err != nil {
		return err
	}
	if err := c.cp.Issue(name+"-serving", controlplane.CertRequest{CommonName: name, Server: true, DNSNames: []string{name}, IPs: []net.IP{net.ParseIP(c.in.nodeIP(k))}}); err != nil {
		return err
	}
	if err := os.WriteFile(n.kubeletConf(), []byte(kubeletConfig(n, c.cp, c.opts)), 0o644); err != nil {
		return err
	}
	return c.cp.RunProcess("kubelet-n"+fmt.Sprint(k), filepath.Join(c.opts.k8sBinDir, "kubelet"), true, intoCgroup,
		"--config="+n.kubeletConf(),
		"--kubeconfig="+c.cp.ComponentKubeconfig(name),
		"--root-dir="+n.kubeletDir(),
		"--hostname-override="+name,
		"--node-ip="+c.in.nodeIP(k),
		fmt.Sprintf("--node-labels=topology.kubernetes.io/zone=zone-%d", k),
		"--v=1",
	)
}

// kubeProxyConfig: iptables mode; it leaves the conntrack sysctls and
// route_localnet alone, serves node ports on node 0's address only, and
// masquerades traffic to Services from outside the pod network. Its sync
// periods are the upstream defaults a user's cluster has (a zero
// minSyncPeriod means 1 s too): kube-proxy applies endpoint changes at
// most once a second, so a handover seen through a Service costs up to a
// second more than at the members' own addresses, and the suites measure
// that as users would meet it.
func kubeProxyConfig(in instance, cp *controlplane.ControlPlane) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: %s:10256
metricsBindAddress: %s:10249
clusterCIDR: %s
nodePortAddresses: [%s/32]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 1s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`, cp.ComponentKubeconfig("kube-proxy"), in.nodeName(0), in.nodeIP(0), in.nodeIP(0), in.nodeIP(0), in.podNet(), in.nodeIP(0))
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer after %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
