// Command realcluster runs a development Kubernetes cluster on this machine
// whose nodes are real: a control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler; hack/internal/controlplane) plus
// three kubelets, each with its own containerd, runc and CNI bridge, one
// kube-proxy (iptables) and a cluster DNS. Pods run from images built
// without Docker (make image). Faults (kill, pause, partition,
// isolate-apiserver, node-down) and status are its subcommands; see
// docs/design/real-nodes.md and docs/local-cluster.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `realcluster: a local Kubernetes cluster with real nodes (kubelet, containerd, runc, CNI, kube-proxy; needs root).

Commands:
  up [flags]                    start the cluster in the foreground (Ctrl-C stops it)
  down                          stop the cluster and remove everything it created
  status                        show the nodes, pods and network faults
  fault kill POD                SIGKILL the processes of the pod's containers
  fault pause POD               freeze the pod's containers (cgroup freezer)
  fault resume POD              thaw them
  fault partition POD1 POD2     drop all traffic between two pods, both directions
  fault heal [POD]              remove the network faults of a pod (or all of them)
  fault isolate-apiserver POD   cut a pod off the API server
  fault node-down NODE          freeze a node's kubelet, containerd and containers and cut its network
  fault node-up NODE            undo node-down
  fault list                    show the faults in place
  check-clean                   list what a cluster left on this host (exit 1 if anything)

POD is namespace/name or name (namespace "default"); NODE is a node name.
$REALCLUSTER_INSTANCE (0-9) selects the cluster; $REALCLUSTER_STATE_DIR its
state directory (default: the checkout's .local-real/).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = runUp(args)
	case "down":
		err = runDown(args)
	case "status":
		err = runStatus(args)
	case "fault":
		err = runFault(args)
	case "check-clean":
		err = runCheckClean(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "realcluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
