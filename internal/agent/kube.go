package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/licenseha/licenseha/internal/group"
)

// apiTimeout bounds every API call of the agent: an API server that does
// not answer quickly counts as unreachable, which the protocol handles
// (failsafe serving with a peer quorum).
const apiTimeout = 2 * time.Second

// newClientset builds a client from the pod's service account, and the
// REST client the agent's watches use. Every call of the first is bounded by
// apiTimeout; the watches are not (a watch is one long request, ended by the
// server after its timeoutSeconds of several minutes): bounding them too
// would end and re-open every watch every apiTimeout, about 90 requests a
// minute per member for nothing.
func newClientset() (*kubernetes.Clientset, rest.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the pod's service account: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = group.FieldManagerAgent
	watchCS, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	cfg.Timeout = apiTimeout
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cs, watchCS.CoreV1().RESTClient(), nil
}

// watchNamed keeps the latest version of one named object in store and
// calls onChange after every change. The agent's Role allows reading only
// its group's objects by name, so it lists and watches with a field
// selector on the name.
func watchNamed[T runtime.Object](ctx context.Context, c rest.Interface, resource, namespace, name string, obj T, onChange func(T)) {
	lw := cache.NewListWatchFromClient(c, resource, namespace, fields.OneTermEqualSelector("metadata.name", name))
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	call := func(o any) {
		if t, ok := o.(T); ok {
			onChange(t)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    call,
		UpdateFunc: func(_, n any) { call(n) },
	})
	go inf.Run(ctx.Done())
}

// podReporter writes the member's role label and state annotation on its
// own pod, only when they change.
type podReporter struct {
	cs        kubernetes.Interface
	namespace string
	pod       string

	mu        sync.Mutex
	lastLabel string
	lastState *group.MemberState
}

// observe compares the pod as it is with what was last written: when
// someone else changed the role label or the report (the operator corrects
// labels from a possibly older view of the Lease), the next Report writes
// again.
func (r *podReporter) observe(p *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastState == nil {
		return
	}
	raw, _ := json.Marshal(*r.lastState)
	if p.Labels[group.LabelRole] != r.lastLabel || p.Annotations[group.AnnotationMemberState] != string(raw) {
		r.lastLabel, r.lastState = "", nil
	}
}

// Report patches the pod when label or state differ from what was last
// written successfully. A failed write is retried on the next report.
func (r *podReporter) Report(ctx context.Context, roleLabel string, state group.MemberState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if roleLabel == r.lastLabel && r.lastState != nil && reflect.DeepEqual(*r.lastState, state) {
		return nil
	}
	raw, err := json.Marshal(state)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]string{group.LabelRole: roleLabel},
		"annotations": map[string]string{group.AnnotationMemberState: string(raw)},
	}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if _, err := r.cs.CoreV1().Pods(r.namespace).Patch(ctx, r.pod, types.MergePatchType, patch, metaPatchOpts); err != nil {
		return fmt.Errorf("reporting member state on pod %s: %w", r.pod, err)
	}
	r.lastLabel, r.lastState = roleLabel, &state
	return nil
}

// configFromConfigMap decodes the group configuration the operator wrote.
func configFromConfigMap(cm *corev1.ConfigMap) (*group.Config, error) {
	raw, ok := cm.Data[group.ConfigKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s has no %s", cm.Name, group.ConfigKey)
	}
	cfg := &group.Config{}
	if err := json.Unmarshal([]byte(raw), cfg); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", group.ConfigKey, err)
	}
	return cfg, nil
}

var metaPatchOpts = metav1.PatchOptions{FieldManager: group.FieldManagerAgent}
