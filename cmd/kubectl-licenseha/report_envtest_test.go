package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
)

// logCall is one request for a container's log the plugin made.
type logCall struct {
	Pod  string
	Opts corev1.PodLogOptions
}

// fakeLogs replaces openPodLogs (envtest has no kubelet) with fn, recording
// the calls.
func fakeLogs(t *testing.T, fn func(pod string, opts *corev1.PodLogOptions) (string, error)) func() []logCall {
	t.Helper()
	var mu sync.Mutex
	var calls []logCall
	old := openPodLogs
	openPodLogs = func(_ context.Context, _ *kube, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
		mu.Lock()
		calls = append(calls, logCall{Pod: pod, Opts: *opts})
		mu.Unlock()
		text, err := fn(pod, opts)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader(text)), nil
	}
	t.Cleanup(func() { openPodLogs = old })
	return func() []logCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]logCall(nil), calls...)
	}
}

// createMemberPods creates the pods of the named members as the operator
// builds them (labels, init container, volumes naming the group's Secrets).
func createMemberPods(t *testing.T, g builder.Group, members ...string) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	for _, name := range members {
		m, ok := g.Member(name)
		if !ok {
			t.Fatalf("no member %s", name)
		}
		p := builder.Pod(g, m, builder.Options{Image: "licenseha:test"})
		p.OwnerReferences = nil
		if err := kc.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

func TestEnvReport(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	tr := createTriad(t, ns, "plant-a")
	tr.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "plant-a-settings"}
	tr.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "plant-a-client-tokens", Key: "tokens"}}
	if err := kc.Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	for _, s := range plantedSecrets() {
		s := s.DeepCopy()
		s.Namespace = ns
		if s.Name == "plant-a-licenses" {
			s.Name = tr.Spec.LicenseSecretRef.Name
		}
		if err := kc.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// A Secret nobody references: its value may appear (and must not be
	// listed).
	if err := kc.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns}, StringData: map[string]string{"x": "not-the-groups-secret"}}); err != nil {
		t.Fatal(err)
	}
	bg := builder.FromTriad(tr)
	pods := createMemberPods(t, bg, "a", "b")
	pods["a"].Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", RestartCount: 2, Image: "licenseha:test", ImageID: "x"}}
	if err := kc.Status().Update(ctx, pods["a"]); err != nil {
		t.Fatal(err)
	}
	labels := builder.Labels(bg)
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: group.ConfigName("plant-a"), Labels: labels}, Data: map[string]string{"group.json": `{"kind":"LicenseTriad"}`}},
		{ObjectMeta: metav1.ObjectMeta{Name: group.StateName("plant-a"), Labels: labels, Annotations: map[string]string{"debug": "admin " + plantedAdminToken}},
			Data:       map[string]string{"revision": "41", "member": "a"},
			BinaryData: map[string][]byte{"settings.json.gz": gz(t, `{"allowedPrinters":["zebra-*"],"note":"`+plantedClientToken+`"}`)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-settings"}, Data: map[string]string{"settings.yaml": "allowedPrinters: [\"zebra-*\"]\n# token " + plantedClientToken + "\n"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unrelated-config"}, Data: map[string]string{"x": "y"}},
	} {
		cm.Namespace = ns
		if err := kc.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: group.LeaseName("plant-a"), Namespace: ns,
		Annotations: map[string]string{group.AnnotationLeaseEpoch: "4", group.AnnotationLeaseReason: "Takeover"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a")}}
	if err := kc.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ kind, name, reason string }{
		{"LicenseTriad", "plant-a", "TookOver"}, {"Pod", "plant-a-a", "BackOff"}, {"Pod", "other-pod", "Unrelated"},
	} {
		ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "ev-", Namespace: ns}, EventTime: metav1.NowMicro(),
			ReportingController: "test", ReportingInstance: "test", Action: "Test", Reason: e.reason, Type: corev1.EventTypeWarning,
			Note:      e.reason + " happened",
			Regarding: corev1.ObjectReference{Kind: e.kind, Name: e.name, Namespace: ns}}
		if err := kc.Create(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	calls := fakeLogs(t, func(pod string, o *corev1.PodLogOptions) (string, error) {
		switch {
		case pod == "plant-a-a" && o.Container == "server" && !o.Previous:
			return "agent: admin token " + plantedAdminToken + "\nserver: serving\n", nil
		case pod == "plant-a-a" && o.Container == "server" && o.Previous:
			return "server: crashed holding a seat of " + plantedClientToken + "\n", nil
		case pod == "plant-a-b" && o.Container == "server":
			return "", errors.New(`container "server" in pod "plant-a-b" is waiting to start: ContainerCreating`)
		}
		return "install-agent: copied the agent\n", nil
	})

	file := filepath.Join(t.TempDir(), "r.zip")
	out, err := kubectl(t, ns, "report", "plant-a", "-o", file)
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if !strings.Contains(out, "not collected: logs/plant-a-b/server.log") {
		t.Errorf("the command does not say what failed:\n%s", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	files := unzipReport(t, data)
	assertNoSecrets(t, files)
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, want := range []string{"README.md", "manifest.json", "group.yaml", "status.txt", "status.json", "events.yaml", "secrets.yaml",
		"pods/plant-a-a.yaml", "pods/plant-a-b.yaml",
		"configmaps/plant-a-config.yaml", "configmaps/plant-a-state.yaml", "configmaps/plant-a-state/settings.json", "configmaps/plant-a-settings.yaml",
		"leases/plant-a-active.yaml",
		"logs/plant-a-a/server.log", "logs/plant-a-a/server.previous.log", "logs/plant-a-a/install-agent.log", "logs/plant-a-b/install-agent.log"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the report lacks %s; it has %v", want, paths)
		}
	}
	for _, unwanted := range []string{"configmaps/unrelated-config.yaml", "logs/plant-a-b/server.log", "logs/plant-a-b/install-agent.previous.log"} {
		if _, ok := files[unwanted]; ok {
			t.Errorf("the report has %s", unwanted)
		}
	}
	if g := files["group.yaml"]; !strings.Contains(g, "kind: LicenseTriad") || !strings.Contains(g, "activeMember: a") || strings.Contains(g, "managedFields") {
		t.Errorf("group.yaml:\n%s", g)
	}
	if s := files["status.txt"]; !strings.Contains(s, "LicenseTriad "+ns+"/plant-a") || !strings.Contains(s, "TookOver") {
		t.Errorf("status.txt:\n%s", files["status.txt"])
	}
	ev := files["events.yaml"]
	if !strings.Contains(ev, "TookOver happened") || !strings.Contains(ev, "BackOff happened") || strings.Contains(ev, "Unrelated") {
		t.Errorf("events.yaml should hold the group's and its pods' events only:\n%s", ev)
	}
	if l := files["leases/plant-a-active.yaml"]; !strings.Contains(l, "holderIdentity: a") || !strings.Contains(l, "Takeover") {
		t.Errorf("lease:\n%s", l)
	}
	if s := files["configmaps/plant-a-state.yaml"]; !strings.Contains(s, "debug: admin [REDACTED]") || !strings.Contains(s, "settings.json.gz") {
		t.Errorf("state ConfigMap:\n%s", s)
	}
	if s := files["configmaps/plant-a-state/settings.json"]; !strings.Contains(s, "zebra-*") || !strings.Contains(s, "[REDACTED]") {
		t.Errorf("decompressed settings:\n%s", s)
	}
	if s := files["logs/plant-a-a/server.log"]; s != "agent: admin token [REDACTED]\nserver: serving\n" {
		t.Errorf("log of a: %q", s)
	}
	sec := files["secrets.yaml"]
	for _, want := range []string{"name: plant-a-licenses", "name: plant-a-admin", "name: plant-a-client-tokens", "key: tokens",
		"LicenseTriad.spec.clientAccess.tokenSecretRef", "name: plant-a-client-tls", "key: tls.key"} {
		if !strings.Contains(sec, want) {
			t.Errorf("secrets.yaml lacks %q:\n%s", want, sec)
		}
	}
	if strings.Contains(sec, "unrelated") {
		t.Errorf("secrets.yaml lists a Secret the group does not reference:\n%s", sec)
	}
	var m reportManifest
	if err := json.Unmarshal([]byte(files["manifest.json"]), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Failed) != 1 || m.Failed[0].What != "logs/plant-a-b/server.log" || !strings.Contains(m.Failed[0].Reason, "ContainerCreating") {
		t.Errorf("failed = %+v, want only the log of b's server", m.Failed)
	}
	if !strings.Contains(files["README.md"], "logs/plant-a-b/server.log: container \"server\" in pod \"plant-a-b\" is waiting to start") {
		t.Errorf("README:\n%s", files["README.md"])
	}
	// Previous logs are asked for only where a container restarted.
	for _, c := range calls() {
		if c.Opts.Previous && (c.Pod != "plant-a-a" || c.Opts.Container != "server") {
			t.Errorf("asked for the previous log of %s/%s, which never restarted", c.Pod, c.Opts.Container)
		}
	}

	// Without read access to a Secret, its values cannot be redacted: the
	// logs and ConfigMaps are left out and the rest is still written.
	if err := kc.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	viewer := viewerKubeconfig(t, ns)
	file2 := filepath.Join(t.TempDir(), "r2.zip")
	out, err = kubectlAs(t, viewer, ns, "report", "plant-a", "-o", file2)
	if err != nil {
		t.Fatalf("report without Secret access: %v\n%s", err, out)
	}
	data, _ = os.ReadFile(file2)
	files = unzipReport(t, data)
	assertNoSecrets(t, files)
	for p := range files {
		if strings.HasPrefix(p, "logs/") || strings.HasPrefix(p, "configmaps/") {
			t.Errorf("%s collected although Secrets could not be read", p)
		}
	}
	if _, ok := files["pods/plant-a-a.yaml"]; !ok {
		t.Errorf("the rest of the report is missing: %v", keys(files))
	}
	if !strings.Contains(files["README.md"], "could not be read, so their values could not be redacted") {
		t.Errorf("README does not warn:\n%s", files["README.md"])
	}
}

func TestEnvLogs(t *testing.T) {
	startEnv(t)
	ns := newNS(t)
	tr := createTriad(t, ns, "plant-a")
	createMemberPods(t, builder.FromTriad(tr), "a", "b")
	pair := createPair(t, ns, "plant-b")
	createMemberPods(t, builder.FromPair(pair), "main")
	// A pod of another group with the same member name must not be picked.
	createMemberPods(t, builder.FromTriad(&licensehav1.LicenseTriad{ObjectMeta: metav1.ObjectMeta{Name: "plant-z", Namespace: ns},
		Spec: licensehav1.LicenseTriadSpec{LicenseSecretRef: licensehav1.LocalObjectReference{Name: "z"},
			Members: []licensehav1.TriadMember{{Name: "a", Role: licensehav1.RolePrimary}}}}), "a")

	calls := fakeLogs(t, func(pod string, o *corev1.PodLogOptions) (string, error) {
		return fmt.Sprintf("%s/%s line 1\n%s/%s line 2", pod, o.Container, pod, o.Container), nil
	})
	out, err := kubectl(t, ns, "logs", "plant-a")
	if err != nil {
		t.Fatalf("logs: %v\n%s", err, out)
	}
	for _, want := range []string{"[a] plant-a-a/server line 1\n[a] plant-a-a/server line 2\n", "[b] plant-a-b/server line 1\n", "member c of " + ns + "/plant-a has no pod"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs output lacks %q:\n%s", want, out)
		}
	}
	got := calls()
	if len(got) != 2 || got[0].Pod != "plant-a-a" || got[1].Pod != "plant-a-b" || got[0].Opts.Container != "server" ||
		got[0].Opts.Follow || got[0].Opts.Previous || got[0].Opts.TailLines != nil {
		t.Fatalf("log requests %+v, want the server containers of a and b with default options", got)
	}

	out, err = kubectl(t, ns, "logs", "plant-a", "b", "-c", "install-agent", "--tail", "5", "--since", "2m", "--previous", "--timestamps")
	if err != nil {
		t.Fatalf("logs b: %v\n%s", err, out)
	}
	if out != "plant-a-b/install-agent line 1\nplant-a-b/install-agent line 2\n" {
		t.Errorf("one container's log must come without prefix: %q", out)
	}
	c := calls()[2]
	if c.Pod != "plant-a-b" || c.Opts.Container != "install-agent" || *c.Opts.TailLines != 5 || *c.Opts.SinceSeconds != 120 || !c.Opts.Previous || !c.Opts.Timestamps {
		t.Errorf("request %+v", c)
	}

	out, err = kubectl(t, ns, "logs", "plant-b", "--all-containers", "-f")
	if err != nil {
		t.Fatalf("logs of the pair: %v\n%s", err, out)
	}
	for _, want := range []string{"[main/install-agent] plant-b-main/install-agent line 1\n", "[main/server] plant-b-main/server line 2\n", "server backup of " + ns + "/plant-b has no pod"} {
		if !strings.Contains(strings.ReplaceAll(out, "member backup", "server backup"), want) {
			t.Errorf("pair logs lack %q:\n%s", want, out)
		}
	}
	for _, c := range calls()[3:] {
		if !c.Opts.Follow || !strings.HasPrefix(c.Pod, "plant-b-") {
			t.Errorf("follow request %+v", c)
		}
	}

	if _, err := kubectl(t, ns, "logs", "plant-a", "b", "-c", "nope"); err == nil || !strings.Contains(err.Error(), "install-agent, server") {
		t.Errorf("unknown container: %v", err)
	}
	if _, err := kubectl(t, ns, "logs", "plant-a", "z"); err == nil || !strings.Contains(err.Error(), "a, b, c") {
		t.Errorf("unknown member: %v", err)
	}
	if _, err := kubectl(t, ns, "logs", "plant-a", "c"); err == nil || !strings.Contains(err.Error(), "has no pod") {
		t.Errorf("member without pod: %v", err)
	}
	if _, err := kubectl(t, ns, "logs", "nope"); err == nil || !strings.Contains(err.Error(), "kubectl get licenseha -A") {
		t.Errorf("unknown group: %v", err)
	}
	out, err = kubectl(t, ns, "__complete", "logs", "plant-b", "")
	if err != nil || !strings.Contains(out, "main\n") || !strings.Contains(out, "backup\n") {
		t.Errorf("completion of members: %v\n%s", err, out)
	}
}

func TestEnvStatusOutputFormats(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	tr := createTriad(t, ns, "plant-a")
	pods := createMemberPods(t, builder.FromTriad(tr), "a")
	pods["a"].Spec.NodeName = ""
	pods["a"].Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", RestartCount: 3, Image: "licenseha:test", ImageID: "x"}}
	if err := kc.Status().Update(ctx, pods["a"]); err != nil {
		t.Fatal(err)
	}

	out, err := kubectl(t, ns, "status", "plant-a", "-o", "jsonpath={.active} {.quorum} {.members[*].name}")
	if err != nil || out != "a 3/3 a b c" {
		t.Errorf("-o jsonpath = %q, %v", out, err)
	}
	out, err = kubectl(t, ns, "status", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil || out != "plant-a" {
		t.Errorf("-o jsonpath on the list = %q, %v", out, err)
	}
	out, err = kubectl(t, ns, "status", "plant-a", "-o", "go-template={{.phase}}/{{.ready}}")
	if err != nil || out != "Active/True" {
		t.Errorf("-o go-template = %q, %v", out, err)
	}
	out, err = kubectl(t, ns, "status", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "licensetriad.licenseha.io/plant-a" {
		t.Errorf("-o name = %q, %v", out, err)
	}
	out, err = kubectl(t, ns, "status", "-o", "custom-columns=NAME:.name,ACTIVE:.active,MISSING:.nope")
	if err != nil || !strings.Contains(out, "NAME      ACTIVE   MISSING\nplant-a   a        <none>") {
		t.Errorf("-o custom-columns = %q, %v", out, err)
	}
	out, err = kubectl(t, ns, "status", "plant-a", "-o", "json")
	var g GroupStatus
	if err != nil || json.Unmarshal([]byte(out), &g) != nil || g.Active != "a" || len(g.Members) != 3 || g.Kind != "LicenseTriad" {
		t.Errorf("-o json = %v\n%s", err, out)
	}

	normal, err := kubectl(t, ns, "status", "plant-a")
	if err != nil {
		t.Fatal(err)
	}
	wide, err := kubectl(t, ns, "status", "plant-a", "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(normal, "RESTARTS") || !strings.Contains(normal, "MEMBER  ROLE       STATE    READY  POD        POD IP    ACTIVE\n") {
		t.Errorf("default output changed:\n%s", normal)
	}
	if !strings.Contains(wide, "ACTIVE  SETTINGS  HEARTBEAT  NODE  RESTARTS") || !strings.Contains(wide, "plant-a-a  10.0.0.1  *       -         -          -     3") {
		t.Errorf("-o wide lacks the pod's restarts:\n%s", wide)
	}
	if _, err := kubectl(t, ns, "status", "-o", "bogus"); err == nil || !strings.Contains(err.Error(), "wide") || !strings.Contains(err.Error(), "jsonpath") {
		t.Errorf("-o bogus = %v", err)
	}
}

func TestEnvUsageOutputFormats(t *testing.T) {
	startEnv(t)
	ns := newNS(t)
	createPairWithState(t, ns, map[string]string{"revision": "1", "member": "main"}, map[string][]byte{
		"usage.json.gz": gz(t, `[{"license":"LIC-A","printer":"zebra-1","period":"2026-11","checkouts":2,"jobs":3,"labels":40}]`)})
	out, err := kubectl(t, ns, "usage", "plant-b", "--by", "license", "-o", "jsonpath={.items[*].license}={.items[*].labels}")
	if err != nil || out != "LIC-A=40" {
		t.Errorf("usage -o jsonpath = %q, %v", out, err)
	}
	out, err = kubectl(t, ns, "usage", "plant-b", "--by", "license", "-o", "json")
	var rows []UsageRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].Labels != 40 {
		t.Errorf("usage -o json must stay an array of rows: %v\n%s", err, out)
	}
	out, err = kubectl(t, ns, "usage", "plant-b", "--by", "license")
	if err != nil || !strings.HasPrefix(out, "LICENSE  CHECKOUTS  JOBS  LABELS  LASTUSE\nLIC-A    2          3     40      -\n") {
		t.Errorf("usage table = %q, %v", out, err)
	}
}

// TestEnvWritesRetryOnConflict makes a concurrent change between each
// command's read and its write: the write must be retried on the fresh
// object, keep the other writer's change, and check again what it checked.
func TestEnvWritesRetryOnConflict(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	createTriad(t, ns, "plant-a")
	defer func() { beforeWrite = nil }()

	// concurrently runs change on the object once, the first time the
	// command is about to write it.
	concurrently := func(change func(obj client.Object)) *int {
		n := 0
		beforeWrite = func(obj client.Object) {
			n++
			if n == 1 {
				change(obj)
			}
		}
		return &n
	}
	annotate := func(key, value string) func(client.Object) {
		return func(obj client.Object) {
			var tr licensehav1.LicenseTriad
			if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a"}, &tr); err != nil {
				t.Error(err)
				return
			}
			if tr.Annotations == nil {
				tr.Annotations = map[string]string{}
			}
			tr.Annotations[key] = value
			if err := kc.Update(ctx, &tr); err != nil {
				t.Error(err)
			}
		}
	}

	writes := concurrently(annotate("example.com/concurrent", "kept"))
	out, err := kubectl(t, ns, "switchover", "plant-a", "--to", "b", "--wait=false")
	if err != nil {
		t.Fatalf("switchover with a concurrent update: %v\n%s", err, out)
	}
	var tr licensehav1.LicenseTriad
	if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a"}, &tr); err != nil {
		t.Fatal(err)
	}
	if *writes != 2 || tr.Spec.Members[1].Role != licensehav1.RolePrimary || tr.Annotations["example.com/concurrent"] != "kept" {
		t.Fatalf("switchover: %d write attempts, roles %+v, annotations %v; want 2 attempts, b Primary and the concurrent annotation kept",
			*writes, tr.Spec.Members, tr.Annotations)
	}

	// settings set: a concurrent edit of the ConfigMap is kept.
	tr.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "plant-a-settings"}
	if err := kc.Update(ctx, &tr); err != nil {
		t.Fatal(err)
	}
	if err := kc.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-settings", Namespace: ns},
		Data: map[string]string{"settings.yaml": "allowedPrinters: [\"old-*\"]\n"}}); err != nil {
		t.Fatal(err)
	}
	writes = concurrently(func(client.Object) {
		var cm corev1.ConfigMap
		_ = kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a-settings"}, &cm)
		cm.Data["README"] = "edited meanwhile"
		if err := kc.Update(ctx, &cm); err != nil {
			t.Error(err)
		}
	})
	doc := filepath.Join(t.TempDir(), "s.yaml")
	_ = os.WriteFile(doc, []byte("allowedPrinters: [\"new-*\"]\n"), 0o600)
	if out, err := kubectl(t, ns, "settings", "set", "plant-a", "-f", doc); err != nil {
		t.Fatalf("settings set with a concurrent update: %v\n%s", err, out)
	}
	var cm corev1.ConfigMap
	_ = kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a-settings"}, &cm)
	if *writes != 2 || !strings.Contains(cm.Data["settings.yaml"], "new-*") || cm.Data["README"] != "edited meanwhile" {
		t.Fatalf("settings set: %d attempts, data %v", *writes, cm.Data)
	}

	// replace-member: someone asks to replace another member meanwhile;
	// the retry sees it and refuses rather than overwriting it.
	writes = concurrently(annotate(licensehav1.AnnotationReplaceMember, "c"))
	_, err = kubectl(t, ns, "replace-member", "plant-a", "b", "--wait=false")
	if err == nil || !strings.Contains(err.Error(), `replacement of member "c" is still pending`) {
		t.Fatalf("replace-member with a concurrent request = %v, want a refusal naming c", err)
	}
	_ = kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a"}, &tr)
	if tr.Annotations[licensehav1.AnnotationReplaceMember] != "c" || *writes != 1 {
		t.Fatalf("the concurrent request was overwritten: %v (%d attempts)", tr.Annotations, *writes)
	}
}

// viewerKubeconfig is a kubeconfig of a user who may read the group, its
// pods, logs, ConfigMaps, Events and Leases in ns, but no Secret.
func viewerKubeconfig(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	name := "viewer-" + ns
	file, err := testEnv.Kubeconfig(envtest.User{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"", "events.k8s.io", "coordination.k8s.io", "licenseha.io"},
			Resources: []string{"pods", "pods/log", "configmaps", "events", "leases", "licensetriads", "licensebackuppairs"},
			Verbs:     []string{"get", "list"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "viewer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: name}}}
	if err := kc.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := kc.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC cache takes a moment to see the binding.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := kubectlAs(t, file, ns, "status", "--events", "0"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	return file
}
