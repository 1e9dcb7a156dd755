package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

// cluster is one running local cluster: network, control plane, node agent.
type cluster struct {
	opts upOptions
	l    layout
	cp   *controlplane.ControlPlane

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stateEntries are the parts of the state directory a cluster owns; "up"
// starts from scratch by removing them. The component logs are truncated
// when the components start; logs/localcluster.log is being written by
// "up --detach" already.
var stateEntries = []string{"pki", "kubeconfigs", "kubeconfig", "etcd", "pods", "persistent-volumes", "logs/pods", "pids", "ready", "localcluster.pid"}

func (c *cluster) start(ctx context.Context) error {
	began := time.Now()
	cleanupLeftovers(c.l)
	for _, e := range stateEntries {
		if err := os.RemoveAll(filepath.Join(c.l.dir, e)); err != nil {
			return err
		}
	}
	if err := mkdirs(c.l.dir, c.l.podsDir(), c.l.volumesDir()); err != nil {
		return err
	}
	if err := os.WriteFile(c.l.pidFile(), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if err := setupBridge(); err != nil {
		return err
	}
	c.cp = newControlPlane(c.l, c.opts.k8sBinDir)
	if err := writePKI(c.cp); err != nil {
		return fmt.Errorf("creating certificates: %w", err)
	}
	if err := c.cp.Start(ctx); err != nil {
		return err
	}
	log.Printf("API server ready at %s after %.1fs", c.cp.APIServerURL(), time.Since(began).Seconds())

	cs, _, err := clientFromKubeconfig(c.l.componentKubeconfig("node-agent"))
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	a := &agent{
		cs: cs, l: c.l, exe: exe, binDir: c.opts.binDir, backoff: c.opts.backoff, volumeResync: c.opts.resync,
		nodes: map[string]*node{}, workers: map[types.UID]*podWorker{}, finished: map[types.UID]bool{},
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for i := 0; i < c.opts.nodes; i++ {
		n := &node{name: nodeName(i), index: i, ipam: newIPAM(i)}
		if err := n.register(ctx, cs); err != nil {
			return err
		}
		a.nodes[n.name] = n
		c.goRun(func() { n.heartbeat(runCtx, cs) })
	}
	// The provisioner, the service proxy and the DNS server share one
	// watch per kind.
	factory := informers.NewSharedInformerFactory(cs, 0)
	p := controlplane.NewProvisioner(cs, c.l.volumesDir(), factory)
	if err := p.CreateStorageClass(ctx); err != nil {
		return fmt.Errorf("creating the default StorageClass: %w", err)
	}
	services, slices := factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices()
	proxy := newServiceProxy(services, slices)
	dns, err := controlplane.NewDNSServer(bridgeIP, services.Lister(), slices.Lister())
	if err != nil {
		return err
	}
	factory.Start(runCtx.Done())
	factory.WaitForCacheSync(ctx.Done())
	c.goRun(func() {
		if err := proxy.run(runCtx); err != nil {
			log.Printf("service proxy disabled: %v", err)
		}
	})
	c.goRun(func() { dns.Serve(runCtx) })
	c.goRun(func() { p.Run(runCtx) })
	if err := serveKubeletAPI(runCtx, c.l); err != nil {
		return err
	}
	c.goRun(func() { a.run(runCtx) })
	if err := waitDefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	if err := waitNodesSchedulable(ctx, cs, c.opts.nodes); err != nil {
		return err
	}
	if err := os.WriteFile(c.l.readyFile(), []byte(time.Now().Format(time.RFC3339)), 0o644); err != nil {
		return err
	}
	log.Printf("local cluster ready after %.1fs: %d node(s); export KUBECONFIG=%s", time.Since(began).Seconds(), c.opts.nodes, c.l.kubeconfig())
	return nil
}

func (c *cluster) goRun(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// stop stops the pods, then the control plane, then removes the network.
func (c *cluster) stop() {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	if c.cp != nil {
		c.cp.Stop()
	}
	cleanupLeftovers(c.l)
	_ = os.Remove(c.l.readyFile())
	_ = os.Remove(c.l.pidFile())
}

// waitDefaultServiceAccount waits for the "default" ServiceAccount, without
// which the ServiceAccount admission rejects pods in the default namespace.
func waitDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface) error {
	// Long enough for one restart of a controller manager whose first
	// requests the API server left hanging (it gives up after 30 s).
	deadline := time.Now().Add(75 * time.Second)
	for {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the default ServiceAccount did not appear (is kube-controller-manager running?): %w", err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// waitNodesSchedulable waits until every node is Ready and carries no
// NoSchedule or NoExecute taint. The controller manager taints a node it
// saw before its first status (node.kubernetes.io/not-ready) and lifts the
// taint a few seconds later; pods created meanwhile could wait many seconds
// for the scheduler to try them again.
func waitNodesSchedulable(ctx context.Context, cs kubernetes.Interface, want int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		ready, why := 0, ""
		if err == nil {
			for _, n := range nodes.Items {
				if reason := unschedulable(&n); reason != "" {
					why = n.Name + ": " + reason
					continue
				}
				ready++
			}
		} else {
			why = err.Error()
		}
		if ready >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes are schedulable after 60s (%s)", ready, want, why)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// unschedulable says why the scheduler would not place a pod without
// tolerations on n, "" when it would.
func unschedulable(n *corev1.Node) string {
	if n.Spec.Unschedulable {
		return "cordoned"
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return "taint " + t.Key
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return ""
			}
			return "not ready"
		}
	}
	return "no Ready condition yet"
}
