package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

// Up to ten real-node clusters can run side by side ($REALCLUSTER_INSTANCE,
// 0-9). Their addresses, names, ports and paths never meet each other's:
//
//	host addresses (API server, DNS, node IPs)  10.(190+i).0.0/24 on the veth pair rc<i>h/rc<i>p
//	pods                                        10.(200+i).0.0/16, node k: 10.(200+i).k.0/24 on bridge rc<i>b<k>
//	Services                                    10.(110+i).0.0/16
//	etcd                                        127.0.0.1:22379+10i, peer 22380+10i
type instance struct {
	index int
}

func instanceFromEnv() (instance, error) {
	v := os.Getenv("REALCLUSTER_INSTANCE")
	if v == "" {
		return instance{}, nil
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i > 9 {
		return instance{}, fmt.Errorf("REALCLUSTER_INSTANCE=%q: want a number from 0 to 9", v)
	}
	return instance{index: i}, nil
}

// stateCommand is the start of a subcommand that reads the state of this
// host's cluster: it takes no arguments, and works on the instance of
// $REALCLUSTER_INSTANCE with its state directory.
func stateCommand(name string, args []string) (instance, controlplane.Paths, error) {
	if len(args) > 0 {
		return instance{}, controlplane.Paths{}, fmt.Errorf("%s takes no arguments", name)
	}
	in, err := instanceFromEnv()
	if err != nil {
		return instance{}, controlplane.Paths{}, err
	}
	return in, controlplane.Paths{Dir: defaultStateDir()}, nil
}

const maxNodes = 9

func (in instance) name() string            { return fmt.Sprintf("realcluster%d", in.index) }
func (in instance) hostNet() string         { return fmt.Sprintf("10.%d.0", 190+in.index) }
func (in instance) apiHost() string         { return in.hostNet() + ".1" }
func (in instance) nodeIP(k int) string     { return fmt.Sprintf("%s.%d", in.hostNet(), 10+k) }
func (in instance) podNet() string          { return fmt.Sprintf("10.%d.0.0/16", 200+in.index) }
func (in instance) podCIDR(k int) string    { return fmt.Sprintf("10.%d.%d.0/24", 200+in.index, k) }
func (in instance) serviceCIDR() string     { return fmt.Sprintf("10.%d.0.0/16", 110+in.index) }
func (in instance) kubernetesSvcIP() string { return fmt.Sprintf("10.%d.0.1", 110+in.index) }
func (in instance) etcdClientPort() int     { return 22379 + 10*in.index }
func (in instance) etcdPeerPort() int       { return 22380 + 10*in.index }
func (in instance) vethHost() string        { return fmt.Sprintf("rc%dh", in.index) }
func (in instance) vethPeer() string        { return fmt.Sprintf("rc%dp", in.index) }
func (in instance) bridge(k int) string     { return fmt.Sprintf("rc%db%d", in.index, k) }
func (in instance) bridgePrefix() string    { return fmt.Sprintf("rc%db", in.index) }
func (in instance) nodeName(k int) string   { return fmt.Sprintf("realcluster-node-%d", k) }
func (in instance) lockFile() string        { return "/run/" + in.name() + ".lock" }

// Host paths: everything a node writes outside the state directory lives
// under these two roots (containerd's root and state, runc's root, the
// kubelet's root, pod logs, CNI files), so that "down" can find it.
func (in instance) varRoot() string { return "/var/lib/" + in.name() }
func (in instance) runRoot() string { return "/run/" + in.name() }

// cgroupRoot is the cgroup (in every v1 hierarchy) holding everything of
// the cluster's nodes: <root>/n<k>/daemons has node k's kubelet and
// containerd (and the shims), <root>/n<k>/pods is its kubelet's cgroupRoot.
func (in instance) cgroupRoot() string      { return "/" + in.name() }
func (in instance) nodeCgroup(k int) string { return fmt.Sprintf("%s/n%d", in.cgroupRoot(), k) }

// sysctlFile records the host's sysctls before the first node changed them.
func (in instance) sysctlFile() string { return filepath.Join("/var/lib", in.name()+".sysctls") }

// node k's paths.
type nodePaths struct {
	in instance
	k  int
}

func (n nodePaths) varDir() string         { return filepath.Join(n.in.varRoot(), fmt.Sprintf("n%d", n.k)) }
func (n nodePaths) runDir() string         { return filepath.Join(n.in.runRoot(), fmt.Sprintf("n%d", n.k)) }
func (n nodePaths) socket() string         { return filepath.Join(n.runDir(), "containerd.sock") }
func (n nodePaths) containerdConf() string { return filepath.Join(n.varDir(), "containerd.toml") }
func (n nodePaths) cniConfDir() string     { return filepath.Join(n.varDir(), "cni") }
func (n nodePaths) kubeletDir() string     { return filepath.Join(n.varDir(), "kubelet") }
func (n nodePaths) kubeletConf() string    { return filepath.Join(n.varDir(), "kubelet.yaml") }
