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
	if len(args) > 0 {
		return fmt.Errorf("status takes no arguments")
	}
	l := layout{dir: defaultStateDir()}
	pid, err := readPid(l.pidFile())
	if err != nil {
		return fmt.Errorf("no local cluster runs from %s (start one with \"make local-up\")", l.dir)
	}
	fmt.Printf("local cluster: pid %d, state %s\nkubeconfig: %s\n\n", pid, l.dir, l.kubeconfig())
	cs, cfg, err := clientFromKubeconfig(l.kubeconfig())
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
	fmt.Fprintln(tw, "NODE\tREADY\tPOD CIDR")
	for _, n := range nodes.Items {
		ready := "Unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = string(c.Status)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, ready, n.Spec.PodCIDR)
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
	fmt.Println("\nnetwork faults:")
	if err := requireRoot(); err != nil {
		fmt.Println("  (listing them needs root)")
		return nil
	}
	return listFaults(l)
}
