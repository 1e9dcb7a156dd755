package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const faultUsage = `usage: localcluster fault kill|pause|resume POD
       localcluster fault partition POD1 POD2
       localcluster fault heal [POD]
       localcluster fault isolate-apiserver POD
       localcluster fault list`

// Network faults are iptables rules inside the pods' own network
// namespaces, in the filter table, which nothing else uses there: they
// apply to direct pod-to-pod traffic and to traffic through a Service
// (whose DNAT keeps the client's address), and they vanish with the pod.
func runFault(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", faultUsage)
	}
	if err := requireRoot(); err != nil {
		return err
	}
	l := layout{dir: defaultStateDir()}
	want := map[string]int{"kill": 1, "pause": 1, "resume": 1, "partition": 2, "isolate-apiserver": 1, "list": 0}
	verb, names := args[0], args[1:]
	if n, ok := want[verb]; ok && len(names) != n || verb == "heal" && len(names) > 1 {
		return fmt.Errorf("%s", faultUsage)
	}
	pods := make([]podRecord, len(names))
	for i, name := range names {
		var err error
		if pods[i], err = findPod(l, name); err != nil {
			return err
		}
	}
	switch verb {
	case "kill":
		return signalPod(pods[0], syscall.SIGKILL)
	case "pause":
		return signalPod(pods[0], syscall.SIGSTOP)
	case "resume":
		return signalPod(pods[0], syscall.SIGCONT)
	case "partition":
		a, b := pods[0], pods[1]
		if err := dropPeer(a, b.IP); err != nil {
			return err
		}
		return dropPeer(b, a.IP)
	case "isolate-apiserver":
		p := pods[0]
		for _, dst := range [][2]string{{bridgeIP, strconv.Itoa(apiServerPort)}, {kubernetesServiceIP, "443"}} {
			if err := podIptables(p, "-I", "OUTPUT", "-d", dst[0], "-p", "tcp", "--dport", dst[1], "-m", "comment", "--comment", "localcluster isolate-apiserver", "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	case "heal":
		return heal(l, pods)
	case "list":
		return listFaults(l)
	}
	return fmt.Errorf("unknown fault %q\n%s", verb, faultUsage)
}

// findPod reads the record of a running pod, named namespace/name or name.
func findPod(l layout, name string) (podRecord, error) {
	ns, n, ok := strings.Cut(name, "/")
	if !ok {
		ns, n = "default", name
	}
	var found []podRecord
	recs, err := podRecords(l)
	if err != nil {
		return podRecord{}, err
	}
	for _, r := range recs {
		if r.Namespace == ns && r.Name == n {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		return podRecord{}, fmt.Errorf("no running pod %s/%s in the local cluster at %s", ns, n, l.dir)
	}
	return found[len(found)-1], nil // the newest incarnation
}

// podRecords lists the running pods, oldest first.
func podRecords(l layout) ([]podRecord, error) {
	files, err := filepath.Glob(filepath.Join(l.podsDir(), "*", "pod.json"))
	if err != nil {
		return nil, err
	}
	type stamped struct {
		rec podRecord
		mod int64
	}
	var all []stamped
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the pod is going away
		}
		var r podRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		st, _ := os.Stat(f)
		all = append(all, stamped{r, st.ModTime().UnixNano()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod < all[j].mod })
	recs := make([]podRecord, len(all))
	for i, s := range all {
		recs[i] = s.rec
	}
	return recs, nil
}

func signalPod(p podRecord, sig syscall.Signal) error {
	id, ok := namespaceOf(p.netnsPath())
	if !ok {
		return fmt.Errorf("pod %s/%s has no network namespace %s", p.Namespace, p.Name, p.Netns)
	}
	pids := signalNamespace("net", id, sig)
	if len(pids) == 0 {
		return fmt.Errorf("pod %s/%s has no running process", p.Namespace, p.Name)
	}
	fmt.Printf("sent %s to %d process(es) of %s/%s: %v\n", unix.SignalName(sig), len(pids), p.Namespace, p.Name, pids)
	return nil
}

func dropPeer(p podRecord, peerIP string) error {
	comment := "localcluster partition " + peerIP
	if err := podIptables(p, "-I", "INPUT", "-s", peerIP, "-m", "comment", "--comment", comment, "-j", "DROP"); err != nil {
		return err
	}
	return podIptables(p, "-I", "OUTPUT", "-d", peerIP, "-m", "comment", "--comment", comment, "-j", "DROP")
}

// heal removes a pod's network faults and the partitions others have
// against it; without a pod, every network fault.
func heal(l layout, target []podRecord) error {
	recs, err := podRecords(l)
	if err != nil {
		return err
	}
	for _, r := range recs {
		switch {
		case len(target) == 0 || r.UID == target[0].UID:
			if err := podIptables(r, "-F"); err != nil {
				return err
			}
		default:
			peer := target[0].IP
			for podIptables(r, "-D", "INPUT", "-s", peer, "-m", "comment", "--comment", "localcluster partition "+peer, "-j", "DROP") == nil {
			}
			for podIptables(r, "-D", "OUTPUT", "-d", peer, "-m", "comment", "--comment", "localcluster partition "+peer, "-j", "DROP") == nil {
			}
		}
	}
	return nil
}

func listFaults(l layout) error {
	recs, err := podRecords(l)
	if err != nil {
		return err
	}
	for _, r := range recs {
		out, err := exec.Command("ip", "netns", "exec", r.Netns, "iptables", "-S").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s/%s: %v: %s", r.Namespace, r.Name, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "localcluster ") {
				fmt.Printf("%s/%s (%s): %s\n", r.Namespace, r.Name, r.IP, line)
			}
		}
	}
	return nil
}

func podIptables(p podRecord, args ...string) error {
	return runTool("ip", append([]string{"netns", "exec", p.Netns, "iptables", "-w"}, args...)...)
}
