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

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"

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
	if err := controlplane.WaitDefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	if err := controlplane.WaitNodesSchedulable(ctx, cs, c.opts.nodes, 60*time.Second); err != nil {
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
