package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

func runStatus(args []string) error {
	in, p, err := stateCommand("status", args)
	if err != nil {
		return err
	}
	pid, err := readPid(pidFile(p))
	if err != nil {
		return fmt.Errorf("no real-node cluster runs from %s (start one with \"make realnode-up\")", p.Dir)
	}
	fmt.Printf("real-node cluster %d: pid %d, state %s\nkubeconfig: %s\n\n", in.index, pid, p.Dir, p.Kubeconfig())
	cs, cfg, err := controlplane.ClientFromKubeconfig(p.Kubeconfig())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := controlplane.WaitAPIServerReady(ctx, cs, 5*time.Second); err != nil {
		return err
	}
	fmt.Printf("API server %s: ready\n\n", cfg.Host)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "NODE\tREADY\tIP")
	for _, n := range nodes.Items {
		ready, ip := "Unknown", ""
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = string(c.Status)
			}
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ip = a.Address
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, ready, ip)
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "\nPOD\tPHASE\tREADY\tRESTARTS\tIP\tNODE")
	for _, p := range pods.Items {
		ready, restarts := 0, int32(0)
		for _, c := range p.Status.ContainerStatuses {
			if c.Ready {
				ready++
			}
			restarts += c.RestartCount
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%d/%d\t%d\t%s\t%s\n", p.Namespace, p.Name, p.Status.Phase, ready, len(p.Spec.Containers), restarts, p.Status.PodIP, p.Spec.NodeName)
	}
	tw.Flush()
	fmt.Println("\nfaults:")
	if err := requireRoot(); err != nil {
		fmt.Println("  (listing them needs root)")
		return nil
	}
	return listFaults(ctx, in, cs)
}
