package agent

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// pairMember is a pair member's agent wired to an in-process reference
// server and to a fake API server holding <pair>-state.
func pairMember(t *testing.T, cs *fake.Clientset, member string, cfg *group.Config) *Agent {
	t.Helper()
	admin := standbyServer(t, testNS+"/"+testPair, member)
	a := &Agent{opts: Options{GroupKind: group.KindBackupPair, Group: testPair, Member: member, Namespace: testNS},
		log: logr.Discard(), cs: cs, admin: admin, cfg: cfg, metrics: newAgentMetrics()}
	a.sync = &syncer{log: logr.Discard(), cs: cs, namespace: testNS, group: testPair, admin: admin, settingsOnly: true}
	observeState(t, a)
	return a
}

func observeState(t *testing.T, a *Agent) {
	t.Helper()
	ctx := context.Background()
	cm, err := a.cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := a.cs.CoreV1().Secrets(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.sync.observeConfigMap(cm)
	a.sync.observeSecret(sec)
}

// pass runs what one loop iteration does for settings and sync.
func pass(t *testing.T, a *Agent, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	st, err := a.admin.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := desired{role: st.Role, epoch: 1}
	if a.publishes(want, st) {
		if err := a.sync.publish(ctx, st, 1); err != nil {
			t.Fatal(err)
		}
	} else if err := a.sync.apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	hash := a.syncSettings(ctx, a.config(), want, st, now)
	a.syncUsage(ctx, want, st, now)
	return hash
}

func newStateObjects() *fake.Clientset {
	meta := metav1.ObjectMeta{Namespace: testNS, Name: group.StateName(testPair)}
	return fake.NewClientset(&corev1.ConfigMap{ObjectMeta: meta}, &corev1.Secret{ObjectMeta: meta})
}

func TestSettingsRefReachesMainAndBackupAndMainWinsOnReturn(t *testing.T) {
	ctx := context.Background()
	spec := server.Settings{AllowedPrinters: []string{"zebra-*"}, Access: server.AccessRules{DenyUsers: []string{"guest"}}}
	cfg := &group.Config{Kind: group.KindBackupPair, Settings: &spec, SettingsHash: server.SettingsHash(spec)}
	cs := newStateObjects()
	main := pairMember(t, cs, "main", cfg)
	backup := pairMember(t, cs, "backup", cfg)
	now := time.Now()

	// The backup does not own the settings: it does not apply the spec's.
	if h := pass(t, backup, now); h == cfg.SettingsHash {
		t.Fatal("the backup applied spec.settingsRef itself")
	}
	// The main applies them, then publishes them on its next pass.
	if h := pass(t, main, now); h != cfg.SettingsHash {
		t.Fatalf("main runs settings %s, want %s", h, cfg.SettingsHash)
	}
	now = now.Add(3 * time.Second)
	pass(t, main, now)
	observeState(t, backup)
	if h := pass(t, backup, now); h != cfg.SettingsHash {
		t.Fatalf("backup runs settings %s after the main published, want %s", h, cfg.SettingsHash)
	}

	// During a failover, an administrator changes the backup's settings.
	if err := backup.admin.SetSettings(ctx, server.Settings{AllowedPrinters: []string{"any-*"}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second)
	if h := pass(t, backup, now); h == cfg.SettingsHash {
		t.Fatal("the backup's own change was undone while the main was away")
	}
	// The main returns (a new agent process publishes at start): the
	// backup takes the main's settings again, at the same revision.
	main.sync = &syncer{log: logr.Discard(), cs: cs, namespace: testNS, group: testPair, admin: main.admin, settingsOnly: true}
	observeState(t, main)
	now = now.Add(3 * time.Second)
	pass(t, main, now)
	observeState(t, backup)
	now = now.Add(3 * time.Second)
	if h := pass(t, backup, now); h != cfg.SettingsHash {
		t.Fatalf("backup runs settings %s after the main returned, want the main's %s", h, cfg.SettingsHash)
	}

	// A change of spec.settingsRef reaches the main at once.
	next := server.Settings{AllowedPrinters: []string{"zebra-2*"}}
	main.cfg = &group.Config{Kind: group.KindBackupPair, Settings: &next, SettingsHash: server.SettingsHash(next)}
	if h := pass(t, main, now); h != server.SettingsHash(next) {
		t.Fatalf("main runs %s after the spec changed, want %s", h, server.SettingsHash(next))
	}
	got, _ := main.admin.Settings(ctx)
	if len(got.AllowedPrinters) != 1 || got.AllowedPrinters[0] != "zebra-2*" {
		t.Fatalf("main's server holds %+v", got)
	}
}

func TestSettingsWithoutRefAreLeftAlone(t *testing.T) {
	ctx := context.Background()
	cs := newStateObjects()
	main := pairMember(t, cs, "main", &group.Config{Kind: group.KindBackupPair})
	own := server.Settings{AllowedPrinters: []string{"mine-*"}}
	if err := main.admin.SetSettings(ctx, own); err != nil {
		t.Fatal(err)
	}
	if h := pass(t, main, time.Now()); h != server.SettingsHash(own) {
		t.Fatalf("main runs %s, want its own settings %s", h, server.SettingsHash(own))
	}
}

func TestBackupUsageIsPublishedBesideTheMainsState(t *testing.T) {
	ctx := context.Background()
	cs := newStateObjects()
	cfg := &group.Config{Kind: group.KindBackupPair}
	main := pairMember(t, cs, "main", cfg)
	backup := pairMember(t, cs, "backup", cfg)
	if err := main.admin.SetSettings(ctx, server.Settings{AllowedPrinters: []string{"m"}}); err != nil {
		t.Fatal(err)
	}
	// The backup serves and counts usage.
	if _, err := backup.admin.SetRole(ctx, server.RoleRequest{Role: server.RoleActive, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pass(t, main, now)
	observeState(t, backup)
	pass(t, backup, now)
	cm, _ := cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	if cm.BinaryData[KeyBackupUsage] == nil || cm.Data[KeyBackupUsageRevision] == "" {
		t.Fatalf("backup usage not published: %v", cm.Data)
	}
	if cm.Data[keyMember] != "main" {
		t.Fatalf("the backup's write lost the main's keys: %v", cm.Data)
	}
	// The main's next publication keeps the backup's keys.
	if err := main.admin.SetSettings(ctx, server.Settings{AllowedPrinters: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	observeState(t, main)
	now = now.Add(3 * time.Second)
	pass(t, main, now)
	cm, _ = cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	if cm.BinaryData[KeyBackupUsage] == nil {
		t.Fatalf("the main's publication dropped the backup's usage: %v", cm.Data)
	}
}

func TestUsageTotalsPerLicenceOfTheMonth(t *testing.T) {
	rows := []server.UsageRecord{
		{License: "a", Printer: "p1", Period: "2026-12", Checkouts: 2, Jobs: 5, Labels: 50},
		{License: "a", Printer: "*", Period: "2026-12", Checkouts: 1, Jobs: 1, Labels: 1},
		{License: "b", Printer: "p1", Period: "2026-12", Checkouts: 1},
		{License: "a", Printer: "p1", Period: "2026-11", Checkouts: 100},
		{License: "c", Printer: "p1", Period: "2026-12", Labels: 1<<63 - 1},
		{License: "c", Printer: "p2", Period: "2026-12", Labels: 5},
	}
	got := usageTotals(rows, "2026-12")
	if got["a"] != [3]int64{3, 6, 51} || got["b"] != [3]int64{1, 0, 0} || got["c"][2] != 1<<63-1 || len(got) != 3 {
		t.Fatalf("totals %v", got)
	}
}

func TestMainStateWinsOverTheBackupsUsageWhenTheObjectIsFull(t *testing.T) {
	ctx := context.Background()
	cs := newStateObjects()
	cm, _ := cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	cm.Data = map[string]string{KeyBackupUsageRevision: "9"}
	cm.BinaryData = map[string][]byte{KeyBackupUsage: make([]byte, maxStateBytes)}
	if _, err := cs.CoreV1().ConfigMaps(testNS).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	main := pairMember(t, cs, "main", &group.Config{Kind: group.KindBackupPair})
	if err := main.admin.SetSettings(ctx, server.Settings{AllowedPrinters: []string{"m"}}); err != nil {
		t.Fatal(err)
	}
	pass(t, main, time.Now())
	cm, _ = cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	if cm.Data[keyMember] != "main" || cm.BinaryData[keySettings] == nil {
		t.Fatalf("the main did not publish: %v", cm.Data)
	}
	if cm.BinaryData[KeyBackupUsage] != nil {
		t.Fatal("the backup's statistics were kept although they do not fit beside the main's state")
	}
	// And the backup does not push them back in.
	if err := main.sync.publishBackupUsage(ctx, nil, 1, time.Now()); err != nil {
		t.Fatalf("small statistics fit: %v", err)
	}
	big := make([]server.UsageRecord, 0, 20000)
	for i := range 20000 {
		big = append(big, server.UsageRecord{License: "L", Printer: strings.Repeat("x", 40) + strconv.Itoa(i*7919), Period: "2026-12"})
	}
	observeState(t, main)
	err := main.sync.publishBackupUsage(ctx, big, 2, time.Now())
	if err == nil {
		cm, _ = cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
		if binarySize(cm.BinaryData) > maxStateBytes {
			t.Fatalf("the object holds %d bytes of state, over %d", binarySize(cm.BinaryData), maxStateBytes)
		}
	}
}
