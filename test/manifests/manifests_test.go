// Package manifests_test checks the two ways of installing the operator: the
// Helm chart (charts/licenseha) and kustomize (config/default).
//
//   - TestChartMatchesKustomize renders both and requires the same operator
//     objects: kinds, names (modulo the release prefix), RBAC rules, security
//     contexts, args, probes and CRDs; also for the operator watching some
//     namespaces (watchNamespaces, config/namespaced).
//   - TestNamespacedOperator runs the operator with only the chart's
//     namespaced RBAC and its --watch-namespaces.
//   - TestChartServerSideDryRun applies the rendered chart, with default and
//     non-default values, to a real kube-apiserver (envtest) with server-side
//     dry-run and strict field validation, in namespaces that enforce the
//     "restricted" Pod Security Standard.
//
// They need bin/helm-<version> (`make helm`) and the control-plane binaries
// (hack/envtest-assets.sh, found by internal/testenv); `make test-manifests`
// provides both. HELM and KUBEBUILDER_ASSETS override where they are looked
// up.
package manifests_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/internal/testenv"
)

const (
	root      = "../.."
	chartDir  = root + "/charts/licenseha"
	namespace = "licenseha-system"
	// kustomizeTag is the image tag config/manager names; the chart is
	// rendered with the same tag for the comparison.
	kustomizeTag = "dev"
)

func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		h = filepath.Join(root, "bin", "helm")
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("no helm at %s (run 'make helm' or set HELM): %v", h, err)
	}
	return h
}

func kubectlBin(t *testing.T) string {
	t.Helper()
	if k := os.Getenv("KUBECTL"); k != "" {
		return k
	}
	if k, err := exec.LookPath("kubectl"); err == nil {
		return k
	}
	dir, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubectl")
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// renderChart runs helm template with the given release name and extra flags.
func renderChart(t *testing.T, release, ns string, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", release, chartDir, "--namespace", ns}, flags...)
	return decode(t, run(t, helmBin(t), args...))
}

// renderKustomize renders config/<dir> (default, namespaced).
func renderKustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, run(t, kubectlBin(t), "kustomize", filepath.Join(root, "config", dir)))
}

func decode(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

func key(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s/%s %s", u.GetKind(), u.GetNamespace(), u.GetName())
}

// Labels only Helm sets (release bookkeeping); kustomize has no release.
var helmOnlyLabels = []string{
	"helm.sh/chart",
	"app.kubernetes.io/managed-by",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/version",
}

// normalise removes what legitimately differs between the two renderings and
// maps the chart's name prefix onto the kustomize one ("licenseha").
func normalise(u *unstructured.Unstructured, prefix string) *unstructured.Unstructured {
	u = u.DeepCopy()
	if prefix != "licenseha" {
		u.Object = renamePrefix(u.Object, prefix+"-", "licenseha-").(map[string]any)
	}
	for _, path := range [][]string{
		{"metadata", "labels"},
		{"spec", "selector"},
		{"spec", "selector", "matchLabels"},
		{"spec", "template", "metadata", "labels"},
	} {
		m, found, _ := unstructured.NestedMap(u.Object, path...)
		if !found {
			continue
		}
		for _, l := range helmOnlyLabels {
			delete(m, l)
		}
		_ = unstructured.SetNestedMap(u.Object, m, path...)
	}
	ann := u.GetAnnotations()
	// Only the chart keeps its CRDs on uninstall (crds.keep).
	delete(ann, "helm.sh/resource-policy")
	delete(ann, "argocd.argoproj.io/sync-options")
	if len(ann) == 0 {
		unstructured.RemoveNestedField(u.Object, "metadata", "annotations")
	} else {
		u.SetAnnotations(ann)
	}
	return u
}

func renamePrefix(v any, from, to string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = renamePrefix(e, from, to)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = renamePrefix(e, from, to)
		}
		return x
	case string:
		if strings.HasPrefix(x, from) {
			return to + strings.TrimPrefix(x, from)
		}
		return x
	default:
		return v
	}
}

// diff lists the paths where a and b differ.
func diff(path string, a, b any, out *[]string) {
	if reflect.DeepEqual(a, b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			diff(path+"."+k, am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			diff(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i], out)
		}
		return
	}
	ay, _ := yaml.Marshal(a)
	by, _ := yaml.Marshal(b)
	*out = append(*out, fmt.Sprintf("%s:\n  kustomize: %s\n  chart:     %s", path,
		strings.ReplaceAll(strings.TrimSpace(string(ay)), "\n", "\n             "),
		strings.ReplaceAll(strings.TrimSpace(string(by)), "\n", "\n             ")))
}

func TestChartMatchesKustomize(t *testing.T) {
	for _, tc := range []struct {
		dir        string
		chartFlags []string
		want       []string
	}{
		{"default", nil, []string{
			"ClusterRole/ licenseha-manager",
			"ClusterRoleBinding/ licenseha-manager",
		}},
		// The operator watching two namespaces: a Role in each of them
		// instead of the ClusterRole.
		{"namespaced", []string{"--set", "watchNamespaces={team-a,team-b}"}, []string{
			"Role/team-a licenseha-manager",
			"RoleBinding/team-a licenseha-manager",
			"Role/team-b licenseha-manager",
			"RoleBinding/team-b licenseha-manager",
		}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			compareChartWithKustomize(t, tc.dir, tc.chartFlags, tc.want)
		})
	}
}

// compareChartWithKustomize requires config/<dir> and the chart rendered with
// chartFlags to hold the same objects, among them those named in want and the
// ones every installation has.
func compareChartWithKustomize(t *testing.T, dir string, chartFlags, want []string) {
	kust := map[string]*unstructured.Unstructured{}
	for _, u := range renderKustomize(t, dir) {
		// The chart leaves the namespace to `helm install --create-namespace`
		// (or to whoever manages namespaces); kustomize creates it, labelled
		// to enforce the restricted Pod Security Standard.
		if u.GetKind() == "Namespace" {
			if u.GetName() != namespace || u.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("kustomize Namespace %s: want %s enforcing the restricted Pod Security Standard", u.GetName(), namespace)
			}
			continue
		}
		kust[key(u)] = normalise(u, "licenseha")
	}
	for _, k := range append([]string{
		"CustomResourceDefinition/ licensetriads.licenseha.io",
		"CustomResourceDefinition/ licensebackuppairs.licenseha.io",
		"Role/licenseha-system licenseha-leader-election",
		"RoleBinding/licenseha-system licenseha-leader-election",
		"ValidatingAdmissionPolicy/ licenseha-agent-pods",
		"ValidatingAdmissionPolicyBinding/ licenseha-agent-pods",
		"ServiceAccount/licenseha-system licenseha-operator",
		"Deployment/licenseha-system licenseha-operator",
		"Service/licenseha-system licenseha-operator-metrics",
	}, want...) {
		if kust[k] == nil {
			t.Errorf("kustomize output lacks %s", k)
		}
	}

	// Release "licenseha" gives the same names; release "prod" gives the
	// prefix "prod-licenseha", which normalise maps back.
	for _, rel := range []struct{ release, prefix string }{{"licenseha", "licenseha"}, {"prod", "prod-licenseha"}} {
		t.Run("release="+rel.release, func(t *testing.T) {
			chart := map[string]*unstructured.Unstructured{}
			flags := append([]string{"--set", "image.tag=" + kustomizeTag}, chartFlags...)
			for _, u := range renderChart(t, rel.release, namespace, flags...) {
				n := normalise(u, rel.prefix)
				chart[key(n)] = n
			}
			var keys []string
			for k := range kust {
				keys = append(keys, k)
			}
			for k := range chart {
				if kust[k] == nil {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				a, b := kust[k], chart[k]
				switch {
				case a == nil:
					t.Errorf("%s: only in the chart", k)
				case b == nil:
					t.Errorf("%s: only in kustomize", k)
				default:
					var d []string
					diff("", a.Object, b.Object, &d)
					if len(d) > 0 {
						t.Errorf("%s differs:\n%s", k, strings.Join(d, "\n"))
					}
				}
			}
		})
	}
}

// TestChartDefaultsAreLeastPrivilege pins properties of the rendered chart
// that a diff against kustomize would not catch if both drifted together.
func TestChartDefaultsAreLeastPrivilege(t *testing.T) {
	for _, vf := range []string{"", chartDir + "/ci/all-features-values.yaml", chartDir + "/ci/existing-configmap-values.yaml",
		chartDir + "/ci/namespaced-values.yaml"} {
		flags := []string{}
		if vf != "" {
			flags = append(flags, "-f", vf)
		}
		name := filepath.Base(vf)
		if vf == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			objs := renderChart(t, "licenseha", namespace, flags...)
			watched := map[string]bool{}
			if name == "namespaced-values.yaml" {
				watched["printing"], watched["warehouse"] = true, true
			}
			kinds := map[string]int{}
			for _, u := range objs {
				kinds[u.GetKind()]++
				switch u.GetKind() {
				case "ClusterRole":
					rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
					for _, r := range rules {
						s := fmt.Sprint(r)
						if strings.Contains(s, "*") {
							t.Errorf("ClusterRole rule with a wildcard: %s", s)
						}
					}
				case "Role", "RoleBinding":
					// Only the operator's Role of a watched namespace
					// (namespaced-values.yaml) lives elsewhere.
					if u.GetNamespace() != namespace && (u.GetName() != "licenseha-manager" || !watched[u.GetNamespace()]) {
						t.Errorf("%s %s/%s outside the release namespace", u.GetKind(), u.GetNamespace(), u.GetName())
					}
				case "Deployment":
					var d struct {
						Spec struct {
							Template corev1.PodTemplateSpec `json:"template"`
						} `json:"spec"`
					}
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
						t.Fatal(err)
					}
					ps := d.Spec.Template.Spec
					if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
						ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
						t.Errorf("pod security context %+v: want runAsNonRoot and seccomp RuntimeDefault", ps.SecurityContext)
					}
					for _, c := range ps.Containers {
						sc := c.SecurityContext
						if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
							sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
							sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
							t.Errorf("container %s security context %+v: want no privilege escalation, read-only root, drop ALL", c.Name, sc)
						}
						// Member pods take the operator's own image: it reads
						// it from its pod, so whatever sets the container's
						// image (values, an overlay's images:) sets theirs.
						if containsPrefix(c.Args, "--image=") {
							t.Errorf("container %s args %v: --image would keep the members on that image when the container's changes", c.Name, c.Args)
						}
						env := map[string]string{}
						for _, e := range c.Env {
							if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
								env[e.Name] = e.ValueFrom.FieldRef.FieldPath
							}
						}
						if env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
							t.Errorf("container %s env %v: want POD_NAME and POD_NAMESPACE from the downward API", c.Name, c.Env)
						}
					}
				}
			}
			want := map[string]int{"CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
				"Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1,
				"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1}
			switch filepath.Base(vf) {
			case "all-features-values.yaml":
				want["ConfigMap"], want["ServiceMonitor"], want["PodDisruptionBudget"] = 2, 1, 1
				want["PodMonitor"], want["PrometheusRule"] = 1, 1
			case "external-rbac-values.yaml":
				// Neither the ServiceAccount nor any permission.
				for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
					delete(want, k)
				}
			case "existing-configmap-values.yaml":
				want["PodDisruptionBudget"] = 1
				delete(want, "CustomResourceDefinition")
			case "namespaced-values.yaml":
				// No cluster-wide permission at all.
				delete(want, "ClusterRole")
				delete(want, "ClusterRoleBinding")
				want["Role"], want["RoleBinding"] = 3, 3
			}
			if !reflect.DeepEqual(kinds, want) {
				t.Errorf("kinds rendered: %v, want %v", kinds, want)
			}
		})
	}
}

func containsPrefix(args []string, s string) bool {
	for _, a := range args {
		if a == s {
			return true
		}
	}
	return false
}

// warnings collects the API server's warnings (Pod Security "warn" mode
// reports violations of a Deployment's pod template this way).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, msg string) {
	if code != 299 || msg == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// monitoringCRD stands in for one of the Prometheus Operator's CRDs so that
// the chart's ServiceMonitor, PodMonitor and PrometheusRule can be dry-run
// applied.
func monitoringCRD(kind, plural string) string {
	return fmt.Sprintf(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[2]s.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: %[1]s, listKind: %[1]sList, plural: %[2]s, singular: %[3]s}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, kind, plural, strings.ToLower(kind))
}

func TestChartServerSideDryRun(t *testing.T) {
	helmBin(t) // fail early, before starting the API server
	// No CRDs: the chart's are applied.
	env := testenv.ForTest(t, testenv.Options{NoCRDs: true})

	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = w
	c, err := env.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	for _, k := range [][2]string{{"ServiceMonitor", "servicemonitors"}, {"PodMonitor", "podmonitors"}, {"PrometheusRule", "prometheusrules"}} {
		installMonitoringCRD(ctx, t, c, k[0], k[1])
	}

	cases := []struct {
		name   string
		ns     string
		values string
	}{
		{"defaults", "chart-defaults", ""},
		{"all-features", "chart-all-features", chartDir + "/ci/all-features-values.yaml"},
		{"existing-configmap", "chart-existing-cm", chartDir + "/ci/existing-configmap-values.yaml"},
		{"namespaced", "chart-namespaced", chartDir + "/ci/namespaced-values.yaml"},
		{"external-rbac", "chart-external-rbac", chartDir + "/ci/external-rbac-values.yaml"},
		{"kustomize", namespace, ""},
		{"kustomize-monitoring", namespace, ""},
	}
	// The namespaces namespaced-values.yaml watches.
	for _, ns := range []string{"printing", "warehouse"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("idempotent", func(t *testing.T) { applyTwice(ctx, t, c) })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Enforce the restricted Pod Security Standard, and warn, so
			// that both Pods (rejected) and Deployments (warned) are checked.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tc.ns, Labels: map[string]string{
				"pod-security.kubernetes.io/enforce": "restricted",
				"pod-security.kubernetes.io/warn":    "restricted",
			}}}
			if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			var objs []*unstructured.Unstructured
			switch tc.name {
			case "kustomize":
				objs = renderKustomize(t, "default")
			case "kustomize-monitoring":
				objs = renderKustomize(t, "prometheus")
				if len(objs) != 4 {
					t.Errorf("config/prometheus: %d objects, want ServiceMonitor, PodMonitor, PrometheusRule and the dashboard ConfigMap", len(objs))
				}
			default:
				var flags []string
				if tc.values != "" {
					flags = []string{"-f", tc.values}
				}
				objs = renderChart(t, "licenseha", tc.ns, flags...)
			}
			w.take()
			for _, u := range objs {
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.DryRunAll, client.FieldOwner("licenseha-test"), client.ForceOwnership)
				if err != nil {
					t.Errorf("server-side dry-run apply of %s: %v", key(u), err)
				}
				if u.GetKind() == "Deployment" {
					dryRunPod(ctx, t, c, u)
				}
			}
			if msgs := w.take(); len(msgs) > 0 {
				t.Errorf("API server warnings:\n%s", strings.Join(msgs, "\n"))
			}
		})
	}
}

// dryRunPod creates the Deployment's pod template as a Pod with dry-run in a
// namespace that enforces the restricted Pod Security Standard.
func dryRunPod(ctx context.Context, t *testing.T, c client.Client, u *unstructured.Unstructured) {
	t.Helper()
	var d struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: d.Spec.Template.ObjectMeta,
		Spec:       d.Spec.Template.Spec,
	}
	pod.Namespace, pod.Name = u.GetNamespace(), u.GetName()+"-dry-run"
	if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Errorf("the operator pod is refused in a namespace enforcing the restricted Pod Security Standard: %v", err)
	}
}

// applyTwice really applies the chart (non-default values, so every object
// is there) with server-side apply, as Flux and Argo CD do, then applies the
// same manifests again: nothing may change. A server-defaulted or
// normalised field that the manifests set differently would show up here as
// a new resourceVersion (or, for CRDs, whose status the API server updates
// on its own, a new generation).
func applyTwice(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	const ns = "chart-idempotent"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	objs := renderChart(t, "idem", ns, "-f", chartDir+"/ci/all-features-values.yaml", "--set", "fullnameOverride=idem")
	apply := func() map[string]string {
		versions := map[string]string{}
		for _, u := range objs {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
				client.FieldOwner("gitops"), client.ForceOwnership); err != nil {
				t.Fatalf("server-side apply of %s: %v", key(u), err)
			}
		}
		for _, u := range objs {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(u.GroupVersionKind())
			if err := c.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
				t.Fatalf("reading %s back: %v", key(u), err)
			}
			v := got.GetResourceVersion()
			if u.GetKind() == "CustomResourceDefinition" {
				v = fmt.Sprint(got.GetGeneration())
			}
			versions[key(u)] = v
		}
		return versions
	}
	first := apply()
	second := apply()
	for k, v := range first {
		if second[k] != v {
			t.Errorf("%s changed when the same manifests were applied again (%s -> %s)", k, v, second[k])
		}
	}
}

// installMonitoringCRD creates a stand-in monitoring.coreos.com CRD and
// waits until an object of its kind can be dry-run applied.
func installMonitoringCRD(ctx context.Context, t *testing.T, c client.Client, kind, plural string) {
	t.Helper()
	crd := decode(t, []byte(monitoringCRD(kind, plural)))[0]
	if err := c.Create(ctx, crd); err != nil {
		t.Fatalf("creating the %s CRD: %v", kind, err)
	}
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": kind,
		"metadata": map[string]any{"name": "probe", "namespace": "default"},
	}}
	var err error
	for ctx.Err() == nil {
		if err = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(probe), client.DryRunAll, client.FieldOwner("licenseha-test")); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the %s CRD never became usable: %v", kind, err)
}
