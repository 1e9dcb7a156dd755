package main

import (
	"context"
	"encoding/json"
	"log"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// changed asks the status loop to report the pod's status.
func (w *podWorker) changed() {
	select {
	case w.statusCh <- struct{}{}:
	default:
	}
}

// statusLoop patches the pod's status whenever it changed, until the
// worker is done.
func (w *podWorker) statusLoop() {
	var last *corev1.PodStatus
	for {
		select {
		case <-w.done:
			return
		case <-w.statusCh:
		}
		st := w.podStatus()
		if last != nil && reflect.DeepEqual(*last, st) {
			continue
		}
		if err := w.patchStatus(st); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			log.Printf("pod %s/%s: reporting status: %v", w.bound.Namespace, w.bound.Name, err)
			time.AfterFunc(time.Second, w.changed)
			continue
		}
		last = &st
	}
}

func (w *podWorker) patchStatus(st corev1.PodStatus) error {
	// A merge patch replaces the lists (conditions, container statuses)
	// wholesale: the node owns them.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": w.bound.UID},
		"status":   st,
	})
	if err != nil {
		return err
	}
	_, err = w.a.cs.CoreV1().Pods(w.bound.Namespace).Patch(context.Background(), w.bound.Name,
		types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// podStatus computes the pod's status from what the worker knows.
func (w *podWorker) podStatus() corev1.PodStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := corev1.PodStatus{
		Phase:     w.phase(),
		HostIP:    bridgeIP,
		HostIPs:   []corev1.HostIP{{IP: bridgeIP}},
		StartTime: &w.startTime,
	}
	if w.sandbox.IP != "" {
		st.PodIP = w.sandbox.IP
		st.PodIPs = []corev1.PodIP{{IP: w.sandbox.IP}}
	}
	allReady := true
	for _, cs := range w.states {
		allReady = allReady && cs.ready
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(cs))
	}
	for _, cs := range w.initStates {
		st.InitContainerStatuses = append(st.InitContainerStatuses, containerStatus(cs))
	}
	ready := allReady && st.Phase == corev1.PodRunning
	notReady := "ContainersNotReady"
	if w.finalPhase != "" {
		notReady = "PodCompleted"
	}
	st.Conditions = []corev1.PodCondition{
		w.condition(corev1.PodReadyToStartContainers, w.networkUp, ""),
		w.condition(corev1.PodInitialized, w.initDone, "ContainersNotInitialized"),
		w.condition(corev1.ContainersReady, ready, notReady),
		w.condition(corev1.PodReady, ready, notReady),
		w.condition(corev1.PodScheduled, true, ""),
	}
	return st
}

// phase follows the kubelet: Pending until the init containers finished and
// a container ran, Running while any container runs or will restart, and
// Succeeded or Failed once every container finished for good.
func (w *podWorker) phase() corev1.PodPhase {
	if w.finalPhase != "" {
		return w.finalPhase
	}
	if !w.initDone {
		return corev1.PodPending
	}
	for _, cs := range w.states {
		if cs.state.Waiting == nil || cs.lastState.Terminated != nil {
			return corev1.PodRunning
		}
	}
	return corev1.PodPending
}

// terminalPhase is the phase of a pod whose containers all finished.
func (w *podWorker) terminalPhase() corev1.PodPhase {
	for _, cs := range append(append([]*containerState{}, w.initStates...), w.states...) {
		if t := cs.state.Terminated; t == nil || t.ExitCode != 0 {
			return corev1.PodFailed
		}
	}
	return corev1.PodSucceeded
}

// condition builds a pod condition, keeping its transition time while its
// status stays the same.
func (w *podWorker) condition(t corev1.PodConditionType, ok bool, falseReason string) corev1.PodCondition {
	status, reason := corev1.ConditionFalse, falseReason
	if ok {
		status, reason = corev1.ConditionTrue, ""
	}
	c, seen := w.conditions[t]
	if !seen || c.status != status {
		c = conditionState{status: status, since: metav1.Now()}
		w.conditions[t] = c
	}
	return corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: c.since}
}

type conditionState struct {
	status corev1.ConditionStatus
	since  metav1.Time
}

func containerStatus(cs *containerState) corev1.ContainerStatus {
	started := cs.started && cs.state.Running != nil
	return corev1.ContainerStatus{
		Name:                 cs.spec.Name,
		State:                cs.state,
		LastTerminationState: cs.lastState,
		Ready:                cs.ready,
		RestartCount:         cs.restartCount,
		Image:                cs.spec.Image,
		ImageID:              "localcluster://" + cs.spec.Image,
		ContainerID:          cs.containerID,
		Started:              &started,
	}
}
