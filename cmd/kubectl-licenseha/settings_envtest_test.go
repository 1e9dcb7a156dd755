package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/settings"
	"github.com/licenseha/licenseha/pkg/server"
)

func mustJSONGz(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return gz(t, string(raw))
}

func TestEnvSettingsGetSetDiff(t *testing.T) {
	startEnv(t)
	ctx := context.Background()
	ns := newNS(t)
	dir := t.TempDir()
	tr := createTriad(t, ns, "plant")

	// Without settingsRef, get explains what to do.
	if out, err := kubectl(t, ns, "settings", "get", "plant"); err == nil || !strings.Contains(err.Error(), "no spec.settingsRef") {
		t.Fatalf("get without settingsRef = %v\n%s", err, out)
	}

	tr.Spec.SettingsRef = &licensehav1.LocalObjectReference{Name: "plant-settings"}
	if err := kc.Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	// set --create makes the ConfigMap.
	first := filepath.Join(dir, "first.yaml")
	_ = os.WriteFile(first, []byte("allowedPrinters: [\"zebra-*\"]\n"), 0o600)
	if out, err := kubectl(t, ns, "settings", "set", "plant", "-f", first); err == nil || !strings.Contains(err.Error(), "--create") {
		t.Fatalf("set without the ConfigMap = %v\n%s", err, out)
	}
	if out, err := kubectl(t, ns, "settings", "set", "plant", "-f", first, "--create"); err != nil {
		t.Fatalf("set --create: %v\n%s", err, out)
	}
	out, err := kubectl(t, ns, "settings", "get", "plant")
	if err != nil || !strings.Contains(out, "zebra-*") {
		t.Fatalf("get = %v\n%s", err, out)
	}

	// A bad document is refused naming the field; nothing is written.
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("access:\n  allowAddresses: [10.0.0.300/8]\n"), 0o600)
	out, err = kubectl(t, ns, "settings", "set", "plant", "-f", bad)
	if err == nil || !strings.Contains(err.Error(), "settings.access.allowAddresses") || !strings.Contains(err.Error(), "not an address or CIDR") ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("set bad = %v\n%s", err, out)
	}
	cm := &corev1.ConfigMap{}
	if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-settings"}, cm); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data[settings.KeyYAML], "zebra-*") {
		t.Fatalf("the bad document reached the ConfigMap: %v", cm.Data)
	}

	// A good change is written under the key in use.
	second := filepath.Join(dir, "second.yaml")
	_ = os.WriteFile(second, []byte("allowedPrinters: [\"zebra-2*\"]\naccess: {denyUsers: [guest]}\n"), 0o600)
	if out, err := kubectl(t, ns, "settings", "set", "plant", "-f", second); err != nil || !strings.Contains(out, "written to ConfigMap plant-settings") {
		t.Fatalf("set = %v\n%s", err, out)
	}
	_ = kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plant-settings"}, cm)
	spec, err := settings.FromConfigMap(cm)
	if err != nil || spec.AllowedPrinters[0] != "zebra-2*" {
		t.Fatalf("ConfigMap after set: %v %v", cm.Data, err)
	}
	specHash := server.SettingsHash(spec)
	old, _ := settings.Parse([]byte("allowedPrinters: [\"zebra-*\"]\n"))

	// Member a runs the new settings, b the old ones, c has not reported;
	// the active member published the old ones.
	tr.Status.Members[0].SettingsHash = specHash
	tr.Status.Members[1].SettingsHash = server.SettingsHash(old)
	tr.Status.Settings = &licensehav1.SettingsStatus{ConfigMap: "plant-settings", Hash: specHash}
	if err := kc.Status().Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	state := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plant-state"},
		Data: map[string]string{"revision": "7", "member": "a"}, BinaryData: map[string][]byte{"settings.json.gz": mustJSONGz(t, old)}}
	if err := kc.Create(ctx, state); err != nil {
		t.Fatal(err)
	}
	out, err = kubectl(t, ns, "settings", "diff", "plant")
	if err == nil || !strings.Contains(err.Error(), "1 member(s)") {
		t.Fatalf("diff = %v\n%s", err, out)
	}
	for _, want := range []string{"a  ", "b  ", "unknown", `-- zebra-2*`, `+- zebra-*`, "-  denyUsers:"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	out, _ = kubectl(t, ns, "settings", "diff", "plant", "-o", "json")
	var d SettingsDiff
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &d); err != nil {
		t.Fatalf("diff -o json: %v\n%s", err, out)
	}
	if d.SpecHash != specHash || !d.Members[0].Matches || d.Members[1].Matches || len(d.Published) == 0 {
		t.Fatalf("diff json %+v", d)
	}

	// Once every member runs them and the state holds them: no difference.
	tr.Status.Members[1].SettingsHash, tr.Status.Members[2].SettingsHash = specHash, specHash
	if err := kc.Status().Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	state.BinaryData["settings.json.gz"] = mustJSONGz(t, spec)
	if err := kc.Update(ctx, state); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, ns, "settings", "diff", "plant"); err != nil || !strings.Contains(out, "holds the spec's settings") {
		t.Fatalf("diff in sync = %v\n%s", err, out)
	}
	if out, err := kubectl(t, ns, "settings", "get", "plant", "--published", "-o", "json"); err != nil || !strings.Contains(out, `"zebra-2*"`) {
		t.Fatalf("get --published = %v\n%s", err, out)
	}

	// status shows the settings line.
	tr.Status.Settings.AppliedMembers, tr.Status.Settings.Synchronized = []string{"a", "b", "c"}, true
	if err := kc.Status().Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, ns, "status", "plant"); err != nil ||
		!strings.Contains(out, "Settings:") || !strings.Contains(out, "ConfigMap plant-settings, hash "+specHash[:12]+", synchronized: yes (running them: a, b, c)") {
		t.Fatalf("status = %v\n%s", err, out)
	}
}

func TestEnvUsage(t *testing.T) {
	startEnv(t)
	ns := newNS(t)
	rows := func(lic string, n server.Count) []server.UsageRecord {
		return []server.UsageRecord{
			{License: lic, Printer: "zebra-1", Period: "2026-12", Checkouts: n, Jobs: n, Labels: 10 * n},
			{License: lic, Printer: "zebra-2", Period: "2026-12", Checkouts: 1, Jobs: 1, Labels: 1},
		}
	}
	createPairWithState(t, ns, map[string]string{"revision": "3", "member": "main"}, map[string][]byte{
		"usage.json.gz":        mustJSONGz(t, rows("LIC-M", 4)),
		"backup-usage.json.gz": mustJSONGz(t, rows("LIC-B", 2)),
	})
	out, err := kubectl(t, ns, "usage", "plant-b", "--by", "server,license", "-o", "csv")
	if err != nil {
		t.Fatalf("usage: %v\n%s", err, out)
	}
	want := "server,license,checkouts,jobs,labels,lastUse\nbackup,LIC-B,3,3,21,\nmain,LIC-M,5,5,41,\n"
	if out != want {
		t.Fatalf("usage csv:\n%s\nwant:\n%s", out, want)
	}
	out, err = kubectl(t, ns, "usage", "plant-b")
	if err != nil || !strings.Contains(out, "SERVER") || strings.Count(out, "zebra-") != 4 {
		t.Fatalf("usage table = %v\n%s", err, out)
	}
	if out, err := kubectl(t, ns, "usage", "plant-b", "--period", "12/2026"); err == nil || !strings.Contains(err.Error(), "YYYY-MM") {
		t.Fatalf("bad period = %v\n%s", err, out)
	}
	if out, err := kubectl(t, ns, "usage", "nothing"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown group = %v\n%s", err, out)
	}
}
