package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/testenv"
	"github.com/licenseha/licenseha/internal/testfixtures"
	"github.com/licenseha/licenseha/pkg/server"
)

// The envtest tests run the commands against a real kube-apiserver; no
// operator runs, the tests write the status the operator would.
var (
	envOnce    sync.Once
	envErr     error
	testEnv    *testenv.Env
	kubeconfig string // the admin's
	kc         client.Client
)

func TestMain(m *testing.M) {
	pollInterval = 50 * time.Millisecond
	code := m.Run()
	if testEnv != nil {
		_ = testEnv.Stop()
	}
	os.Exit(code)
}

// startEnv starts the API server once for all envtest tests.
func startEnv(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("envtest: skipped with -short")
	}
	envOnce.Do(func() {
		if testEnv, envErr = testenv.Start(testenv.Options{}); envErr != nil {
			return
		}
		kc = testEnv.Client
		kubeconfig, envErr = testEnv.Kubeconfig(envtest.User{Name: "admin", Groups: []string{"system:masters"}})
	})
	if envErr != nil {
		t.Fatalf("starting envtest: %v", envErr)
	}
}

// kubectl runs the plugin against the test API server in namespace ns, as
// the admin.
func kubectl(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	return kubectlAs(t, kubeconfig, ns, args...)
}

// kubectlAs runs the plugin with another kubeconfig.
func kubectlAs(t *testing.T, kubeconfigFile, ns string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfigFile, "-n", ns}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String() + errOut.String(), err
}

func newNS(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "klh-"}}
	if err := kc.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createTriad(t *testing.T, ns, name string) *licensehav1.LicenseTriad {
	t.Helper()
	ctx := context.Background()
	tr := testfixtures.Triad(ns, name)
	tr.Spec.Members[0].Placement = licensehav1.Placement{NodeSelector: map[string]string{"zone": "1"}}
	if err := kc.Create(ctx, tr); err != nil {
		t.Fatal(err)
	}
	tr.Status = licensehav1.LicenseTriadStatus{
		Phase: licensehav1.TriadActive, ActiveMember: "a", MembersInQuorum: 3, Quorum: "3/3",
		Members: []licensehav1.TriadMemberStatus{
			{Name: "a", Role: licensehav1.RolePrimary, Pod: name + "-a", PodIP: "10.0.0.1", State: licensehav1.MemberActive, Ready: true},
			{Name: "b", Role: licensehav1.RoleSecondary, Pod: name + "-b", PodIP: "10.0.0.2", State: licensehav1.MemberStandby, Ready: true},
			{Name: "c", Role: licensehav1.RoleTertiary, Pod: name + "-c", PodIP: "10.0.0.3", State: licensehav1.MemberWitness, Ready: true},
		},
		Licenses: []licensehav1.LicenseStatus{{ID: "LIC-0001", Product: "LabelDesigner", Edition: "Enterprise", Printers: 50, Valid: true}},
		Sync:     licensehav1.SyncStatus{Revision: 41, Synchronized: true},
		GroupStatus: licensehav1.GroupStatus{ObservedGeneration: tr.Generation,
			Conditions: []metav1.Condition{{Type: licensehav1.ConditionReady, Status: metav1.ConditionTrue, Reason: licensehav1.ReasonServing,
				Message: "member a serves", LastTransitionTime: metav1.Now()}}},
	}
	if err := kc.Status().Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// createPair creates testfixtures' pair (no status: no operator runs).
func createPair(t *testing.T, ns, name string) *licensehav1.LicenseBackupPair {
	t.Helper()
	pair := testfixtures.Pair(ns, name)
	if err := kc.Create(context.Background(), pair); err != nil {
		t.Fatal(err)
	}
	return pair
}

// playOperator runs f every poll until it returns true or the test ends.
func playOperator(t *testing.T, f func(ctx context.Context) bool) (done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for ctx.Err() == nil {
			if f(ctx) {
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-finished }
}

func TestEnvStatus(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	tr := createTriad(t, ns, "plant-a")
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "plant-a-", Namespace: ns},
		EventTime:  metav1.NowMicro(), ReportingController: "licenseha.io/operator", ReportingInstance: "test",
		Action: "Failover", Reason: "TookOver", Type: corev1.EventTypeWarning, Note: "member a took over",
		Regarding: corev1.ObjectReference{APIVersion: "licenseha.io/v1alpha1", Kind: "LicenseTriad", Namespace: ns, Name: "plant-a", UID: tr.UID},
	}
	if err := kc.Create(ctx, ev); err != nil {
		t.Fatal(err)
	}
	pair := testfixtures.Pair(ns, "plant-b")
	pair.Spec.Mode = licensehav1.ActivePassive
	if err := kc.Create(ctx, pair); err != nil {
		t.Fatal(err)
	}

	out, err := kubectl(t, ns, "status", "plant-a")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"LicenseTriad " + ns + "/plant-a", "Active member:  a", "Quorum:         3/3",
		"revision 41, synchronized: yes", "10.0.0.2", "LIC-0001", "member a serves", "TookOver", "member a took over"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	out, err = kubectl(t, ns, "status", "-o", "json")
	if err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	var list struct{ Items []GroupStatus }
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 2 {
		t.Fatalf("status -o json = %v\n%s", err, out)
	}
	if p := list.Items[1]; p.Kind != "LicenseBackupPair" || p.Mode != "ActivePassive" || p.Roles != "Fixed" {
		t.Errorf("pair = %+v", p)
	}
	if len(list.Items[0].Events) != 1 || list.Items[0].Events[0].Reason != "TookOver" {
		t.Errorf("triad events = %+v", list.Items[0].Events)
	}

	out, err = kubectl(t, ns, "status", "-A", "-o", "yaml")
	if err != nil || !strings.Contains(out, "name: plant-b") {
		t.Fatalf("status -A -o yaml: %v\n%s", err, out)
	}

	out, err = kubectl(t, ns, "__complete", "status", "")
	if err != nil || !strings.Contains(out, "plant-a\n") || !strings.Contains(out, "plant-b\n") {
		t.Errorf("completion of group names = %v\n%s", err, out)
	}
	out, err = kubectl(t, ns, "__complete", "switchover", "plant-a", "--to", "")
	if err != nil || !strings.Contains(out, "b\tSecondary") || !strings.Contains(out, "c\tTertiary") {
		t.Errorf("completion of members = %v\n%s", err, out)
	}
	if out, err = kubectl(t, ns, "completion", "bash"); err != nil || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash = %v", err)
	}

	_, err = kubectl(t, ns, "status", "nope")
	if err == nil || !strings.Contains(err.Error(), `namespace "`+ns+`"`) || !strings.Contains(err.Error(), "kubectl get licenseha -A") {
		t.Fatalf("status of a missing group = %v, want the namespace searched and a hint", err)
	}
	// A pair: switchover sets spec.preferredSide, stop and resume
	// spec.<side>.stopped (no operator runs here: --wait=false).
	if _, err = kubectl(t, ns, "switchover", "plant-b", "--to", "a"); err == nil || !strings.Contains(err.Error(), "main or backup") {
		t.Fatalf("switchover of a pair to a triad member's name = %v", err)
	}
	if _, err = kubectl(t, ns, "switchover", "plant-b", "--to", "backup", "--promote-tertiary"); err == nil || !strings.Contains(err.Error(), "applies to triads") {
		t.Fatalf("switchover of a pair with --promote-tertiary = %v", err)
	}
	if out, err := kubectl(t, ns, "switchover", "plant-b", "--to", "backup", "--wait=false"); err != nil || !strings.Contains(out, "spec.preferredSide set to backup") {
		t.Fatalf("switchover of a pair = %v\n%s", err, out)
	}
	if out, err := kubectl(t, ns, "stop", "plant-b", "--side", "main", "--wait=false"); err != nil || !strings.Contains(out, "spec.main.stopped set to true") {
		t.Fatalf("stop = %v\n%s", err, out)
	}
	p := &licensehav1.LicenseBackupPair{}
	if err := kc.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "plant-b"}, p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.PreferredSide != licensehav1.SideBackup || !p.Spec.Main.Stopped || p.Spec.Backup.Stopped {
		t.Fatalf("after switchover and stop: preferredSide %q, main stopped %v, backup stopped %v", p.Spec.PreferredSide, p.Spec.Main.Stopped, p.Spec.Backup.Stopped)
	}
	if _, err = kubectl(t, ns, "switchover", "plant-b", "--to", "main", "--wait=false"); err == nil || !strings.Contains(err.Error(), "resume it first") {
		t.Fatalf("switchover to a stopped side = %v", err)
	}
	if out, err := kubectl(t, ns, "resume", "plant-b", "--side", "main", "--wait=false"); err != nil || !strings.Contains(out, "spec.main.stopped set to false") {
		t.Fatalf("resume = %v\n%s", err, out)
	}
	if out, err := kubectl(t, ns, "resume", "plant-b", "--side", "main", "--wait=false"); err != nil || !strings.Contains(out, "already running") {
		t.Fatalf("resume of a running side = %v\n%s", err, out)
	}
}

func TestEnvSwitchover(t *testing.T) {
	startEnv(t)
	ns := newNS(t)
	createTriad(t, ns, "plant-a")

	out, err := kubectl(t, ns, "switchover", "plant-a", "--to", "c")
	if err == nil || !strings.Contains(err.Error(), "Tertiary") || !strings.Contains(err.Error(), "--promote-tertiary") {
		t.Fatalf("switchover to the tertiary = %v\n%s", err, out)
	}

	// The operator moves the active role once the roles changed.
	stop := playOperator(t, func(ctx context.Context) bool {
		var tr licensehav1.LicenseTriad
		if kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a"}, &tr) != nil {
			return false
		}
		for _, m := range tr.Spec.Members {
			if m.Name == "b" && m.Role == licensehav1.RolePrimary {
				tr.Status.ActiveMember, tr.Status.ObservedGeneration = "b", tr.Generation
				return kc.Status().Update(ctx, &tr) == nil
			}
		}
		return false
	})
	out, err = kubectl(t, ns, "switchover", "plant-a", "--to", "b", "--timeout", "20s")
	stop()
	if err != nil {
		t.Fatalf("switchover: %v\n%s", err, out)
	}
	for _, want := range []string{"a: Primary -> Secondary", "b: Secondary -> Primary", "active member: b"} {
		if !strings.Contains(out, want) {
			t.Errorf("switchover output lacks %q:\n%s", want, out)
		}
	}
	var tr licensehav1.LicenseTriad
	if err := kc.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "plant-a"}, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Spec.Members[0].NodeSelector["zone"] != "1" {
		t.Errorf("placement of member a lost by the patch: %+v", tr.Spec.Members[0])
	}

	out, err = kubectl(t, ns, "switchover", "plant-a", "--to", "c", "--promote-tertiary", "--wait=false")
	if err != nil || !strings.Contains(out, "c: Tertiary -> Primary") || !strings.Contains(out, "a: Secondary -> Tertiary") {
		t.Fatalf("promote the tertiary: %v\n%s", err, out)
	}

	// Nobody acts: the wait times out with a clear message.
	_, err = kubectl(t, ns, "switchover", "plant-a", "--to", "b", "--timeout", "300ms")
	if err == nil || !strings.Contains(err.Error(), "did not become active within") {
		t.Fatalf("switchover without an operator = %v, want a timeout", err)
	}
}

func testPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "licenseha:test"}}}}
}

func TestEnvReplaceMember(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	createTriad(t, ns, "plant-a")
	old := testPod(ns, "plant-a-c")
	if err := kc.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl(t, ns, "replace-member", "plant-a", "z"); err == nil || !strings.Contains(err.Error(), "no member") {
		t.Fatalf("replace an unknown member = %v", err)
	}

	// The operator deletes the pod and creates a fresh one that gets ready.
	stop := playOperator(t, func(ctx context.Context) bool {
		var tr licensehav1.LicenseTriad
		if kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-a"}, &tr) != nil || tr.Annotations[licensehav1.AnnotationReplaceMember] != "c" {
			return false
		}
		if err := kc.Delete(ctx, old, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
		fresh := testPod(ns, "plant-a-c")
		if err := kc.Create(ctx, fresh); err != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
		fresh.Status.Phase = corev1.PodRunning
		fresh.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		return kc.Status().Update(ctx, fresh) == nil
	})
	out, err := kubectl(t, ns, "replace-member", "plant-a", "c", "--timeout", "20s")
	stop()
	if err != nil {
		t.Fatalf("replace-member: %v\n%s", err, out)
	}
	for _, want := range []string{"licenseha.io/replace-member=c", "is ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("replace-member output lacks %q:\n%s", want, out)
		}
	}
	if _, err := kubectl(t, ns, "replace-member", "plant-a", "b", "--wait=false"); err == nil || !strings.Contains(err.Error(), "still pending") {
		t.Fatalf("a second replacement while one is pending = %v", err)
	}
}

func gz(t *testing.T, s string) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return buf.Bytes()
}

func createPairWithState(t *testing.T, ns string, data map[string]string, binary map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	createPair(t, ns, "plant-b")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plant-b-state", Namespace: ns}, Data: data, BinaryData: binary}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "plant-b-state", Namespace: ns}}
	if err := kc.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := kc.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
}

func TestEnvBackupExportImport(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	key, pub, file := filepath.Join(dir, "b.key"), filepath.Join(dir, "b.pub"), filepath.Join(dir, "bundle.json")
	if out, err := kubectl(t, "default", "backup", "keygen", "--private-key", key, "--public-key", pub); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}

	mainNS, backupNS := newNS(t), newNS(t)
	settings := `{"access":{"allowUsers":["ops-*"]},"allowedPrinters":["zebra-*"]}`
	createPairWithState(t, mainNS, map[string]string{"revision": "41", "epoch": "2", "member": "main",
		"takenAt": "2026-11-21T10:00:00Z", "formatVersion": "1"},
		map[string][]byte{"settings.json.gz": gz(t, settings), "usage.json.gz": gz(t, "[]")})
	createPairWithState(t, backupNS, nil, nil)

	if out, err := kubectl(t, mainNS, "backup", "export", "plant-b", "-o", file, "--signing-key", key); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if _, err := kubectl(t, backupNS, "backup", "import", "plant-b", "-f", file, "--trusted-key", pub); err == nil || !strings.Contains(err.Error(), "another pair") {
		t.Fatalf("import into another pair = %v, want a refusal", err)
	}
	out, err := kubectl(t, backupNS, "backup", "import", "plant-b", "-f", file, "--trusted-key", pub, "--allow-other-pair")
	if err != nil || !strings.Contains(out, "revision 41") {
		t.Fatalf("import: %v\n%s", err, out)
	}

	// The state objects now read like a publication of the main's agent.
	var cm corev1.ConfigMap
	var sec corev1.Secret
	_ = kc.Get(ctx, client.ObjectKey{Namespace: backupNS, Name: "plant-b-state"}, &cm)
	_ = kc.Get(ctx, client.ObjectKey{Namespace: backupNS, Name: "plant-b-state"}, &sec)
	if cm.Data["revision"] != "41" || string(sec.Data["revision"]) != "41" || cm.Data["epoch"] != "2" ||
		cm.Annotations[AnnotationImportedRevision] != "41" || cm.Annotations[AnnotationImportedFrom] != mainNS+"/plant-b" {
		t.Fatalf("state after import: data %v annotations %v secret revision %q", cm.Data, cm.Annotations, sec.Data["revision"])
	}
	raw, err := gunzip(cm.BinaryData["settings.json.gz"])
	var got server.Settings
	if err != nil || json.Unmarshal(raw, &got) != nil || len(got.AllowedPrinters) != 1 || got.Access.AllowUsers[0] != "ops-*" {
		t.Fatalf("imported settings = %s (%v)", raw, err)
	}
	for _, k := range []string{"usage.json.gz"} {
		if _, err := gunzip(cm.BinaryData[k]); err != nil {
			t.Errorf("%s unreadable: %v", k, err)
		}
	}
	if _, err := gunzip(sec.Data["checkouts.json.gz"]); err != nil {
		t.Errorf("checkouts.json.gz unreadable: %v", err)
	}

	// The same bundle again is not newer.
	if _, err := kubectl(t, backupNS, "backup", "import", "plant-b", "-f", file, "--trusted-key", pub, "--allow-other-pair"); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Fatalf("re-import = %v, want a refusal", err)
	}
	// A tampered bundle is refused.
	data, _ := os.ReadFile(file)
	tampered := filepath.Join(dir, "tampered.json")
	_ = os.WriteFile(tampered, bytes.Replace(data, []byte(`"revision": 41`), []byte(`"revision": 42`), 1), 0o644)
	if _, err := kubectl(t, backupNS, "backup", "import", "plant-b", "-f", tampered, "--trusted-key", pub, "--allow-other-pair"); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("tampered import = %v, want a refusal", err)
	}
	// Export before the main published anything.
	emptyNS := newNS(t)
	createPairWithState(t, emptyNS, nil, nil)
	if _, err := kubectl(t, emptyNS, "backup", "export", "plant-b", "-o", filepath.Join(dir, "x.json"), "--signing-key", key); err == nil || !strings.Contains(err.Error(), "has not published") {
		t.Fatalf("export before the main published = %v, want a refusal", err)
	}
	if _, err := kubectl(t, emptyNS, "backup", "export", "plant-x", "-o", filepath.Join(dir, "x.json"), "--signing-key", key); err == nil || !strings.Contains(err.Error(), "kubectl get licenseha -A") {
		t.Fatalf("export of a missing pair = %v, want a hint", err)
	}
}
