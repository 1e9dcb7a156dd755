//go:build linux

// Package localcluster tests bin/localcluster end to end: it starts a local
// cluster, runs pods of a small test server mapped through the licenseha
// image, injects faults and checks that nothing is left afterwards. It needs
// root and is skipped with -short.
package localcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

const (
	image = "ghcr.io/licenseha/licenseha:dev"
	// instance keeps the test's cluster apart from a developer's (instance
	// 0): its own bridge lc9, pod network 10.253.0.0/16 and netns prefix lc9-.
	instance = "9"
	apiHost  = "10.253.0.1"
)

type env struct {
	t        *testing.T
	exe      string
	stateDir string
	markers  string
	cs       kubernetes.Interface
	cfg      *rest.Config
}

func TestLocalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the local cluster needs root")
	}
	e := start(t)
	ctx := context.Background()

	_, err := e.cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"greeting": "hello"},
	}, metav1.CreateOptions{})
	must(t, err)
	_, err = e.cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "licence"}, Data: map[string][]byte{"key": []byte("s3cret")},
	}, metav1.CreateOptions{})
	must(t, err)
	a, b := e.runPod("alpha"), e.runPod("beta")

	t.Run("environment, volumes and downward API", func(t *testing.T) {
		for name, want := range map[string]string{
			"POD_NAME": "alpha", "POD_NAMESPACE": "default", "POD_IP": a.Status.PodIP,
			"GREETING": "hello", "EXPANDED": "alpha-default", "KUBERNETES_SERVICE_HOST": apiHost,
		} {
			if got := e.get(a, "/env?name="+name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if got := e.get(a, "/hostname"); got != "alpha" {
			t.Errorf("hostname = %q, want alpha", got)
		}
		if got := e.get(a, "/file?path=/etc/settings/greeting"); got != "hello" {
			t.Errorf("configMap volume: %q", got)
		}
		if got := e.get(a, "/file?path=/etc/podinfo/labels"); !strings.Contains(got, `app="localcluster-test"`) {
			t.Errorf("downwardAPI volume: %q", got)
		}
		if got := e.get(a, "/file?path=/copied/testserver"); got == "" {
			t.Errorf("the init container's copy is missing")
		}
		if got := e.get(a, "/file?path=/copied/post-start"); got != "alpha\n" {
			t.Errorf("the postStart hook did not run: %q", got)
		}
	})

	t.Run("security context", func(t *testing.T) {
		if got := e.get(a, "/id"); got != "65532:65532" {
			t.Errorf("uid:gid = %q, want 65532:65532", got)
		}
		if got := e.get(a, "/file?path=/etc/licence/key"); got != "s3cret" {
			t.Errorf("secret (mode 0440, fsGroup) = %q", got)
		}
		if got := e.get(a, "/write?path=/etc/new-file"); got == "ok" {
			t.Errorf("the root file system is writable despite readOnlyRootFilesystem")
		}
		if got := e.get(a, "/write?path=/copied/new-file"); got != "ok" {
			t.Errorf("an emptyDir is not writable: %q", got)
		}
		if got := e.get(a, "/write?path=/tmp/new-file"); got != "ok" {
			t.Errorf("an emptyDir on /tmp is not writable under readOnlyRootFilesystem: %q", got)
		}
	})

	t.Run("persistent volume claim", func(t *testing.T) {
		if got := e.get(a, "/write?path=/data/file"); got != "ok" {
			t.Fatalf("writing to the claim: %q", got)
		}
		files, _ := filepath.Glob(filepath.Join(e.stateDir, "persistent-volumes", "*", "file"))
		if len(files) != 1 {
			t.Errorf("the file is not on a provisioned volume: %v", files)
		}
	})

	t.Run("service account token", func(t *testing.T) {
		const dir = "/var/run/secrets/kubernetes.io/serviceaccount"
		if got := e.get(a, "/file?path="+dir+"/namespace"); got != "default" {
			t.Errorf("namespace file = %q", got)
		}
		if got := e.get(a, "/file?path="+dir+"/ca.crt"); !strings.Contains(got, "BEGIN CERTIFICATE") {
			t.Errorf("ca.crt = %q", got)
		}
		cfg := rest.AnonymousClientConfig(e.cfg)
		cfg.BearerToken = e.get(a, "/file?path="+dir+"/token")
		review, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().
			Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
		must(t, err)
		if u := review.Status.UserInfo.Username; u != "system:serviceaccount:default:default" {
			t.Errorf("token authenticates as %q", u)
		}
	})

	t.Run("configMap volume follows updates", func(t *testing.T) {
		cm, err := e.cs.CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{})
		must(t, err)
		cm.Data["greeting"] = "updated"
		_, err = e.cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
		must(t, err)
		eventually(t, 15*time.Second, "the volume shows the update", func() bool {
			return e.get(a, "/file?path=/etc/settings/greeting") == "updated"
		})
	})

	t.Run("service ClusterIP and DNS", func(t *testing.T) {
		svc, err := e.cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "test"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "localcluster-test"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		must(t, err)
		for _, name := range []string{"test", "test.default.svc.cluster.local"} {
			eventually(t, 5*time.Second, "DNS resolves "+name, func() bool {
				return e.get(a, "/lookup?name="+name) == svc.Spec.ClusterIP
			})
		}
		addr := svc.Spec.ClusterIP + ":80"
		var last string
		defer func() {
			if t.Failed() {
				t.Logf("last answers (host, alpha, beta): %s", last)
			}
		}()
		eventually(t, 15*time.Second, "the ClusterIP answers from the host and from a pod (itself included)", func() bool {
			host, err := httpGet("http://" + addr + "/healthz")
			if err != nil {
				host = err.Error()
			}
			fromA, fromB := e.get(a, "/dial?addr="+addr), e.get(b, "/dial?addr="+addr)
			last = strings.Join([]string{host, fromA, fromB}, " | ")
			return host == "ok" && fromA == "ok" && fromB == "ok"
		})
	})

	t.Run("kill restarts the container", func(t *testing.T) {
		e.fault("kill", "alpha")
		eventually(t, 20*time.Second, "alpha restarted and ready", func() bool {
			p := e.pod("alpha")
			return p.Status.ContainerStatuses[0].RestartCount >= 1 && isReady(p)
		})
		for _, previous := range []bool{false, true} {
			logs, err := e.cs.CoreV1().Pods("default").GetLogs("alpha", &corev1.PodLogOptions{Container: "server", Previous: previous}).DoRaw(ctx)
			if err != nil || string(logs) != "listening on :8080\n" {
				t.Errorf("kubectl logs (previous: %v) = %q, %v", previous, logs, err)
			}
		}
	})

	t.Run("partition and heal", func(t *testing.T) {
		peer := b.Status.PodIP + ":8080"
		if got := e.get(a, "/dial?addr="+peer); got != "ok" {
			t.Fatalf("before the partition: %q", got)
		}
		e.fault("partition", "alpha", "default/beta")
		if got := e.get(a, "/dial?addr="+peer); got == "ok" {
			t.Errorf("alpha reaches beta through the partition")
		}
		if got := e.get(b, "/dial?addr="+a.Status.PodIP+":8080"); got == "ok" {
			t.Errorf("beta reaches alpha through the partition")
		}
		e.fault("isolate-apiserver", "beta")
		if got := e.get(b, "/dial?addr="+apiHost+":6443"); got == "ok" {
			t.Errorf("beta reaches the API server while isolated")
		}
		e.fault("heal")
		if got := e.get(a, "/dial?addr="+peer); got != "ok" {
			t.Errorf("after heal: %q", got)
		}
		if got := e.get(b, "/dial?addr="+apiHost+":6443"); got != "ok" {
			t.Errorf("API server after heal: %q", got)
		}
	})

	t.Run("pause makes the pod unready, resume recovers it", func(t *testing.T) {
		e.fault("pause", "beta")
		eventually(t, 15*time.Second, "beta unready", func() bool { return !isReady(e.pod("beta")) })
		e.fault("resume", "beta")
		eventually(t, 15*time.Second, "beta ready again", func() bool { return isReady(e.pod("beta")) })
	})

	t.Run("graceful deletion", func(t *testing.T) {
		must(t, e.cs.CoreV1().Pods("default").Delete(ctx, "alpha", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](10)}))
		eventually(t, 15*time.Second, "the pod object is gone", func() bool {
			_, err := e.cs.CoreV1().Pods("default").Get(ctx, "alpha", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		data, err := os.ReadFile(filepath.Join(e.markers, "alpha"))
		if err != nil || string(data) != "SIGTERM" {
			t.Errorf("the container did not record SIGTERM: %q, %v", data, err)
		}
		if _, err := os.Stat(filepath.Join(e.markers, "alpha-pre-stop")); err != nil {
			t.Errorf("the preStop hook did not run: %v", err)
		}
	})
}

// start builds bin/localcluster and the test server, starts a cluster and
// registers its teardown and the check that nothing is left.
func start(t *testing.T) *env {
	root, err := filepath.Abs("../..")
	must(t, err)
	tmp := t.TempDir()
	e := &env{t: t, exe: filepath.Join(tmp, "localcluster"), stateDir: filepath.Join(tmp, "state"), markers: filepath.Join(tmp, "markers")}
	binDir := filepath.Join(tmp, "image-bin")
	must(t, os.Mkdir(e.markers, 0o777))
	must(t, os.Chmod(e.markers, 0o777)) // the pods run as user 65532
	run(t, root, "go", "build", "-o", e.exe, "./hack/localcluster")
	run(t, root, "go", "build", "-o", filepath.Join(binDir, "testserver"), "./test/localcluster/testserver")
	assets := strings.TrimSpace(run(t, root, "hack/envtest-assets.sh"))
	assets = assets[strings.LastIndex(assets, "\n")+1:]

	began := time.Now()
	t.Setenv("LOCALCLUSTER_INSTANCE", instance)
	up := exec.Command(e.exe, "up", "--state-dir", e.stateDir, "--bin-dir", binDir, "--k8s-bin-dir", assets,
		"--nodes", "2", "--restart-backoff", "1s")
	logFile, err := os.Create(filepath.Join(tmp, "up.log"))
	must(t, err)
	up.Stdout, up.Stderr = logFile, logFile
	must(t, up.Start())
	exited := make(chan struct{})
	go func() { _ = up.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = up.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			t.Errorf("localcluster did not stop")
			_ = up.Process.Kill()
		}
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("localcluster log:\n%s", out)
		}
		assertNothingLeft(t, binDir)
	})
	eventually(t, 90*time.Second, "the cluster is ready", func() bool {
		select {
		case <-exited:
			out, _ := os.ReadFile(logFile.Name())
			t.Fatalf("localcluster exited:\n%s", out)
		default:
		}
		_, err := os.Stat(filepath.Join(e.stateDir, "ready"))
		return err == nil
	})
	t.Logf("cluster ready in %s", time.Since(began).Round(100*time.Millisecond))
	e.cfg, err = clientcmd.BuildConfigFromFlags("", filepath.Join(e.stateDir, "kubeconfig"))
	must(t, err)
	e.cs = kubernetes.NewForConfigOrDie(e.cfg)
	return e
}

// runPod starts a test-server pod whose init container copies the server
// into an emptyDir, and waits until it is ready.
func (e *env) runPod(name string) *corev1.Pod {
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "localcluster-test"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			// The operator's member pods run like this (restricted).
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
				FSGroup: ptr.To[int64](65532),
			},
			InitContainers: []corev1.Container{{
				Name: "copy", Image: image,
				Command:      []string{"/usr/local/bin/testserver", "copy", "/usr/local/bin/testserver", "/copied/testserver"},
				VolumeMounts: []corev1.VolumeMount{{Name: "copied", MountPath: "/copied"}},
			}},
			Containers: []corev1.Container{{
				Name: "server", Image: image,
				Command:         []string{"/copied/testserver"},
				SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)},
				Lifecycle: &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
						Command: []string{"/copied/testserver", "copy", "/etc/hostname", "/copied/post-start"}}},
					PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
						Command: []string{"/copied/testserver", "copy", "/etc/hostname", "/markers/" + name + "-pre-stop"}}},
				},
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: field("metadata.name")},
					{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
					{Name: "POD_IP", ValueFrom: field("status.podIP")},
					{Name: "EXPANDED", Value: "$(POD_NAME)-$(POD_NAMESPACE)"},
					{Name: "TERM_MARKER", Value: "/markers/" + name},
					{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1,
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/copied/testserver", "copy", "/etc/hostname", "/copied/probe"}}},
					PeriodSeconds: 5,
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "copied", MountPath: "/copied"},
					{Name: "settings", MountPath: "/etc/settings"},
					{Name: "podinfo", MountPath: "/etc/podinfo"},
					{Name: "markers", MountPath: "/markers"},
					{Name: "licence", MountPath: "/etc/licence", ReadOnly: true},
					{Name: "data", MountPath: "/data"},
					{Name: "tmp", MountPath: "/tmp"},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "copied", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
				{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
					Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
				{Name: "markers", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: e.markers, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
				{Name: "licence", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: "licence", DefaultMode: ptr.To[int32](0o440)}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: "data-" + name}}},
			},
		},
	}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data-" + name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	_, err := e.cs.CoreV1().PersistentVolumeClaims("default").Create(context.Background(), claim, metav1.CreateOptions{})
	must(e.t, err)
	_, err = e.cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	must(e.t, err)
	eventually(e.t, 30*time.Second, name+" ready", func() bool { return isReady(e.pod(name)) })
	return e.pod(name)
}

func (e *env) pod(name string) *corev1.Pod {
	p, err := e.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	must(e.t, err)
	return p
}

// get asks a pod's test server, from the host, for path.
func (e *env) get(p *corev1.Pod, path string) string {
	body, err := httpGet("http://" + p.Status.PodIP + ":8080" + path)
	if err != nil {
		return err.Error()
	}
	return body
}

func (e *env) fault(args ...string) {
	cmd := exec.Command(e.exe, append([]string{"fault"}, args...)...)
	cmd.Env = append(os.Environ(), "LOCALCLUSTER_STATE_DIR="+e.stateDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("fault %v: %v\n%s", args, err, out)
	}
}

func httpGet(url string) (string, error) {
	// A fresh connection each time: a kept-alive one may predate a
	// Service's rules (or a fault) and would not show their effect.
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), err
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// assertNothingLeft checks that no pod network, bridge or process of the
// test remains.
func assertNothingLeft(t *testing.T, binDir string) {
	if entries, _ := os.ReadDir("/run/netns"); len(entries) > 0 {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "lc"+instance+"-") {
				t.Errorf("network namespace %s left", e.Name())
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/lc" + instance); err == nil {
		t.Errorf("bridge lc%s left", instance)
	}
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && (strings.HasPrefix(target, binDir) || strings.Contains(target, "/copied/")) {
			t.Errorf("process %s (%s) left", filepath.Dir(exe), target)
		}
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S").Output(); strings.Contains(string(out), "LOCALCLUSTER"+instance) {
		t.Errorf("iptables rules left:\n%s", out)
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("%s %v: %v\n%s", name, args, err, ee.Stderr)
		}
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("unexpected error: %w", err))
	}
}
