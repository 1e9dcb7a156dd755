// Command localcluster runs a development Kubernetes cluster on this machine:
// a real control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) plus node agents that run pods as processes, each pod in its
// own network namespace. It exists for the demo and the end-to-end fault
// tests; it is not a production runtime. See docs/local-cluster.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `localcluster: a local Kubernetes cluster whose pods run as processes (needs root).

Commands:
  up [flags]                    start the cluster in the foreground (Ctrl-C stops it)
  down                          stop a running cluster and remove everything it created
  status                        show the control plane, nodes and pods
  fault kill POD                SIGKILL every process of a pod
  fault pause POD               SIGSTOP every process of a pod
  fault resume POD              SIGCONT every process of a pod
  fault partition POD1 POD2     drop all traffic between two pods, both directions
  fault heal [POD]              remove the network faults of a pod (or all of them)
  fault isolate-apiserver POD   cut a pod off the API server
  fault list                    show the network faults in place

POD is namespace/name or name (namespace "default").
Run "localcluster up -h" for the flags. The state directory (default: the
checkout's .local/, or $LOCALCLUSTER_STATE_DIR) is shared by all commands.
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
	case containerInitCommand:
		err = runContainerInit(args)
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
		fmt.Fprintf(os.Stderr, "localcluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
