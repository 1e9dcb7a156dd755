package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

func runDown(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("down takes no arguments (the state directory comes from $REALCLUSTER_STATE_DIR)")
	}
	if err := requireRoot(); err != nil {
		return err
	}
	in, err := instanceFromEnv()
	if err != nil {
		return err
	}
	p := controlplane.Paths{Dir: defaultStateDir()}
	if pid, err := readPid(pidFile(p)); err == nil && isProgram(pid, "realcluster") {
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			fmt.Printf("stopping the real-node cluster (pid %d)\n", pid)
			waitExit(pid, 90*time.Second)
		}
	}
	err = cleanup(in, p)
	_ = os.Remove(pidFile(p))
	_ = os.Remove(readyFile(p))
	return err
}

func waitExit(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// isProgram checks that pid still runs the program it was recorded for
// (the record's name starts with the binary's: kubelet-n0 is a kubelet).
func isProgram(pid int, name string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	base := filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	return name == base || strings.HasPrefix(name, base+"-")
}

// cleanup removes everything a cluster of this instance created on the
// host, whether it stopped cleanly or not: its processes (recorded ones,
// then every process in its cgroups: containerd shims and containers),
// mounts (container root filesystems, pod network namespaces, volumes),
// links, iptables rules, cgroups, files under its host roots, the
// kubelets' symlinks in shared paths; then it restores the sysctls.
func cleanup(in instance, p controlplane.Paths) error {
	var errs []error
	pidFiles, _ := filepath.Glob(filepath.Join(p.Dir, "pids", "*"))
	for _, f := range pidFiles {
		if pid, err := readPid(f); err == nil && isProgram(pid, filepath.Base(f)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(f)
	}
	shimSockets := shimSockets(in)
	if err := killTree(in.cgroupRoot(), 30*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, s := range shimSockets {
		_ = os.Remove(s)
	}
	for _, m := range ourMounts(in, p) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	for _, l := range ourLinks(in) {
		if err := runTool("ip", "link", "del", l); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeIptables(); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroupTree(in.cgroupRoot()); err != nil {
		errs = append(errs, err)
	}
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, in.varRoot()+"/") {
			_ = os.Remove(l)
		}
	}
	for _, d := range []string{in.varRoot(), in.runRoot(), filepath.Join(p.Dir, "volumes")} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := restoreHost(in); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// shimSockets are the sockets of the nodes' containerd shims, which
// containerd 1.6 keeps in the fixed /run/containerd/s (named by a hash of
// the containerd address, namespace and task id); a shim killed with its
// tasks leaves its socket behind.
func shimSockets(in instance) []string {
	var out []string
	for k := 0; k < maxNodes; k++ {
		n := nodePaths{in: in, k: k}
		tasks, _ := os.ReadDir(filepath.Join(n.runDir(), "containerd", "io.containerd.runtime.v2.task", "k8s.io"))
		for _, t := range tasks {
			sum := sha256.Sum256([]byte(filepath.Join(n.socket(), "k8s.io", t.Name())))
			out = append(out, fmt.Sprintf("/run/containerd/s/%x", sum))
		}
	}
	return out
}

// ourMounts lists the mount points under the instance's roots and state
// directory, deepest first.
func ourMounts(in instance, p controlplane.Paths) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		for _, root := range []string{in.varRoot(), in.runRoot(), p.Dir} {
			if mp == root || strings.HasPrefix(mp, root+"/") {
				out = append(out, mp)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Chains the kubelets, kube-proxy and the CNI plugins create. Nothing else
// on a development machine uses these prefixes.
var ourChainPrefixes = []string{"KUBE-", "CNI-"}

func isOurChain(c string) bool {
	if strings.HasPrefix(c, "RC") && strings.HasSuffix(c, "-NODE-DOWN") {
		return true // fault node-down
	}
	for _, p := range ourChainPrefixes {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// removeIptables deletes the jumps into our chains, then the chains, in
// the filter, nat and mangle tables of iptables and ip6tables.
func removeIptables() error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			chains, rules := listIptables(tool, table)
			for _, r := range rules {
				if isOurChain(r[0]) {
					continue
				}
				if err := runTool(tool, append([]string{"-w", "-t", table, "-D"}, r...)...); err != nil {
					errs = append(errs, err)
				}
			}
			for _, c := range chains {
				_ = runTool(tool, "-w", "-t", table, "-F", c)
			}
			for _, c := range chains {
				if err := runTool(tool, "-w", "-t", table, "-X", c); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// listIptables returns our chains in a table and the rules (as -A
// arguments without the -A) of other chains that jump to them.
func listIptables(tool, table string) (chains []string, jumps [][]string) {
	out, err := exec.Command(tool, "-w", "-t", table, "-S").Output()
	if err != nil {
		return nil, nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := splitRule(line)
		switch {
		case len(f) == 2 && f[0] == "-N" && isOurChain(f[1]):
			chains = append(chains, f[1])
		case len(f) > 2 && f[0] == "-A":
			for i := 1; i+1 < len(f); i++ {
				if (f[i] == "-j" || f[i] == "-g") && isOurChain(f[i+1]) {
					jumps = append(jumps, f[1:])
					break
				}
			}
		}
	}
	return chains, jumps
}

// splitRule splits an "iptables -S" line, keeping quoted comments whole.
func splitRule(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, has := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
			has = true
		case r == ' ' && !inQuote:
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if has {
		out = append(out, cur.String())
	}
	return out
}

// leftovers describes what of this instance is still on the host.
func leftovers(in instance, p controlplane.Paths) []string {
	var out []string
	for _, cg := range leftoverCgroups(in.cgroupRoot()) {
		out = append(out, "cgroup "+cg)
	}
	for _, m := range ourMounts(in, p) {
		out = append(out, "mount "+m)
	}
	for _, l := range ourLinks(in) {
		out = append(out, "link "+l)
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			chains, jumps := listIptables(tool, table)
			for _, c := range chains {
				out = append(out, fmt.Sprintf("%s -t %s chain %s", tool, table, c))
			}
			for _, j := range jumps {
				out = append(out, fmt.Sprintf("%s -t %s rule %s", tool, table, strings.Join(j, " ")))
			}
		}
	}
	for _, d := range []string{in.varRoot(), in.runRoot(), in.sysctlFile(), filepath.Join(p.Dir, "volumes")} {
		if _, err := os.Lstat(d); err == nil {
			out = append(out, "path "+d)
		}
	}
	if _, err := os.Stat(in.sysctlFile()); err == nil {
		out = append(out, "sysctls not restored ("+in.sysctlFile()+")")
	}
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, in.varRoot()+"/") {
			out = append(out, "symlink "+l)
		}
	}
	pids := treePids(in.cgroupRoot())
	for _, pid := range pids {
		out = append(out, "process "+strconv.Itoa(pid))
	}
	return out
}

func runCheckClean(args []string) error {
	in, p, err := stateCommand("check-clean", args)
	if err != nil {
		return err
	}
	left := leftovers(in, p)
	if len(left) == 0 {
		fmt.Println("clean: nothing of the real-node cluster is left on this host")
		return nil
	}
	for _, l := range left {
		fmt.Println(l)
	}
	return fmt.Errorf("%d leftovers", len(left))
}
