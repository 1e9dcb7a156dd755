package main

// Side by side: the same faults (crash, freeze, loss of the node) on a
// licenseha triad and on what a user would run without licenseha, on the
// same real-node cluster, with the same client and the same probe:
//
//   - deployment: the reference license server (the members' image and
//     binary, serving its licence as the only, active, server) as a
//     single-replica Deployment with a liveness and a readiness probe at
//     Kubernetes' defaults, behind a Service; the client uses the Service;
//   - leaderelection: a Deployment of two replicas (one per node), each the
//     license server as a standby plus a client-go leader-election sidecar
//     (leaderpair/, defaults 15 s / 10 s / 2 s, ReleaseOnCancel) that makes
//     its server active while it leads; the client tries both replicas'
//     addresses, as it tries the triad's members.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/probe"
)

// leaderpairImage is the bench-only image with the leader-election sidecar
// (make bench-failover builds it into bin/bench-leaderpair-image.tar; the
// bench imports it into every node's containerd).
const leaderpairImage = "localhost/licenseha/bench-leaderpair:dev"

// After a frozen pod is thawed or a failed node returns, the probe keeps
// watching for two servers at once for observeAfterUndo, and then until
// one server alone has served for a second, for at most observeMax: a
// client-go elector that was frozen while leading still counts itself the
// leader until its RenewDeadline has passed without a renewal (it does not
// step down on seeing another holder), so its server serves for up to 10 s
// beside the new leader's.
const (
	observeAfterUndo = 5 * time.Second
	observeMax       = 60 * time.Second
)

// sideOptions configure the side-by-side comparison.
type sideOptions struct {
	systems  []string
	faults   []string
	trials   int
	timeout  time.Duration
	instance int
	imageTar string
}

// system is one way of running the license server.
type system interface {
	name() string
	// settle waits until the system is back to normal: its pods running,
	// exactly one server serving, the client holding its seats.
	settle(ctx context.Context) error
	// serving is the pod whose server serves (after settle).
	serving(ctx context.Context) (*corev1.Pod, error)
	watcher() *probe.Watcher
	load() *probe.Load
	stop(ctx context.Context)
}

type sideResult struct {
	gap     time.Duration
	capped  bool
	lost    int
	overlap time.Duration
	err     error
}

// sideBySide runs every fault on every system and prints one table per
// fault.
func sideBySide(ctx context.Context, env *harness.Env, b *bench, o sideOptions) error {
	results := map[string]map[string][]sideResult{}
	for _, f := range o.faults {
		results[f] = map[string][]sideResult{}
	}
	for _, name := range o.systems {
		var sys system
		var err error
		switch name {
		case "licenseha":
			sys = &triadSystem{b: b}
		case "deployment", "leaderelection":
			if name == "leaderelection" {
				if err := importImage(ctx, env, o.instance, o.imageTar); err != nil {
					return err
				}
			}
			sys, err = startBaseline(ctx, env, name)
		default:
			err = fmt.Errorf("unknown system %q (want licenseha, deployment, leaderelection)", name)
		}
		if err != nil {
			return err
		}
		for _, f := range o.faults {
			for i := 1; i <= o.trials; i++ {
				if err := sys.settle(ctx); err != nil {
					sys.stop(ctx)
					return fmt.Errorf("%s: settling before %s trial %d: %w", name, f, i, err)
				}
				r := sideTrial(ctx, env, sys, f, o.timeout)
				results[f][name] = append(results[f][name], r)
				switch {
				case r.err != nil:
					logf("%s %s trial %d: %v", name, f, i, r.err)
				default:
					logf("%s %s trial %d: client gap %s, lost %d, overlap %d ms", name, f, i, fmtGap(r.gap, r.capped), r.lost, r.overlap.Milliseconds())
				}
				if ctx.Err() != nil {
					sys.stop(context.Background())
					return ctx.Err()
				}
			}
		}
		sys.stop(ctx)
	}
	sideReport(o, results)
	return nil
}

// sideTrial injects one fault into the serving pod of sys, waits until the
// client is served again (at most timeout), undoes the fault (thaw, node
// back), watches for a while, and measures.
func sideTrial(ctx context.Context, env *harness.Env, sys system, fault string, timeout time.Duration) sideResult {
	pod, err := sys.serving(ctx)
	if err != nil {
		return sideResult{err: err}
	}
	w, load := sys.watcher(), sys.load()
	overlap0, lost0 := w.Overlap(), load.Lost()
	var undo func() error
	at := time.Now()
	switch fault {
	case "crash":
		err = env.Fault(ctx, "kill", pod.Namespace+"/"+pod.Name)
	case "freeze":
		var pids []int
		pids, err = signalContainers(pod, syscall.SIGSTOP)
		undo = func() error {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGCONT) // gone if the kubelet killed it
			}
			return nil
		}
	case "node":
		node := pod.Spec.NodeName
		err = env.Fault(ctx, "node-down", node)
		undo = func() error { return env.Fault(context.Background(), "node-up", node) }
	default:
		err = fmt.Errorf("unknown fault %q (want crash, freeze, node)", fault)
	}
	if err != nil {
		if undo != nil {
			_ = undo()
		}
		return sideResult{err: err}
	}
	// Served again: a request succeeded just now, after a gap that began
	// after the fault.
	capped := true
	for time.Since(at) < timeout && ctx.Err() == nil {
		last := load.LastSuccess()
		if time.Since(at) > 200*time.Millisecond && time.Since(last) < 100*time.Millisecond && load.LongestGapSince(at) > 150*time.Millisecond {
			capped = false
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := sideResult{capped: capped}
	if capped {
		r.gap = timeout
	} else {
		time.Sleep(time.Second)
		r.gap = load.LongestGapSince(at)
	}
	if undo != nil {
		if err := undo(); err != nil {
			r.err = fmt.Errorf("undoing the %s: %w", fault, err)
		}
		time.Sleep(observeAfterUndo)
		for end := time.Now().Add(observeMax - observeAfterUndo); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
			if h := w.History(); len(w.Serving()) == 1 && time.Since(h[len(h)-1].At) > time.Second {
				break
			}
		}
		if !capped {
			// A gap caused by the return of the frozen or cut-off server
			// (two serving, then a demotion) counts too.
			r.gap = max(r.gap, load.LongestGapSince(at))
		}
	}
	r.lost, r.overlap = load.Lost()-lost0, w.Overlap()-overlap0
	// A restarted container restarts next time after the kubelet's
	// crash-loop back-off (10 s, 20 s, ...); a fresh pod from the
	// controller (the Deployment's, the operator's) meets the next fault
	// as the first one.
	if err := recreateIfRestarted(ctx, env, pod); err != nil && r.err == nil {
		r.err = err
	}
	return r
}

// signalContainers sends sig to every process of the pod's running
// containers (not to its sandbox), found on this host by their cgroups.
func signalContainers(pod *corev1.Pod, sig syscall.Signal) ([]int, error) {
	var ids []string
	for _, s := range pod.Status.ContainerStatuses {
		if _, id, ok := strings.Cut(s.ContainerID, "://"); ok && s.State.Running != nil {
			ids = append(ids, id)
		}
	}
	var pids []int
	for _, p := range harness.PodProcesses(string(pod.UID)) {
		data, err := os.ReadFile(filepath.Join("/proc", p, "cgroup"))
		if err != nil {
			continue
		}
		for _, id := range ids {
			if strings.Contains(string(data), id) {
				if pid, err := strconv.Atoi(p); err == nil && syscall.Kill(pid, sig) == nil {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process of the containers of %s/%s on this host", pod.Namespace, pod.Name)
	}
	return pids, nil
}

// recreateIfRestarted deletes the pod when one of its containers was
// restarted, so that its controller creates a fresh one.
func recreateIfRestarted(ctx context.Context, env *harness.Env, pod *corev1.Pod) error {
	cur := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), cur); err != nil || cur.UID != pod.UID {
		return client.IgnoreNotFound(err)
	}
	restarted := false
	for _, s := range cur.Status.ContainerStatuses {
		restarted = restarted || s.RestartCount > 0
	}
	if !restarted {
		return nil
	}
	return client.IgnoreNotFound(env.Client.Delete(ctx, cur, &client.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
}

// importImage imports the leader-election sidecar's image into every
// node's containerd (the cluster imports only the licenseha and pause
// images; this one is the bench's alone).
func importImage(ctx context.Context, env *harness.Env, instance int, tar string) error {
	if _, err := os.Stat(tar); err != nil {
		return fmt.Errorf("%s: %w (make bench-failover builds it)", tar, err)
	}
	nodes := &corev1.NodeList{}
	if err := env.Client.List(ctx, nodes); err != nil {
		return err
	}
	for k := range nodes.Items {
		sock := fmt.Sprintf("/run/realcluster%d/n%d/containerd.sock", instance, k)
		if out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "-n", "k8s.io", "images", "import", tar).CombinedOutput(); err != nil {
			return fmt.Errorf("importing %s into node %d: %v: %s", tar, k, err, out)
		}
	}
	return nil
}

// triadSystem is the bench's triad (members a, b, c on nodes 1, 2, 0).
type triadSystem struct{ b *bench }

func (t *triadSystem) name() string                     { return "licenseha" }
func (t *triadSystem) settle(ctx context.Context) error { return t.b.settle(ctx) }
func (t *triadSystem) watcher() *probe.Watcher          { return t.b.w }
func (t *triadSystem) load() *probe.Load                { return t.b.load }
func (t *triadSystem) stop(ctx context.Context) {
	if t.b.stopLoad != nil {
		t.b.stopLoad()
	}
	// The triad's pods would only be collateral of the baselines' node
	// faults: remove them.
	_ = t.b.env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: objectMeta(ns)})
}
func (t *triadSystem) serving(ctx context.Context) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	return p, t.b.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: triad + "-a"}, p)
}

// baseline is a Deployment of the license server without licenseha.
type baseline struct {
	kind   string
	ns     string
	env    *harness.Env
	w      *probe.Watcher
	l      *probe.Load
	stopL  context.CancelFunc
	cancel context.CancelFunc
	ips    string
}

const (
	baselineGroup = "plant"
	baselineApp   = "license-server"
)

func (s *baseline) name() string            { return s.kind }
func (s *baseline) watcher() *probe.Watcher { return s.w }
func (s *baseline) load() *probe.Load       { return s.l }
func (s *baseline) stop(ctx context.Context) {
	if s.stopL != nil {
		s.stopL()
	}
	s.cancel()
	_ = s.env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: objectMeta(s.ns)})
}

// startBaseline deploys a baseline into a namespace of its own.
func startBaseline(ctx context.Context, env *harness.Env, kind string) (*baseline, error) {
	s := &baseline{kind: kind, ns: "bench-" + kind, env: env}
	logf("Deploying the %s baseline in namespace %s", kind, s.ns)
	objs, err := baselineObjects(env, s.ns, kind)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.w = probe.NewWatcher(nil, 50*time.Millisecond)
	go s.w.Run(wctx)
	// Every pod of the baseline is watched, terminating ones included
	// (they may still serve).
	go func() {
		for wctx.Err() == nil {
			if t, err := s.targets(wctx); err == nil {
				s.w.SetTargets(t)
			}
			select {
			case <-wctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return s, nil
}

func (s *baseline) pods(ctx context.Context) ([]corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := s.env.Client.List(ctx, list, client.InNamespace(s.ns), client.MatchingLabels{"app": baselineApp}); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

func (s *baseline) targets(ctx context.Context) ([]probe.Target, error) {
	pods, err := s.pods(ctx)
	if err != nil {
		return nil, err
	}
	var out []probe.Target
	for _, p := range pods {
		if p.Status.PodIP != "" {
			out = append(out, probe.Target{Name: p.Name, URL: "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)})
		}
	}
	return out, nil
}

func (s *baseline) replicas() int {
	if s.kind == "leaderelection" {
		return 2
	}
	return 1
}

func (s *baseline) settle(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := s.settled(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// settled is nil when all replicas run and are ready, exactly one server
// serves since a second ago, and the client holds its seats.
func (s *baseline) settled(ctx context.Context) error {
	pods, err := s.pods(ctx)
	if err != nil {
		return err
	}
	var ready []probe.Target
	for _, p := range pods {
		ok := p.DeletionTimestamp == nil && p.Status.PodIP != ""
		for _, c := range p.Status.Conditions {
			ok = ok && (c.Type != corev1.PodReady || c.Status == corev1.ConditionTrue)
		}
		ok = ok && len(p.Status.Conditions) > 0
		if !ok {
			return fmt.Errorf("pod %s not ready", p.Name)
		}
		ready = append(ready, probe.Target{Name: p.Name, URL: "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)})
	}
	if len(ready) != s.replicas() {
		return fmt.Errorf("%d of %d pods", len(ready), s.replicas())
	}
	s.w.SetTargets(ready)
	if len(s.w.Serving()) != 1 {
		return fmt.Errorf("serving: %v", s.w.Serving())
	}
	if h := s.w.History(); time.Since(h[len(h)-1].At) < time.Second {
		return fmt.Errorf("serving set changed just now")
	}
	if s.l == nil || s.l.Lost() > 0 || (s.kind == "leaderelection" && fmt.Sprint(ready) != s.ips) {
		return s.startLoad(ctx, ready)
	}
	if time.Since(s.l.LastSuccess()) > 500*time.Millisecond {
		return fmt.Errorf("client not served")
	}
	return nil
}

// startLoad (re)starts the client: through the Service for the
// Deployment (its pod's address changes when it is replaced), at both
// replicas' addresses for the leader-election pair (as at the triad's
// members').
func (s *baseline) startLoad(ctx context.Context, targets []probe.Target) error {
	if s.stopL != nil {
		s.stopL()
	}
	cfg := lhclient.Config{ClientID: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if s.kind == "deployment" {
		svc := &corev1.Service{}
		if err := s.env.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: baselineGroup}, svc); err != nil {
			return err
		}
		cfg.Endpoints = []string{"http://" + svc.Spec.ClusterIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)}
	} else {
		cfg.Members = map[string]string{}
		for _, t := range targets {
			cfg.Endpoints = append(cfg.Endpoints, t.URL)
			cfg.Members[t.Name] = t.URL
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	l, err := probe.StartLoad(lctx, cfg, "LabelDesigner", seats, 50*time.Millisecond)
	if err != nil {
		cancel()
		return fmt.Errorf("client: %w", err)
	}
	s.l, s.stopL, s.ips = l, cancel, fmt.Sprint(targets)
	return fmt.Errorf("client (re)started")
}

func (s *baseline) serving(ctx context.Context) (*corev1.Pod, error) {
	srv := s.w.Serving()
	if len(srv) != 1 {
		return nil, fmt.Errorf("serving: %v", srv)
	}
	p := &corev1.Pod{}
	return p, s.env.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: srv[0]}, p)
}

// baselineObjects are what a user would apply: the licence, trusted keys
// and admin token, the Deployment, a Service (and for the pair the RBAC of
// its elector).
func baselineObjects(env *harness.Env, namespace, kind string) ([]client.Object, error) {
	keys, err := os.ReadFile(env.TrustedKeysFile())
	if err != nil {
		return nil, err
	}
	lic, err := env.LicenceSecret(namespace, baselineGroup+"-licenses", baselineGroup, "LIC-PLANT", 100)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	labels := map[string]string{"app": baselineApp}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: namespace, Name: name} }
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: objectMeta(namespace)},
		lic,
		&corev1.ConfigMap{ObjectMeta: meta(baselineGroup + "-keys"), Data: map[string]string{"trusted-keys.pem": string(keys)}},
		&corev1.Secret{ObjectMeta: meta(baselineGroup + "-admin"), StringData: map[string]string{"token": hex.EncodeToString(tok)}},
		&corev1.Service{ObjectMeta: meta(baselineGroup), Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Name: "license", Port: licensehav1.DefaultServerPort, TargetPort: intstr.FromString("license")}}}},
	}
	role := "active"
	replicas := int32(1)
	if kind == "leaderelection" {
		role, replicas = "standby", 2
	}
	httpProbe := func(path string) *corev1.Probe {
		// Kubernetes' defaults, written out.
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("license")}},
			PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1}
	}
	secCtx := &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	adminMount := corev1.VolumeMount{Name: "admin", MountPath: "/etc/licenseha/admin", ReadOnly: true}
	podEnv := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "LICENSEHA_MEMBER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	server := corev1.Container{
		Name: "server", Image: harness.Image, ImagePullPolicy: corev1.PullNever,
		Command: []string{"/usr/local/bin/license-server", "--listen=:5160", "--admin-listen=127.0.0.1:5161",
			"--admin-token-file=/etc/licenseha/admin/token", "--data-dir=/var/lib/licenseha",
			"--license-dir=/etc/licenseha/licenses", "--trusted-keys=/etc/licenseha/keys/trusted-keys.pem",
			"--group=" + namespace + "/" + baselineGroup, "--role=" + role},
		Env:            podEnv,
		Ports:          []corev1.ContainerPort{{Name: "license", ContainerPort: licensehav1.DefaultServerPort}},
		LivenessProbe:  httpProbe("/healthz"),
		ReadinessProbe: httpProbe("/readyz"),
		VolumeMounts: []corev1.VolumeMount{adminMount,
			{Name: "data", MountPath: "/var/lib/licenseha"},
			{Name: "licenses", MountPath: "/etc/licenseha/licenses", ReadOnly: true},
			{Name: "keys", MountPath: "/etc/licenseha/keys", ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"}},
		SecurityContext: secCtx,
	}
	spec := corev1.PodSpec{
		Containers: []corev1.Container{server},
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
			RunAsGroup: ptr.To[int64](65532), FSGroup: ptr.To[int64](65532)},
		Volumes: []corev1.Volume{
			{Name: "admin", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: baselineGroup + "-admin"}}},
			{Name: "licenses", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: lic.Name}}},
			{Name: "keys", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: baselineGroup + "-keys"}}}},
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		// Node 0 runs the operator and carries the address of the host's
		// kube-proxy: the bench never fails it, so nothing runs there.
		Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpNotIn, Values: []string{harness.OperatorNode}}}}}}}},
	}
	if kind == "leaderelection" {
		spec.ServiceAccountName = "leaderpair"
		spec.Containers = append(spec.Containers, corev1.Container{
			Name: "elector", Image: leaderpairImage, ImagePullPolicy: corev1.PullNever,
			Command:         []string{"/usr/local/bin/leaderpair", "--lease=" + baselineGroup},
			Env:             podEnv,
			VolumeMounts:    []corev1.VolumeMount{adminMount},
			SecurityContext: secCtx,
		})
		// One replica per node, as anyone running two for availability.
		spec.Affinity.PodAntiAffinity = &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: "kubernetes.io/hostname"}}}
		objs = append(objs,
			&corev1.ServiceAccount{ObjectMeta: meta("leaderpair")},
			&rbacv1.Role{ObjectMeta: meta("leaderpair"), Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"},
				Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}}},
			&rbacv1.RoleBinding{ObjectMeta: meta("leaderpair"),
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "leaderpair"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "leaderpair", Namespace: namespace}}})
	}
	objs = append(objs, &appsv1.Deployment{ObjectMeta: meta(baselineGroup), Spec: appsv1.DeploymentSpec{
		Replicas: &replicas,
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
	}})
	return objs, nil
}

func fmtGap(d time.Duration, capped bool) string {
	if capped {
		return fmt.Sprintf("> %.0f s (no service within the trial's limit)", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// sideReport prints one table per fault: median, max, ratio of the
// medians to licenseha's, seats lost, overlap.
func sideReport(o sideOptions, results map[string]map[string][]sideResult) {
	for _, f := range o.faults {
		fmt.Printf("\n%s (%d trials per system, limit %.0f s per trial)\n\n", faultTitle[f], o.trials, o.timeout.Seconds())
		fmt.Println("| system | trials | unavailability median | unavailability max | median vs licenseha | seats lost | overlap (two serving) | errors |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		ref, refCapped, refOK := median(results[f]["licenseha"])
		for _, name := range o.systems {
			rs := results[f][name]
			med, medCapped, ok := median(rs)
			most, mostCapped := time.Duration(0), false
			lost, errs := 0, 0
			var overlap time.Duration
			for _, r := range rs {
				if r.err != nil {
					errs++
					continue
				}
				if r.gap > most || (r.gap == most && r.capped) {
					most, mostCapped = r.gap, r.capped
				}
				lost += r.lost
				overlap += r.overlap
			}
			ratio := "—"
			switch {
			case !ok || !refOK || ref <= 0 || refCapped:
			case name == "licenseha":
				ratio = "1×"
			case medCapped:
				ratio = fmt.Sprintf("> %.0f×", med.Seconds()/ref.Seconds())
			default:
				ratio = fmt.Sprintf("%.1f×", med.Seconds()/ref.Seconds())
			}
			fmt.Printf("| %s | %d | %s | %s | %s | %d | %d ms | %d |\n", name, len(rs), secs(med, medCapped, ok), secs(most, mostCapped, ok),
				ratio, lost, overlap.Milliseconds(), errs)
		}
	}
}

var faultTitle = map[string]string{
	"crash":  "Crash: SIGKILL of every process of the serving pod's containers",
	"freeze": "Freeze: SIGSTOP of every process of the serving pod's containers (a hung server), SIGCONT after the trial",
	"node":   "Node failure: the serving pod's node frozen (kubelet, containerd, containers) and cut off, back after the trial",
}

func median(rs []sideResult) (time.Duration, bool, bool) {
	var ok []sideResult
	for _, r := range rs {
		if r.err == nil {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return 0, false, false
	}
	sort.Slice(ok, func(i, j int) bool {
		return ok[i].gap < ok[j].gap || (ok[i].gap == ok[j].gap && !ok[i].capped && ok[j].capped)
	})
	m := ok[len(ok)/2]
	return m.gap, m.capped, true
}

func secs(d time.Duration, capped, ok bool) string {
	switch {
	case !ok:
		return "—"
	case capped:
		return fmt.Sprintf("> %.0f s", d.Seconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
