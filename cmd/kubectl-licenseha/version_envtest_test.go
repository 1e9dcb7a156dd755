package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// operatorDeployment is an operator Deployment as the chart or config/default
// make it, with the given labels and image.
func operatorDeployment(t *testing.T, ns, name, image string, extra map[string]string) {
	t.Helper()
	sel := map[string]string{"app.kubernetes.io/name": "licenseha", "app.kubernetes.io/component": "operator"}
	lbl := map[string]string{}
	for k, v := range sel {
		lbl[k] = v
	}
	for k, v := range extra {
		lbl[k] = v
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: image}}},
			},
		},
	}
	if err := kc.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func versionJSON(t *testing.T, kubeconfigFile string, args ...string) VersionInfo {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfigFile, "version", "-o", "json"}, args...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("version %v: %v\n%s", args, err, errOut.String())
	}
	var info VersionInfo
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return info
}

func TestEnvVersion(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	kust, chart := newNS(t), newNS(t)
	// config/default: tagged image, the label of the dev manifests.
	operatorDeployment(t, kust, "licenseha-operator", "ghcr.io/licenseha/licenseha:v0.2.0", map[string]string{versionLabel: "dev"})
	// The chart with the image pinned by digest: the label tells.
	operatorDeployment(t, chart, "prod-licenseha-operator", "registry.example.com/licenseha@sha256:"+strings.Repeat("a", 64),
		map[string]string{versionLabel: "v0.1.9", "app.kubernetes.io/instance": "prod"})

	info := versionJSON(t, kubeconfig)
	found := map[string]OperatorVersion{}
	for _, op := range info.Operators {
		found[op.Namespace+"/"+op.Name] = op
	}
	if op := found[kust+"/licenseha-operator"]; op.Version != "v0.2.0" || op.Image != "ghcr.io/licenseha/licenseha:v0.2.0" {
		t.Errorf("kustomize operator = %+v; want version v0.2.0 from its image tag", op)
	}
	if op := found[chart+"/prod-licenseha-operator"]; op.Version != "v0.1.9" {
		t.Errorf("chart operator by digest = %+v; want version v0.1.9 from its label", op)
	}
	if info.OperatorError != "" {
		t.Errorf("operatorError = %q with operators found", info.OperatorError)
	}

	info = versionJSON(t, kubeconfig, "--operator-namespace", kust)
	if len(info.Operators) != 1 || info.Operators[0].Namespace != kust {
		t.Errorf("--operator-namespace %s = %+v; want its operator only", kust, info.Operators)
	}
	empty := newNS(t)
	info = versionJSON(t, kubeconfig, "--operator-namespace", empty)
	if len(info.Operators) != 0 || !strings.Contains(info.OperatorError, "no Deployment labelled") {
		t.Errorf("namespace without operator = %+v; want the reason", info)
	}

	// A user who may list Deployments only in licenseha-system: the
	// cluster-wide list is forbidden, so the plugin looks there.
	sys := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: defaultOperatorNamespace}}
	if err := kc.Create(ctx, sys); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	operatorDeployment(t, defaultOperatorNamespace, "licenseha-operator", "ghcr.io/licenseha/licenseha:v0.3.0", nil)
	viewerConfig, err := testEnv.Kubeconfig(envtest.User{Name: "version-viewer"})
	if err != nil {
		t.Fatal(err)
	}
	if info := versionJSON(t, viewerConfig); len(info.Operators) != 0 || !strings.Contains(info.OperatorError, "not allowed to list Deployments") {
		t.Errorf("user without any permission = %+v; want the refusal as the reason", info)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: defaultOperatorNamespace, Name: "version-viewer"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"list"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: defaultOperatorNamespace, Name: "version-viewer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "version-viewer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: "version-viewer"}}}
	if err := kc.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := kc.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC cache takes a moment to see the binding.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if info = versionJSON(t, viewerConfig); len(info.Operators) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(info.Operators) != 1 || info.Operators[0].Namespace != defaultOperatorNamespace || info.Operators[0].Version != "v0.3.0" {
		t.Errorf("user who may list in %s only = %+v; want the operator there", defaultOperatorNamespace, info)
	}

	out, err := kubectl(t, kust, "version")
	if err != nil || !strings.Contains(out, "Operator: v0.2.0 (deployment "+kust+"/licenseha-operator, image ghcr.io/licenseha/licenseha:v0.2.0)") {
		t.Errorf("version = %v\n%s", err, out)
	}
}
