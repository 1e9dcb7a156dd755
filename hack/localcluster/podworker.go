package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podWorker runs one pod from binding to removal: it creates the pod's
// network and volumes, runs the init containers in order and then the
// containers with their probes and restarts, reports status, and on
// deletion stops the containers gracefully and removes the pod object.
type podWorker struct {
	a        *agent
	node     *node
	dir      string
	hostname string
	sandbox  sandbox
	volumes  map[string]string
	vm       *volumeManager

	runCtx    context.Context // ends when the pod is being deleted
	cancelRun context.CancelFunc
	statusCh  chan struct{}
	done      chan struct{}

	// bound is the pod as it was bound to the node; its name and spec
	// do not change (the few mutable spec fields do not matter here).
	bound *corev1.Pod

	mu          sync.Mutex
	pod         *corev1.Pod // the latest version from the API
	initStates  []*containerState
	states      []*containerState
	startTime   metav1.Time
	networkUp   bool
	initDone    bool
	finalPhase  corev1.PodPhase // Succeeded or Failed once every container finished for good
	terminating bool
	grace       time.Duration
	gone        bool // the object is deleted already
	conditions  map[corev1.PodConditionType]conditionState
}

func newPodWorker(a *agent, n *node, pod *corev1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &podWorker{
		a: a, node: n, pod: pod, bound: pod,
		dir:        a.l.podDir(pod.Namespace, pod.Name, string(pod.UID)),
		hostname:   podHostname(pod),
		runCtx:     ctx,
		cancelRun:  cancel,
		statusCh:   make(chan struct{}, 1),
		done:       make(chan struct{}),
		startTime:  metav1.Now(),
		conditions: map[corev1.PodConditionType]conditionState{},
	}
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	w.vm = newVolumeManager(a.cs, w.dir, fsGroup)
	for i := range pod.Spec.InitContainers {
		w.initStates = append(w.initStates, newContainerState(&pod.Spec.InitContainers[i], true))
	}
	for i := range pod.Spec.Containers {
		w.states = append(w.states, newContainerState(&pod.Spec.Containers[i], false))
	}
	return w
}

func newContainerState(c *corev1.Container, init bool) *containerState {
	return &containerState{spec: c, init: init, state: waiting("PodInitializing", "")}
}

func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	if len(pod.Name) > 63 {
		return pod.Name[:63]
	}
	return pod.Name
}

// update hands the worker the latest version of its pod.
func (w *podWorker) update(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		grace := time.Duration(0)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
		w.terminate(grace)
	}
}

// removed tells the worker that its pod object is gone (force deletion).
func (w *podWorker) removed() {
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	w.terminate(0)
}

// terminate stops the pod: SIGTERM to every container, SIGKILL after grace.
func (w *podWorker) terminate(grace time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.terminating && grace >= w.grace {
		return
	}
	w.terminating, w.grace = true, grace
	w.cancelRun()
	for _, st := range append(append([]*containerState{}, w.initStates...), w.states...) {
		if st.proc != nil {
			go w.stopContainer(st.spec, st.proc, grace)
		}
	}
}

// currentPod is the latest pod with the status fields the worker owns
// filled in, for the downward API.
func (w *podWorker) currentPod() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	pod := w.pod.DeepCopy()
	pod.Status.PodIP = w.sandbox.IP
	pod.Status.HostIP = bridgeIP
	return pod
}

func (w *podWorker) run() {
	defer close(w.done)
	go w.statusLoop()
	if w.prepare() && w.runInitContainers() {
		w.runContainers()
	}
	w.teardown()
	w.mu.Lock()
	if !w.terminating {
		w.finalPhase = w.terminalPhase()
	}
	w.mu.Unlock()
	w.changed()
	<-w.runCtx.Done() // a finished pod stays until it is deleted
	w.mu.Lock()
	gone, pod := w.gone, w.pod
	w.mu.Unlock()
	_ = os.RemoveAll(w.dir)
	if !gone {
		w.deleteObject(pod)
	}
}

// prepare creates the pod's network and volumes, retrying until it works or
// the pod is deleted.
func (w *podWorker) prepare() bool {
	for delay := time.Duration(0); ; delay = w.a.backoff.next(delay) {
		if !sleepCtx(w.runCtx, delay) {
			return false
		}
		err := w.prepareOnce()
		if err == nil {
			return true
		}
		log.Printf("pod %s/%s: %v", w.bound.Namespace, w.bound.Name, err)
		w.mu.Lock()
		for _, st := range append(append([]*containerState{}, w.initStates...), w.states...) {
			st.state = waiting("ContainerCreating", err.Error())
		}
		w.mu.Unlock()
		w.changed()
	}
}

func (w *podWorker) prepareOnce() error {
	if !w.networkUp {
		ip, err := w.node.ipam.allocate()
		if err != nil {
			return err
		}
		sb := sandboxFor(string(w.bound.UID), ip)
		if err := sb.create(); err != nil {
			w.node.ipam.release(ip)
			return err
		}
		w.mu.Lock()
		w.sandbox, w.networkUp = sb, true
		w.mu.Unlock()
		if err := w.writeRecord(); err != nil {
			return err
		}
		w.changed()
	}
	if err := w.writeEtcFiles(); err != nil {
		return err
	}
	volumes, err := w.vm.setup(w.runCtx, w.currentPod())
	if err != nil {
		return err
	}
	w.volumes = volumes
	go w.refreshVolumes()
	return nil
}

// podRecord is what the fault and status commands read about a running pod.
type podRecord struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Node      string `json:"node"`
	sandbox
}

func (w *podWorker) writeRecord() error {
	rec := podRecord{Namespace: w.bound.Namespace, Name: w.bound.Name, UID: string(w.bound.UID), Node: w.node.name, sandbox: w.sandbox}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(w.dir, "pod.json"), data, 0o644)
}

// writeEtcFiles writes the pod's /etc/hosts, /etc/hostname and
// /etc/resolv.conf, as the kubelet manages them.
func (w *podWorker) writeEtcFiles() error {
	dir := filepath.Join(w.dir, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := w.hostname
	if sub := w.bound.Spec.Subdomain; sub != "" {
		names = fmt.Sprintf("%s.%s.%s.svc.cluster.local %s", w.hostname, sub, w.bound.Namespace, w.hostname)
	}
	hosts := fmt.Sprintf("# Kubernetes-managed hosts file (localcluster).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", w.sandbox.IP, names)
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(resolvConf(w.bound.Namespace)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hostname"), []byte(w.hostname+"\n"), 0o644)
}

// refreshVolumes keeps configMap, secret, downwardAPI and projected volumes
// in step with their sources while the pod runs.
func (w *podWorker) refreshVolumes() {
	for sleepCtx(w.runCtx, w.a.volumeResync) {
		if err := w.vm.refresh(w.runCtx, w.currentPod()); err != nil && w.runCtx.Err() == nil {
			log.Printf("pod %s/%s: refreshing volumes: %v", w.bound.Namespace, w.bound.Name, err)
		}
	}
}

// runInitContainers runs the init containers one after the other, each to
// completion; it reports whether all succeeded.
func (w *podWorker) runInitContainers() bool {
	for _, st := range w.initStates {
		code, stopped := w.runContainer(st)
		if stopped || code != 0 {
			return false
		}
	}
	w.mu.Lock()
	w.initDone = true
	for _, st := range w.states {
		st.state = waiting("ContainerCreating", "")
	}
	w.mu.Unlock()
	w.changed()
	return true
}

func (w *podWorker) runContainers() {
	var wg sync.WaitGroup
	for _, st := range w.states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runContainer(st)
		}()
	}
	wg.Wait()
}

// teardown removes the pod's network; the volumes stay until the pod
// directory is removed with the object.
func (w *podWorker) teardown() {
	w.mu.Lock()
	sb, up := w.sandbox, w.networkUp
	w.networkUp = false
	w.mu.Unlock()
	if up {
		sb.destroy()
		w.node.ipam.release(sb.IP)
		_ = os.Remove(filepath.Join(w.dir, "pod.json"))
	}
}

// deleteObject removes the pod object once everything stopped, the way the
// kubelet finishes a graceful deletion: a delete with grace period 0.
func (w *podWorker) deleteObject(pod *corev1.Pod) {
	zero := int64(0)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	for {
		err := w.a.cs.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, opts)
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			break
		}
		log.Printf("pod %s/%s: deleting: %v", pod.Namespace, pod.Name, err)
		time.Sleep(time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
