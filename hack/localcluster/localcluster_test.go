package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"$(A)-$(B)":   "1-two",
		"$(MISSING)":  "$(MISSING)",
		"$$(A)":       "$(A)",
		"cost: $5":    "cost: $5",
		"open $(A":    "open $(A",
		"trailing $":  "trailing $",
		"$(A)$(A)x$$": "11x$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsProjectImage(t *testing.T) {
	for image, want := range map[string]bool{
		"ghcr.io/licenseha/licenseha:dev":            true,
		"licenseha/licenseha":                        true,
		"localhost:5000/licenseha/licenseha:v1":      true,
		"ghcr.io/licenseha/licenseha@sha256:abcdef0": true,
		"ghcr.io/other/licenseha:dev":                false,
		"nginx:latest":                               false,
		"ghcr.io/licenseha/licenseha-server:dev":     false,
	} {
		if got := isProjectImage(image); got != want {
			t.Errorf("isProjectImage(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	must(os.Symlink("/run", filepath.Join(root, "var", "run")))   // absolute, as on Debian
	must(os.Symlink("../run", filepath.Join(root, "var", "rel"))) // relative
	for in, want := range map[string]string{
		"/var/run/secrets/token": "/run/secrets/token",
		"/var/rel/x":             "/run/x",
		"/data":                  "/data",
		"/../../etc":             "/etc",
	} {
		got, err := resolveInRoot(root, in)
		must(err)
		if got != filepath.Join(root, want) {
			t.Errorf("resolveInRoot(%q) = %q, want %q", in, got, filepath.Join(root, want))
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(data)
	}
	changed, err := writeAtomic(dir, payload{"a": {data: []byte("1"), mode: 0o644}, "sub/b": {data: []byte("2"), mode: 0o600}}, -1)
	if err != nil || !changed {
		t.Fatalf("first write: %v, %v", changed, err)
	}
	if read("a") != "1" || read("sub/b") != "2" {
		t.Fatalf("files: %q %q", read("a"), read("sub/b"))
	}
	if changed, _ := writeAtomic(dir, payload{"a": {data: []byte("1"), mode: 0o644}, "sub/b": {data: []byte("2"), mode: 0o600}}, -1); changed {
		t.Errorf("an identical payload was rewritten")
	}
	if _, err := writeAtomic(dir, payload{"a": {data: []byte("new"), mode: 0o644}}, -1); err != nil {
		t.Fatal(err)
	}
	if read("a") != "new" {
		t.Errorf("a = %q after the update", read("a"))
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Errorf("the removed key's link is still there: %v", err)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "..2*"))
	if len(entries) != 1 {
		t.Errorf("data directories after the update: %v", entries)
	}
}

func TestSplitRuns(t *testing.T) {
	log := []byte(runStartMarker + "[\"a\"]\none\ntwo\n" + runStartMarker + "[\"a\"]\nthree\n")
	runs := splitRuns(log)
	if len(runs) != 2 || string(runs[0]) != "one\ntwo\n" || string(runs[1]) != "three\n" {
		t.Fatalf("runs = %q", runs)
	}
	if got := string(lastLines(runs[0], 1)); got != "two\n" {
		t.Errorf("lastLines = %q", got)
	}
}

func TestServiceRules(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	headless := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "peers"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.244.0.2"}},
			{Addresses: []string{"10.244.0.4"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}
	got := serviceRules([]*corev1.Service{svc, headless}, []*discoveryv1.EndpointSlice{slice})
	match := `-d 10.96.0.10/32 -p tcp --dport 80 -m comment --comment "ns/web:http"`
	want := natRules{
		dnat: []string{
			match + " -m statistic --mode random --probability 0.50000 -j DNAT --to-destination 10.244.0.2:8080",
			match + " -j DNAT --to-destination 10.244.0.3:8080",
		},
		hairpin: []string{
			"-s 10.244.0.2/32 -d 10.244.0.2/32 -m conntrack --ctstate DNAT -j MASQUERADE",
			"-s 10.244.0.3/32 -d 10.244.0.3/32 -m conntrack --ctstate DNAT -j MASQUERADE",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("serviceRules =\n%q\nwant\n%q", got, want)
	}
}

func TestUnschedulable(t *testing.T) {
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue}
	for name, tc := range map[string]struct {
		node corev1.Node
		want bool
	}{
		"ready":              {corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready}}}, true},
		"no status yet":      {corev1.Node{}, false},
		"not ready":          {corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}}, false},
		"not-ready taint":    {corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}}}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready}}}, false},
		"prefer-no-schedule": {corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}}}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready}}}, true},
		"cordoned":           {corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready}}}, false},
	} {
		if got := controlplane.Unschedulable(&tc.node) == ""; got != tc.want {
			t.Errorf("%s: schedulable = %v, want %v (%q)", name, got, tc.want, controlplane.Unschedulable(&tc.node))
		}
	}
}
