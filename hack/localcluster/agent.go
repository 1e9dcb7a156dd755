package main

import (
	"context"
	"log"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// agent is the node agent: a kubelet stand-in for every local node. It
// watches the pods bound to its nodes and gives each a podWorker.
type agent struct {
	cs           kubernetes.Interface
	l            layout
	exe          string // this binary, re-executed as container-init
	binDir       string // shown as /usr/local/bin of the licenseha image
	backoff      backoff
	volumeResync time.Duration
	nodes        map[string]*node

	mu       sync.Mutex
	workers  map[types.UID]*podWorker
	finished map[types.UID]bool // pods whose worker is done
}

// run watches pods until ctx ends, then stops every pod.
func (a *agent) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactory(a.cs, 0)
	pods := factory.Core().V1().Pods().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.sync(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.sync(obj.(*corev1.Pod)) },
		DeleteFunc: a.forget,
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	a.stopAll()
}

func (a *agent) sync(pod *corev1.Pod) {
	n := a.nodes[pod.Spec.NodeName]
	if n == nil {
		return
	}
	a.mu.Lock()
	w := a.workers[pod.UID]
	if w == nil {
		if a.finished[pod.UID] || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil {
			a.mu.Unlock()
			if pod.DeletionTimestamp != nil {
				go a.deleteNow(pod) // nothing runs for it here
			}
			return
		}
		w = newPodWorker(a, n, pod)
		a.workers[pod.UID] = w
		go func() {
			w.run()
			a.mu.Lock()
			delete(a.workers, pod.UID)
			a.finished[pod.UID] = true
			a.mu.Unlock()
		}()
	}
	a.mu.Unlock()
	w.update(pod)
}

func (a *agent) forget(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	w := a.workers[pod.UID]
	delete(a.finished, pod.UID)
	a.mu.Unlock()
	if w != nil {
		w.removed()
	}
}

func (a *agent) deleteNow(pod *corev1.Pod) {
	zero := int64(0)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	if err := a.cs.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, opts); err != nil && !apierrors.IsNotFound(err) {
		log.Printf("pod %s/%s: deleting: %v", pod.Namespace, pod.Name, err)
	}
}

// stopAll kills every pod without touching the API: the cluster is going away.
func (a *agent) stopAll() {
	a.mu.Lock()
	workers := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		workers = append(workers, w)
	}
	a.mu.Unlock()
	for _, w := range workers {
		w.removed()
	}
	for _, w := range workers {
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			log.Printf("pod %s/%s did not stop in time", w.bound.Namespace, w.bound.Name)
		}
	}
}
