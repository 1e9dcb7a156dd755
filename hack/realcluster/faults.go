package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

const faultUsage = `usage: realcluster fault kill|pause|resume POD
       realcluster fault partition POD1 POD2
       realcluster fault heal [POD]
       realcluster fault isolate-apiserver POD
       realcluster fault node-down|node-up NODE
       realcluster fault list`

// faultComment marks the iptables rules of network faults.
const faultComment = "realcluster fault"

// Container faults act on the containers' cgroups (kill: SIGKILL every
// process of the pod's app containers; pause: freeze the pod's cgroup, as
// "docker pause" does). Network faults are iptables rules inside the pod's
// network namespace: they apply to direct and
// Service traffic (DNAT keeps the client's address) and vanish with the
// pod's sandbox. node-down freezes the node's whole cgroup (kubelet,
// containerd, shims, containers) and drops its addresses in the host's
// filter table (chain RC<i>-NODE-DOWN).
func runFault(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", faultUsage)
	}
	if err := requireRoot(); err != nil {
		return err
	}
	in, err := instanceFromEnv()
	if err != nil {
		return err
	}
	want := map[string]int{"kill": 1, "pause": 1, "resume": 1, "partition": 2, "isolate-apiserver": 1, "list": 0, "node-down": 1, "node-up": 1}
	verb, names := args[0], args[1:]
	if n, ok := want[verb]; ok && len(names) != n || verb == "heal" && len(names) > 1 {
		return fmt.Errorf("%s", faultUsage)
	}
	cs, _, err := controlplane.ClientFromKubeconfig(controlplane.Paths{Dir: defaultStateDir()}.Kubeconfig())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if verb == "node-down" || verb == "node-up" {
		return nodeFault(in, names[0], verb == "node-down")
	}
	pods := make([]*corev1.Pod, len(names))
	for i, name := range names {
		if pods[i], err = getPod(ctx, cs, name); err != nil {
			return err
		}
	}
	switch verb {
	case "kill":
		return killPod(in, pods[0])
	case "pause", "resume":
		cg, err := podCgroup(in, pods[0])
		if err != nil {
			return err
		}
		state := map[string]string{"pause": "FROZEN", "resume": "THAWED"}[verb]
		return setFreezer(cg, state)
	case "partition":
		a, b := pods[0], pods[1]
		for _, pair := range [][2]*corev1.Pod{{a, b}, {b, a}} {
			for _, chain := range []string{"INPUT", "OUTPUT"} {
				dir := map[string]string{"INPUT": "-s", "OUTPUT": "-d"}[chain]
				if err := podIptables(in, pair[0], "-I", chain, dir, pair[1].Status.PodIP, "-m", "comment", "--comment", faultComment+" partition "+pair[1].Name, "-j", "DROP"); err != nil {
					return err
				}
			}
		}
		return nil
	case "isolate-apiserver":
		p := pods[0]
		for _, dst := range [][2]string{{in.apiHost(), strconv.Itoa(controlplane.APIServerPort)}, {in.kubernetesSvcIP(), "443"}} {
			if err := podIptables(in, p, "-I", "OUTPUT", "-d", dst[0], "-p", "tcp", "--dport", dst[1], "-m", "comment", "--comment", faultComment+" isolate-apiserver", "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	case "heal":
		list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var target *corev1.Pod
		if len(pods) == 1 {
			target = pods[0]
		}
		for i := range list.Items {
			p := &list.Items[i]
			if p.Spec.NodeName == "" || p.Status.PodIP == "" || p.Spec.HostNetwork {
				continue
			}
			if err := healPod(in, p, target); err != nil {
				return err
			}
		}
		return nil
	case "list":
		return listFaults(ctx, in, cs)
	}
	return fmt.Errorf("unknown fault %q\n%s", verb, faultUsage)
}

func getPod(ctx context.Context, cs kubernetes.Interface, name string) (*corev1.Pod, error) {
	ns, n, ok := strings.Cut(name, "/")
	if !ok {
		ns, n = "default", name
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if p.Spec.NodeName == "" {
		return nil, fmt.Errorf("pod %s is not on a node yet", name)
	}
	return p, nil
}

func nodeIndex(in instance, node string) (int, error) {
	for k := 0; k < maxNodes; k++ {
		if in.nodeName(k) == node {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%q is not a node of this cluster", node)
}

// podCgroup finds the pod's cgroup (relative to a hierarchy) below its
// node's kubelet cgroup root: .../kubepods[/burstable|/besteffort]/pod<uid>.
func podCgroup(in instance, p *corev1.Pod) (string, error) {
	k, err := nodeIndex(in, p.Spec.NodeName)
	if err != nil {
		return "", err
	}
	root := filepath.Join(cgroupFS, "freezer", in.nodeCgroup(k), "pods")
	want := "pod" + string(p.UID)
	var found string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == want {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		return "", fmt.Errorf("no cgroup for pod %s/%s on %s", p.Namespace, p.Name, p.Spec.NodeName)
	}
	return strings.TrimPrefix(found, filepath.Join(cgroupFS, "freezer")), nil
}

// killPod SIGKILLs every process of the pod's app (and running init)
// containers; the sandbox stays, as when a container's process dies.
func killPod(in instance, p *corev1.Pod) error {
	cg, err := podCgroup(in, p)
	if err != nil {
		return err
	}
	var ids []string
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if s.State.Running != nil {
			if _, id, ok := strings.Cut(s.ContainerID, "://"); ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("pod %s/%s has no running container", p.Namespace, p.Name)
	}
	killed := 0
	for _, id := range ids {
		for _, pid := range treePids(filepath.Join(cg, id)) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	if killed == 0 {
		return fmt.Errorf("no process found in the containers of %s/%s", p.Namespace, p.Name)
	}
	// A frozen container gets its SIGKILL when thawed.
	return setFreezer(cg, "THAWED")
}

// podNetns is a path to the pod's network namespace: that of any of its
// processes (the sandbox's pause at least).
func podNetns(in instance, p *corev1.Pod) (string, error) {
	cg, err := podCgroup(in, p)
	if err != nil {
		return "", err
	}
	for _, pid := range treePids(cg) {
		ns := fmt.Sprintf("/proc/%d/ns/net", pid)
		if _, err := os.Stat(ns); err == nil {
			return ns, nil
		}
	}
	return "", fmt.Errorf("no process of pod %s/%s", p.Namespace, p.Name)
}

func podIptables(in instance, p *corev1.Pod, args ...string) error {
	ns, err := podNetns(in, p)
	if err != nil {
		return err
	}
	return runTool("nsenter", append([]string{"--net=" + ns, "iptables", "-w"}, args...)...)
}

func podRules(in instance, p *corev1.Pod) ([][]string, error) {
	ns, err := podNetns(in, p)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("nsenter", "--net="+ns, "iptables", "-w", "-S").Output()
	if err != nil {
		return nil, err
	}
	var rules [][]string
	for _, line := range strings.Split(string(out), "\n") {
		if f := splitRule(line); len(f) > 2 && f[0] == "-A" && strings.Contains(line, faultComment) {
			rules = append(rules, f[1:])
		}
	}
	return rules, nil
}

// healPod removes the fault rules in p's network namespace: all of them
// when target is nil or p itself, else those against target's address
// (the other side of a partition).
func healPod(in instance, p, target *corev1.Pod) error {
	rules, err := podRules(in, p)
	if err != nil {
		return nil // a pod without processes has no rules
	}
	for _, r := range rules {
		if target != nil && target.UID != p.UID && !slices.Contains(r, target.Status.PodIP+"/32") {
			continue
		}
		if err := podIptables(in, p, append([]string{"-D"}, r...)...); err != nil {
			return err
		}
	}
	return nil
}

func listFaults(ctx context.Context, in instance, cs kubernetes.Interface) error {
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.NodeName == "" || p.Status.PodIP == "" {
			continue
		}
		rules, _ := podRules(in, p)
		for _, r := range rules {
			fmt.Printf("%s/%s: %s\n", p.Namespace, p.Name, strings.Join(r, " "))
		}
		if cg, err := podCgroup(in, p); err == nil {
			if st, _ := os.ReadFile(filepath.Join(cgroupFS, "freezer", cg, "freezer.state")); strings.TrimSpace(string(st)) == "FROZEN" {
				fmt.Printf("%s/%s: paused\n", p.Namespace, p.Name)
			}
		}
	}
	for k := 0; k < maxNodes; k++ {
		st, err := os.ReadFile(filepath.Join(cgroupFS, "freezer", in.nodeCgroup(k), "freezer.state"))
		if err == nil && strings.TrimSpace(string(st)) == "FROZEN" {
			fmt.Printf("%s: down\n", in.nodeName(k))
		}
	}
	return nil
}

// nodeFault takes a node down (freeze, drop its addresses) or back up.
func nodeFault(in instance, node string, down bool) error {
	k, err := nodeIndex(in, node)
	if err != nil {
		return err
	}
	chain := fmt.Sprintf("RC%d-NODE-DOWN", in.index)
	comment := faultComment + " node-down " + node
	specs := [][]string{
		{"-s", in.nodeIP(k)}, {"-d", in.nodeIP(k)}, {"-s", in.podCIDR(k)}, {"-d", in.podCIDR(k)},
	}
	if down {
		// The chain is hooked first into INPUT, OUTPUT and FORWARD once.
		if runTool("iptables", "-w", "-N", chain) == nil {
			for _, hook := range []string{"INPUT", "OUTPUT", "FORWARD"} {
				if err := runTool("iptables", "-w", "-I", hook, "-j", chain); err != nil {
					return err
				}
			}
		}
		for _, s := range specs {
			if err := runTool("iptables", append(append([]string{"-w", "-A", chain}, s...), "-m", "comment", "--comment", comment, "-j", "DROP")...); err != nil {
				return err
			}
		}
		return setFreezer(in.nodeCgroup(k), "FROZEN")
	}
	if err := setFreezer(in.nodeCgroup(k), "THAWED"); err != nil {
		return err
	}
	for _, s := range specs {
		_ = runTool("iptables", append(append([]string{"-w", "-D", chain}, s...), "-m", "comment", "--comment", comment, "-j", "DROP")...)
	}
	return nil
}
