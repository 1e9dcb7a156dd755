package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// clusterPrefixLen is the size of the pod network (10.244.0.0/16 for
// instance 0), which holds every node's pod CIDR: node k gets 10.244.k.0/24.
const clusterPrefixLen = 16

// setupBridge creates the bridge that every pod's veth is attached to. It
// forwards (only) between its own ports, which the service proxy needs for
// pod-to-ClusterIP traffic; the host's global forwarding setting is left
// alone.
func setupBridge() error {
	err := ipCommands(
		[]string{"link", "add", bridgeName, "type", "bridge"},
		[]string{"addr", "add", fmt.Sprintf("%s/%d", bridgeIP, clusterPrefixLen), "dev", bridgeName},
		[]string{"link", "set", bridgeName, "up"},
	)
	if err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/net/ipv4/conf/"+bridgeName+"/forwarding", []byte("1"), 0o644)
}

// podCIDR is node k's range of pod addresses.
func podCIDR(node int) string { return fmt.Sprintf("%s.%d.0/24", podNetPrefix, node) }

// ipam hands out pod addresses from one node's /24, round-robin so that an
// address is not reused right after its pod went away.
type ipam struct {
	mu     sync.Mutex
	node   int
	used   map[string]bool
	cursor int
}

func newIPAM(node int) *ipam { return &ipam{node: node, used: map[string]bool{}} }

func (a *ipam) allocate() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 0; i < 253; i++ {
		a.cursor = a.cursor%253 + 1 // 2..254: .1 of node 0's /24 is the bridge
		ip := fmt.Sprintf("%s.%d.%d", podNetPrefix, a.node, a.cursor+1)
		if !a.used[ip] {
			a.used[ip] = true
			return ip, nil
		}
	}
	return "", fmt.Errorf("no pod address left in %s", podCIDR(a.node))
}

func (a *ipam) release(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.used, ip)
}

// sandbox is a pod's network: a named network namespace with a veth pair
// whose outer end is on the bridge.
type sandbox struct {
	Netns string `json:"netns"`
	Veth  string `json:"veth"`
	IP    string `json:"ip"`
}

func sandboxFor(uid, ip string) sandbox {
	id := strings.ReplaceAll(uid, "-", "")
	// Interface names have at most 15 characters.
	return sandbox{Netns: netnsPrefix + id[:12], Veth: vethPrefix + id[:15-len(vethPrefix)], IP: ip}
}

func (s sandbox) netnsPath() string { return "/run/netns/" + s.Netns }

func (s sandbox) create() error {
	err := ipCommands(
		[]string{"netns", "add", s.Netns},
		[]string{"link", "add", s.Veth, "type", "veth", "peer", "name", "eth0", "netns", s.Netns},
		[]string{"link", "set", s.Veth, "master", bridgeName, "up"},
		// A pod that reaches itself through its Service gets its packets
		// back through the port they came in by.
		[]string{"link", "set", s.Veth, "type", "bridge_slave", "hairpin", "on"},
		[]string{"-n", s.Netns, "addr", "add", fmt.Sprintf("%s/%d", s.IP, clusterPrefixLen), "dev", "eth0"},
		[]string{"-n", s.Netns, "link", "set", "eth0", "up"},
		[]string{"-n", s.Netns, "link", "set", "lo", "up"},
		[]string{"-n", s.Netns, "route", "add", "default", "via", bridgeIP},
	)
	if err != nil {
		s.destroy()
		return fmt.Errorf("creating the network of pod %s: %w", s.IP, err)
	}
	return nil
}

// destroy kills whatever still runs in the namespace and removes it, which
// also removes the veth pair.
func (s sandbox) destroy() {
	killNetnsProcesses(s.netnsPath())
	_ = ipCommands([]string{"link", "del", s.Veth})
	_ = ipCommands([]string{"netns", "del", s.Netns})
}

func ipCommands(cmds ...[]string) error {
	for _, args := range cmds {
		if err := runTool("ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// runTool runs ip or iptables and turns a failure into an error that quotes
// the command and its output.
func runTool(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if _, lookErr := exec.LookPath(name); lookErr != nil {
			return fmt.Errorf("%s not found: install the Debian package %s", name, debianPackage[name])
		}
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

var debianPackage = map[string]string{"ip": "iproute2", "iptables": "iptables", "nsenter": "util-linux"}

// leftoverNetworks lists the namespaces and links a previous cluster left.
func leftoverNetworks() (netns []string, links []string) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), netnsPrefix) {
			netns = append(netns, e.Name())
		}
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Name == bridgeName || strings.HasPrefix(i.Name, vethPrefix) {
			links = append(links, i.Name)
		}
	}
	return netns, links
}
