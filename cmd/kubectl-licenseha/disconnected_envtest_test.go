package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/controllers"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testfixtures"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

// startOperator runs the operator (controllers.Setup) against the test API
// server, watching only the given namespaces, until the test ends. It
// returns the key that signs licences the operator trusts.
func startOperator(t *testing.T, namespaces ...string) ed25519.PrivateKey {
	t.Helper()
	priv, trusted := testfixtures.SigningKey(t)
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{
		Scheme:                 testEnv.Scheme,
		Cache:                  controllers.CacheOptions(namespaces...),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, controllers.Config{Image: "ghcr.io/licenseha/licenseha:test", TrustedKeys: trusted}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	return priv
}

// disconnectedSite creates, in namespace ns standing in for one site's
// cluster, the pair plant-b with spec.disconnected.localSide local and both
// sides' licence Secrets (the remote side's too: the operator verifies the
// mapping and the edition against it).
func disconnectedSite(t *testing.T, ns string, local licensehav1.PairSide, priv ed25519.PrivateKey) client.ObjectKey {
	t.Helper()
	ctx := context.Background()
	for side, l := range map[licensehav1.PairSide]struct {
		id      string
		edition licensing.Edition
	}{licensehav1.SideMain: {"LIC-M", licensing.EditionEnterprise}, licensehav1.SideBackup: {"LIC-B", licensing.EditionProfessional}} {
		data, err := testfixtures.Licence(priv, l.id, ns+"/plant-b", l.edition)
		if err != nil {
			t.Fatal(err)
		}
		if err := kc.Create(ctx, testfixtures.LicenceSecret(ns, testfixtures.PairLicenseSecret("plant-b", side), data)); err != nil {
			t.Fatal(err)
		}
	}
	p := testfixtures.Pair(ns, "plant-b")
	p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: local}
	p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-M", Backup: "LIC-B"}}
	if err := kc.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(p)
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: gave up; last seen: %s", what, last)
}

// runSide plays a side's agent: the pod runs, is ready and reports the
// settings revision it holds.
func runSide(t *testing.T, ns, pod string, revision int64) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &corev1.Pod{}
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
			return err
		}
		report, _ := json.Marshal(group.MemberState{State: group.StateActive, Revision: revision, ServerVersion: "1.0"})
		p.Annotations[group.AnnotationMemberState] = string(report)
		p.Labels[licensehav1.LabelRole] = group.RoleLabelActive
		if err := kc.Update(ctx, p); err != nil {
			return err
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "server", Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}}
		return kc.Status().Update(ctx, p)
	})
	if err != nil {
		t.Fatalf("running %s/%s: %v", ns, pod, err)
	}
}

// publish plays the main's agent publishing its settings into the
// synced-state objects the operator created.
func publish(t *testing.T, ns string, revision int64, settings string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cm corev1.ConfigMap
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-b-state"}, &cm); err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		if cm.BinaryData == nil {
			cm.BinaryData = map[string][]byte{}
		}
		rev := strconv.FormatInt(revision, 10)
		cm.Data["revision"], cm.Data["epoch"], cm.Data["member"], cm.Data["formatVersion"] = rev, "1", "main", "1"
		cm.Data["takenAt"] = time.Now().UTC().Format(time.RFC3339Nano)
		cm.BinaryData["settings.json.gz"], cm.BinaryData["usage.json.gz"] = gz(t, settings), gz(t, "[]")
		return kc.Update(ctx, &cm)
	})
	if err != nil {
		t.Fatalf("publishing in %s: %v", ns, err)
	}
}

func getPair(t *testing.T, key client.ObjectKey) *licensehav1.LicenseBackupPair {
	t.Helper()
	p := &licensehav1.LicenseBackupPair{}
	if err := kc.Get(context.Background(), key, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func podExists(t *testing.T, ns, name string) bool {
	t.Helper()
	err := kc.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Pod{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestEnvDisconnectedPair runs the disconnected backup workflow end to end
// with the operator: two namespaces stand in for the clusters of two sites
// (in real life both hold the pair under the same namespace and name; here
// the namespaces differ, hence --allow-other-pair). Site A runs the main,
// site B the backup; a bundle exported at A and imported at B carries the
// main's settings, and each site's status follows the bundles.
func TestEnvDisconnectedPair(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	siteA, siteB := newNS(t), newNS(t)
	priv := startOperator(t, siteA, siteB)
	dir := t.TempDir()
	key, pub, file := filepath.Join(dir, "b.key"), filepath.Join(dir, "b.pub"), filepath.Join(dir, "bundle.json")
	if out, err := kubectl(t, "default", "backup", "keygen", "--private-key", key, "--public-key", pub); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}

	pairA := disconnectedSite(t, siteA, licensehav1.SideMain, priv)
	pairB := disconnectedSite(t, siteB, licensehav1.SideBackup, priv)

	// Each site runs only its own side's pod.
	eventually(t, "site A runs the main", func() (bool, string) { return podExists(t, siteA, "plant-b-main"), "" })
	eventually(t, "site B runs the backup", func() (bool, string) { return podExists(t, siteB, "plant-b-backup"), "" })
	runSide(t, siteA, "plant-b-main", 0)
	runSide(t, siteB, "plant-b-backup", 0)
	for _, c := range []struct{ ns, pod string }{{siteA, "plant-b-backup"}, {siteB, "plant-b-main"}} {
		if podExists(t, c.ns, c.pod) {
			t.Fatalf("%s/%s exists: a disconnected pair runs only its local side", c.ns, c.pod)
		}
	}
	// The agents run ActiveActive: the local side serves without waiting
	// for a peer it could never reach (the remote side has no address).
	var cfgMap corev1.ConfigMap
	if err := kc.Get(ctx, client.ObjectKey{Namespace: siteB, Name: group.ConfigName("plant-b")}, &cfgMap); err != nil {
		t.Fatal(err)
	}
	var cfg group.Config
	if err := json.Unmarshal([]byte(cfgMap.Data[group.ConfigKey]), &cfg); err != nil {
		t.Fatal(err)
	}
	if m, _ := cfg.Member("main"); cfg.Mode != string(licensehav1.ActiveActive) || m.Address != "" || len(cfg.LicenseMappings) != 1 {
		t.Fatalf("site B's agent configuration: mode %q, main %+v, mappings %v", cfg.Mode, m, cfg.LicenseMappings)
	}

	statusOf := func(key client.ObjectKey) (*licensehav1.LicenseBackupPair, *metav1.Condition, *metav1.Condition) {
		p := getPair(t, key)
		return p, meta.FindStatusCondition(p.Status.Conditions, licensehav1.ConditionConnected),
			meta.FindStatusCondition(p.Status.Conditions, licensehav1.ConditionDegraded)
	}
	// Before any bundle: both sites serve and say why they are degraded.
	for _, c := range []struct {
		key    client.ObjectKey
		remote licensehav1.PairSide
		hint   string
	}{{pairA, licensehav1.SideBackup, "No settings bundle exported"}, {pairB, licensehav1.SideMain, "No settings bundle imported"}} {
		eventually(t, c.key.String()+" disconnected, no bundle", func() (bool, string) {
			p, conn, deg := statusOf(c.key)
			remote := p.Status.Backup
			if c.remote == licensehav1.SideMain {
				remote = p.Status.Main
			}
			ok := p.Status.SyncState == licensehav1.DisconnectedNotSynchronized && p.Status.Phase == licensehav1.PairDegraded &&
				conn != nil && conn.Reason == licensehav1.ReasonDisconnected &&
				deg != nil && deg.Reason == licensehav1.ReasonDisconnected && strings.Contains(deg.Message, c.hint) &&
				remote.Remote && remote.Pod == ""
			return ok, spew(p.Status)
		})
	}

	// Site A: the main publishes its settings; export them.
	settings := `{"access":{"allowUsers":["ops-*"]},"allowedPrinters":["zebra-*"]}`
	publish(t, siteA, 41, settings)
	runSide(t, siteA, "plant-b-main", 41)
	if _, err := kubectl(t, siteB, "backup", "export", "plant-b", "-o", file, "--signing-key", key); err == nil || !strings.Contains(err.Error(), "runs its backup in this cluster") {
		t.Fatalf("export at the backup's site = %v, want a refusal", err)
	}
	if out, err := kubectl(t, siteA, "backup", "export", "plant-b", "-o", file, "--signing-key", key); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	eventually(t, "site A synchronized after the export", func() (bool, string) {
		p, _, deg := statusOf(pairA)
		return p.Status.SyncState == licensehav1.DisconnectedSynchronized && p.Status.BundleRevision == 41 &&
			p.Status.Phase == licensehav1.PairActive && deg != nil && deg.Status == metav1.ConditionFalse, spew(p.Status)
	})

	// Site B: import the bundle the admin carried over.
	if _, err := kubectl(t, siteA, "backup", "import", "plant-b", "-f", file, "--trusted-key", pub, "--allow-other-pair"); err == nil || !strings.Contains(err.Error(), "runs its main in this cluster") {
		t.Fatalf("import at the main's site = %v, want a refusal", err)
	}
	out, err := kubectl(t, siteB, "backup", "import", "plant-b", "-f", file, "--trusted-key", pub, "--allow-other-pair")
	if err != nil || !strings.Contains(out, "revision 41") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	var cm corev1.ConfigMap
	var sec corev1.Secret
	if err := kc.Get(ctx, client.ObjectKey{Namespace: siteB, Name: "plant-b-state"}, &cm); err != nil {
		t.Fatal(err)
	}
	if err := kc.Get(ctx, client.ObjectKey{Namespace: siteB, Name: "plant-b-state"}, &sec); err != nil {
		t.Fatal(err)
	}
	raw, err := gunzip(cm.BinaryData["settings.json.gz"])
	var got server.Settings
	if err != nil || json.Unmarshal(raw, &got) != nil || len(got.AllowedPrinters) != 1 || got.AllowedPrinters[0] != "zebra-*" ||
		got.Access.AllowUsers[0] != "ops-*" {
		t.Fatalf("site B's imported settings = %s (%v)", raw, err)
	}
	if cm.Data["revision"] != "41" || cm.Data["member"] != "main" || string(sec.Data["revision"]) != "41" ||
		cm.Annotations[AnnotationImportedRevision] != "41" || cm.Annotations[AnnotationImportedFrom] != siteA+"/plant-b" {
		t.Fatalf("site B's state after import: data %v annotations %v secret revision %q", cm.Data, cm.Annotations, sec.Data["revision"])
	}
	// The operator kept what the import wrote (it only creates the state
	// objects), and waits for the backup to apply it.
	eventually(t, "site B waits for the backup to apply the bundle", func() (bool, string) {
		p, _, deg := statusOf(pairB)
		return p.Status.BundleRevision == 41 && p.Status.SyncState == licensehav1.DisconnectedNotSynchronized &&
			deg != nil && strings.Contains(deg.Message, "has not applied the imported bundle (revision 41)"), spew(p.Status)
	})
	runSide(t, siteB, "plant-b-backup", 41)
	eventually(t, "site B synchronized", func() (bool, string) {
		p, conn, deg := statusOf(pairB)
		return p.Status.SyncState == licensehav1.DisconnectedSynchronized && p.Status.Phase == licensehav1.PairActive &&
			p.Status.Backup.Serving && p.Status.Main.Remote && conn.Reason == licensehav1.ReasonDisconnected &&
			deg.Status == metav1.ConditionFalse, spew(p.Status)
	})

	// The main's settings change at site A: the pair there says a new
	// bundle is due.
	publish(t, siteA, 42, `{"allowedPrinters":["zebra-*","sato-*"]}`)
	runSide(t, siteA, "plant-b-main", 42)
	eventually(t, "site A outdated", func() (bool, string) {
		p, _, deg := statusOf(pairA)
		return p.Status.SyncState == licensehav1.DisconnectedNotSynchronized && deg.Reason == licensehav1.ReasonDisconnected &&
			strings.Contains(deg.Message, "changed since the last exported bundle (revision 41)"), spew(p.Status)
	})
	// Still no pod for the remote sides.
	if podExists(t, siteA, "plant-b-backup") || podExists(t, siteB, "plant-b-main") {
		t.Fatal("a remote side's pod appeared")
	}
}

func spew(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}
