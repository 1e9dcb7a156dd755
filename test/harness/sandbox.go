package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PodSandbox is a running pod as this host sees it: its network namespace
// (for podnet.Dial) and the host folders of its volumes.
type PodSandbox struct {
	// Netns is a path to the pod's network namespace.
	Netns   string
	volumes map[string]string
}

// Volume is the host folder of the pod's volume name ("" when unknown).
func (s PodSandbox) Volume(name string) string { return s.volumes[name] }

// PodSandbox finds a running pod's network namespace and volume folders:
// from the pod's processes (their cgroup names the pod) and the kubelet's
// volume folders (emptyDir) or the PersistentVolume's hostPath (claims).
func (e *Env) PodSandbox(ctx context.Context, ns, name string) (PodSandbox, error) {
	p := &corev1.Pod{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		return PodSandbox{}, err
	}
	pids := PodProcesses(string(p.UID))
	if len(pids) == 0 {
		return PodSandbox{}, fmt.Errorf("pod %s/%s: no process on this host", ns, name)
	}
	s := PodSandbox{Netns: "/proc/" + pids[0] + "/ns/net", volumes: map[string]string{}}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			pvc := &corev1.PersistentVolumeClaim{}
			if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v.PersistentVolumeClaim.ClaimName}, pvc); err != nil {
				return PodSandbox{}, err
			}
			pv := &corev1.PersistentVolume{}
			if err := e.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
				return PodSandbox{}, err
			}
			if pv.Spec.HostPath != nil {
				s.volumes[v.Name] = pv.Spec.HostPath.Path
			}
		default:
			// The kubelet keeps the volume in
			// <root>/pods/<uid>/volumes/<plugin>/<name>.
			matches, _ := filepath.Glob(filepath.Join("/var/lib/realcluster*", "n*", "kubelet", "pods", string(p.UID), "volumes", "*", v.Name))
			if len(matches) == 1 {
				s.volumes[v.Name] = matches[0]
			}
		}
	}
	return s, nil
}

// PodProcesses lists the pids on this host whose cgroup is the pod's
// (the kubelet names pod cgroups pod<uid>).
func PodProcesses(uid string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && strings.Contains(string(data), "/pod"+uid+"/") {
			out = append(out, e.Name())
		}
	}
	return out
}
