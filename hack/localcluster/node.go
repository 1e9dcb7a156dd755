package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	kubeletVersion       = "v1.36.3"
	nodeLeaseDuration    = 40 // seconds, the kubelet's default
	nodeLeaseRenewPeriod = 10 * time.Second
	nodeStatusPeriod     = 60 * time.Second
)

// node is one Node the agent runs pods for. All nodes share the host and
// the bridge; each has its own /24 of pod addresses.
type node struct {
	name  string
	index int
	ipam  *ipam
}

func nodeName(i int) string { return fmt.Sprintf("localcluster-node-%d", i) }

// register creates the Node object and reports it Ready.
func (n *node) register(ctx context.Context, cs kubernetes.Interface) error {
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.name,
			Labels: map[string]string{
				"kubernetes.io/hostname":          n.name,
				"kubernetes.io/os":                "linux",
				"kubernetes.io/arch":              "amd64",
				"topology.kubernetes.io/zone":     fmt.Sprintf("zone-%d", n.index),
				"node.kubernetes.io/localcluster": "true",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: podCIDR(n.index), PodCIDRs: []string{podCIDR(n.index)}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", n.name, err)
	}
	return n.reportStatus(ctx, cs)
}

func (n *node) reportStatus(ctx context.Context, cs kubernetes.Interface) error {
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	status := corev1.NodeStatus{
		Capacity:    nodeAllocatable,
		Allocatable: nodeAllocatable,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "localcluster node agent is posting ready status"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", ""),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", ""),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", ""),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: bridgeIP},
			{Type: corev1.NodeHostName, Address: n.name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: kubeletPort}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            "amd64",
			ContainerRuntimeVersion: "localcluster://processes",
		},
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// renewLease keeps the node's Lease in kube-node-lease fresh, which is
// what the node lifecycle controller watches.
func (n *node) renewLease(ctx context.Context, cs kubernetes.Interface) error {
	leases := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.name),
				LeaseDurationSeconds: ptr.To[int32](nodeLeaseDuration),
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the lease and the status until ctx ends.
func (n *node) heartbeat(ctx context.Context, cs kubernetes.Interface) {
	lastStatus := time.Now()
	for {
		if err := n.renewLease(ctx, cs); err != nil && ctx.Err() == nil {
			log.Printf("node %s: renewing lease: %v", n.name, err)
		}
		if time.Since(lastStatus) >= nodeStatusPeriod {
			if err := n.reportStatus(ctx, cs); err != nil && ctx.Err() == nil {
				log.Printf("node %s: reporting status: %v", n.name, err)
			}
			lastStatus = time.Now()
		}
		if !sleepCtx(ctx, nodeLeaseRenewPeriod) {
			return
		}
	}
}
