package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// setupHostNetwork puts the API server's and the nodes' addresses on one end
// of a veth pair (this kernel has no dummy interfaces): they are local
// addresses of the host, which every pod reaches through its node's bridge
// gateway. The bridges themselves are made by the CNI bridge plugin.
func setupHostNetwork(in instance, nodes int) error {
	cmds := [][]string{
		{"link", "add", in.vethHost(), "type", "veth", "peer", "name", in.vethPeer()},
		{"addr", "add", in.apiHost() + "/32", "dev", in.vethHost()},
	}
	for k := 0; k < nodes; k++ {
		cmds = append(cmds, []string{"addr", "add", in.nodeIP(k) + "/32", "dev", in.vethHost()})
	}
	cmds = append(cmds, []string{"link", "set", in.vethHost(), "up"}, []string{"link", "set", in.vethPeer(), "up"})
	for _, c := range cmds {
		if err := runTool("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// ourLinks are the links of the instance: the veth pair and the bridges.
func ourLinks(in instance) []string {
	var out []string
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Name == in.vethHost() || i.Name == in.vethPeer() || strings.HasPrefix(i.Name, in.bridgePrefix()) {
			out = append(out, i.Name)
		}
	}
	return out
}

func runTool(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// The kubelet sets kernel tunables (kernel.panic and others, unless
// protectKernelDefaults) and the CNI bridge plugin turns on IPv4
// forwarding. The first "up" records their values; the clean-up puts them
// back. It also records which shared paths the kubelets create.
var trackedSysctls = []string{
	"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
	"net/ipv4/conf/all/route_localnet",
}

// sharedPaths are fixed paths a kubelet uses whatever its root directory.
var sharedPaths = []string{"/run/containerd", "/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/usr/libexec/kubernetes", "/etc/cni/net.d"}

type hostRecord struct {
	Sysctls map[string]string `json:"sysctls"`
	Created []string          `json:"created"`
}

func saveSysctls(in instance) error {
	if _, err := os.Stat(in.sysctlFile()); err == nil {
		return nil // recorded by an earlier run that did not clean up
	}
	rec := hostRecord{Sysctls: map[string]string{}}
	for _, s := range trackedSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", s))
		if err != nil {
			continue
		}
		rec.Sysctls[s] = strings.TrimSpace(string(v))
	}
	for _, p := range sharedPaths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			rec.Created = append(rec.Created, p)
		}
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(in.sysctlFile(), data, 0o644)
}

// restoreHost puts the recorded sysctls back and removes the shared paths
// the kubelets created. Writing ip_forward resets the forwarding flag of
// every interface, so the flags of the other interfaces (another local
// cluster's bridge, say) are read first and written again after it.
func restoreHost(in instance) error {
	data, err := os.ReadFile(in.sysctlFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec hostRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("%s: %w", in.sysctlFile(), err)
	}
	perIface := map[string]string{}
	confs, _ := filepath.Glob("/proc/sys/net/ipv4/conf/*/forwarding")
	for _, f := range confs {
		if v, err := os.ReadFile(f); err == nil {
			perIface[f] = strings.TrimSpace(string(v))
		}
	}
	var errs []error
	for s, v := range rec.Sysctls {
		p := filepath.Join("/proc/sys", s)
		if cur, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", s, err))
		}
	}
	for f, v := range perIface {
		dir := filepath.Base(filepath.Dir(f))
		if dir == "all" || dir == "default" || strings.HasPrefix(dir, in.bridgePrefix()) || dir == in.vethHost() || dir == in.vethPeer() {
			continue
		}
		if cur, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(cur)) != v {
			_ = os.WriteFile(f, []byte(v), 0o644)
		}
	}
	for _, p := range rec.Created {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(in.sysctlFile())
}
