package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

const testNS, testPair = "printing", "plant-b"

func newTestFileSync(t *testing.T, cs *fake.Clientset, member string, cfg *group.Config) *fileSync {
	_, f := syncingMember(t, cs, cfg, Options{GroupKind: group.KindBackupPair, Group: testPair, Member: member})
	return f
}

// syncingMember is an agent of a member with its file sync, in testNS,
// with a data folder of its own.
func syncingMember(t *testing.T, cs *fake.Clientset, cfg *group.Config, opts Options) (*Agent, *fileSync) {
	opts.Namespace, opts.DataDir = testNS, t.TempDir()
	a := &Agent{opts: opts, log: logr.Discard(), cs: cs, cfg: cfg}
	a.files = newFileSync(a)
	return a, a.files
}

// setServing sets the role the agent last applied to its server.
func setServing(a *Agent, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied.role = server.RoleStandby
	if on {
		a.applied.role = server.RoleActive
	}
}

// syncRound runs one file sync cycle of each member in turn, each first
// seeing the state Secret as it is (as its watch would deliver it).
func syncRound(t *testing.T, cs *fake.Clientset, fs ...*fileSync) {
	t.Helper()
	ctx := context.Background()
	for _, f := range fs {
		s, err := cs.CoreV1().Secrets(f.namespace).Get(ctx, f.secret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.observe(s)
		if f.setPublisher(f.publishing()) {
			f.mainCycle(ctx, true)
		} else {
			f.backupCycle(ctx)
		}
	}
}

// handOver fences from's server, which writes rel as it stops, and checks
// that the taker to holds that before its server would start.
func handOver(t *testing.T, from *Agent, to *fileSync, rel, content string) {
	t.Helper()
	ctx := context.Background()
	writeFile(t, from.files.dataDir, rel, content)
	setServing(from, false)
	from.files.final(ctx)
	to.catchUp(ctx)
	if got := readFile(t, to.dataDir, rel); got != content {
		t.Fatalf("the taker starts serving with %s = %q, want %q written as the old server stopped", rel, got, content)
	}
}

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

// TestFileSyncThroughStateSecret drives the main's publish and the
// backup's apply through the state Secret (a fake API server), next to the
// server state the syncer writes there, as the watches would deliver it.
func TestFileSyncThroughStateSecret(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: group.StateName(testPair)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: group.StateName(testPair)}})
	cfg := &group.Config{Kind: group.KindBackupPair, SyncIntervalSeconds: 30, SyncStrict: true, PreserveTimestamps: true,
		SyncPaths: []group.SyncPath{{Path: "settings", Include: []string{"*.xml"}}}}
	main := newTestFileSync(t, cs, "main", cfg)
	backup := newTestFileSync(t, cs, "backup", cfg)
	secrets := cs.CoreV1().Secrets(testNS)
	get := func() *corev1.Secret {
		t.Helper()
		s, err := secrets.Get(ctx, group.StateName(testPair), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The server state's writer replaces the whole Secret, as syncer.publish does.
	writeServerState := func(rev uint64) {
		t.Helper()
		enc, err := encodeState(&server.Snapshot{Revision: rev, Epoch: 1, Member: "main", TakenAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		s := get()
		s.Data = enc.SecretData
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		cm, _ := cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
		cm.Data, cm.BinaryData = enc.Data, enc.BinaryData
		if _, err := cs.CoreV1().ConfigMaps(testNS).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func() { s := get(); main.observe(s); backup.observe(s) }
	cycle := func() {
		t.Helper()
		main.mainCycle(ctx, true)
		deliver()
		backup.backupCycle(ctx)
		deliver()
	}

	writeServerState(5)
	writeFile(t, main.dataDir, "settings/a.xml", "a1")
	writeFile(t, main.dataDir, "settings/skip.txt", "not included")
	writeFile(t, backup.dataDir, "settings/backup-only.xml", "made on the backup")
	cycle()
	if got := readFile(t, backup.dataDir, "settings/a.xml"); got != "a1" {
		t.Fatalf("first cycle: a.xml = %q", got)
	}
	if readFile(t, backup.dataDir, "settings/backup-only.xml") != "<missing>" || readFile(t, backup.dataDir, "settings/skip.txt") != "<missing>" {
		t.Fatal("strict kept a backup-only file, or an excluded file was synced")
	}
	if main.revision() == 0 || backup.revision() != main.revision() {
		t.Fatalf("revisions: main %d, backup %d", main.revision(), backup.revision())
	}
	// The server's own state is still readable beside the files.
	cm, _ := cs.CoreV1().ConfigMaps(testNS).Get(ctx, group.StateName(testPair), metav1.GetOptions{})
	if snap, err := decodeState(testNS+"/"+testPair, cm, get()); err != nil || snap.Revision != 5 {
		t.Fatalf("server state after the file sync: %v, %v", snap, err)
	}

	// The server state's writer drops the files keys; the main restores
	// them at its next cycle without a new revision.
	rev := main.revision()
	writeServerState(6)
	deliver()
	cycle()
	if s := get(); string(s.Data[keyFilesRevision]) == "" || main.revision() != rev {
		t.Fatalf("files not restored under the same revision: %q, %d (was %d)", s.Data[keyFilesRevision], main.revision(), rev)
	}

	// Only changes travel.
	writeFile(t, main.dataDir, "settings/b.xml", "b1")
	cycle()
	if got := readFile(t, backup.dataDir, "settings/b.xml"); got != "b1" || backup.revision() != main.revision() || main.revision() <= rev {
		t.Fatalf("second cycle: b.xml %q, revisions main %d backup %d", got, main.revision(), backup.revision())
	}

	// The backup misses a cycle: it asks for a full one and gets it.
	writeFile(t, main.dataDir, "settings/c.xml", "c1")
	main.mainCycle(ctx, true)
	writeFile(t, main.dataDir, "settings/d.xml", "d1")
	main.mainCycle(ctx, true)
	deliver()
	backup.backupCycle(ctx)
	if backup.revision() == main.revision() {
		t.Fatal("the backup claims the main's revision without c.xml")
	}
	deliver() // the main sees the request
	cycle()
	if readFile(t, backup.dataDir, "settings/c.xml") != "c1" || readFile(t, backup.dataDir, "settings/d.xml") != "d1" || backup.revision() != main.revision() {
		t.Fatalf("after the full cycle: c=%q d=%q, revisions main %d backup %d", readFile(t, backup.dataDir, "settings/c.xml"),
			readFile(t, backup.dataDir, "settings/d.xml"), main.revision(), backup.revision())
	}

	// Changes made on the backup are overwritten when the main returns
	// (a restarted main's first cycle sends everything).
	writeFile(t, backup.dataDir, "settings/a.xml", "changed during the failover")
	main = newTestFileSync(t, cs, "main", cfg)
	main.dataDir = t.TempDir()
	for rel, c := range map[string]string{"settings/a.xml": "a1", "settings/b.xml": "b1", "settings/c.xml": "c1", "settings/d.xml": "d1"} {
		writeFile(t, main.dataDir, rel, c)
	}
	deliver()
	cycle()
	if got := readFile(t, backup.dataDir, "settings/a.xml"); got != "a1" || backup.revision() != main.revision() {
		t.Fatalf("after the main's return: a.xml %q", got)
	}
}

// TestFileSyncInert: triads, and pairs without sync paths, never write.
func TestFileSyncInert(t *testing.T) {
	cs := fake.NewClientset()
	cfg := &group.Config{Kind: group.KindBackupPair}
	f := newTestFileSync(t, cs, "main", cfg)
	f.mainCycle(context.Background(), true)
	var nilSync *fileSync
	nilSync.observe(&corev1.Secret{})
	if f.revision() != 0 || nilSync.revision() != 0 || len(cs.Actions()) != 0 {
		t.Fatalf("inert file sync acted: %v", cs.Actions())
	}
	nilSync.start(context.Background())()
}

// TestTriadFileSyncFollowsTheActive: in a triad the serving member
// publishes spec.sync.paths; on a handover the old active publishes once
// more what its server wrote while stopping, the new one applies that
// before it serves and then publishes everything; a late final
// publication of a member another has replaced is dropped.
func TestTriadFileSyncFollowsTheActive(t *testing.T) {
	ctx := context.Background()
	const triad = "plant-a"
	cs := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: group.StateName(triad)}})
	cfg := &group.Config{Kind: group.KindTriad, SyncIntervalSeconds: 30, PreserveTimestamps: true,
		SyncPaths: []group.SyncPath{{Path: "db"}}}
	member := func(name string) (*Agent, *fileSync) {
		return syncingMember(t, cs, cfg, Options{GroupKind: group.KindTriad, Group: triad, Member: name})
	}
	aA, a := member("a")
	aB, b := member("b")
	_, c := member("c")
	get := func() *corev1.Secret {
		s, err := cs.CoreV1().Secrets(testNS).Get(ctx, group.StateName(triad), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tick := func(fs ...*fileSync) { syncRound(t, cs, fs...) }

	setServing(aA, true)
	writeFile(t, a.dataDir, "db/licences.dat", "v1")
	tick(a, b, c)
	if readFile(t, b.dataDir, "db/licences.dat") != "v1" || readFile(t, c.dataDir, "db/licences.dat") != "v1" {
		t.Fatal("the standbys did not get the active's files")
	}

	// Handover a → b: a's server writes while it stops; a publishes once
	// more after the fence; b catches up before serving.
	handOver(t, aA, b, "db/licences.dat", "v2 written on SIGTERM")
	setServing(aB, true)
	writeFile(t, b.dataDir, "db/new.dat", "b's")
	tick(b, a, c)
	if readFile(t, a.dataDir, "db/new.dat") != "b's" || readFile(t, c.dataDir, "db/licences.dat") != "v2 written on SIGTERM" {
		t.Fatal("the old active or the witness did not follow the new active")
	}
	if b.revision() == 0 || a.revision() != b.revision() || c.revision() != b.revision() {
		t.Fatalf("revisions: a %d, b %d, c %d", a.revision(), b.revision(), c.revision())
	}

	// A late final publication from a replaced active is dropped.
	rev := string(get().Data[keyFilesRevision])
	aA2, a2 := member("a")
	setServing(aA2, true)
	writeFile(t, a2.dataDir, "db/licences.dat", "stale")
	tick(a2)
	setServing(aA2, false)
	setServing(aB, true)
	writeFile(t, b.dataDir, "db/new.dat", "b's second")
	tick(b)
	rev = string(get().Data[keyFilesRevision])
	a2.final(ctx)
	if got := string(get().Data[keyFilesRevision]); got != rev {
		t.Fatalf("a replaced active's final publication overwrote the newer one: %s → %s", rev, got)
	}
}

// TestActivePassivePairFilesFollowTheServingSide: an ActivePassive pair of
// vendor servers syncs from whichever side serves, as a triad does: the
// backup starts from what the main's server wrote as it stopped, nothing is
// written under the serving backup, the standing-by main follows it, and a
// main that comes back with an empty folder (a recreated pod) serves again
// from the backup's files.
func TestActivePassivePairFilesFollowTheServingSide(t *testing.T) {
	cs := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: group.StateName(testPair)}})
	cfg := &group.Config{Kind: group.KindBackupPair, Mode: group.ModeActivePassive, SyncIntervalSeconds: 30,
		SyncPaths: []group.SyncPath{{Path: "db"}}}
	side := func(name string) (*Agent, *fileSync) {
		return syncingMember(t, cs, cfg, Options{GroupKind: group.KindBackupPair, Group: testPair, Member: name, StopToFence: true})
	}
	tick := func(fs ...*fileSync) { syncRound(t, cs, fs...) }
	aMain, main := side("main")
	aBackup, backup := side("backup")
	setServing(aMain, true)
	setServing(aBackup, false)
	writeFile(t, main.dataDir, "db/licences.dat", "v1")
	tick(main, backup)
	if got := readFile(t, backup.dataDir, "db/licences.dat"); got != "v1" {
		t.Fatalf("the backup holds %q, want the main's v1", got)
	}

	// Switchover to the backup: the main's server writes as it stops; its
	// fence publishes that before the backup catches up and starts.
	handOver(t, aMain, backup, "db/licences.dat", "v2 written on SIGTERM")

	// The backup serves and publishes; nothing is written under it, and
	// the main, standing by, follows its files.
	setServing(aBackup, true)
	writeFile(t, backup.dataDir, "db/licences.dat", "v3 written by the serving backup")
	writeFile(t, main.dataDir, "db/stray.dat", "left on the main")
	tick(backup, main, backup)
	if got := readFile(t, backup.dataDir, "db/licences.dat"); got != "v3 written by the serving backup" {
		t.Fatalf("written under the serving backup: %q", got)
	}
	if got := readFile(t, main.dataDir, "db/licences.dat"); got != "v3 written by the serving backup" {
		t.Fatalf("the standing-by main holds %q, want the backup's v3", got)
	}
	if main.revision() == 0 || main.revision() != backup.revision() {
		t.Fatalf("revisions: main %d, backup %d", main.revision(), backup.revision())
	}

	// The main's pod is recreated with an empty folder while the backup
	// serves; the failback starts it from the backup's newest files.
	aMain2, main2 := side("main")
	setServing(aMain2, false)
	tick(main2)
	handOver(t, aBackup, main2, "db/licences.dat", "v4 written by the backup as it stopped")
	setServing(aMain2, true)
	writeFile(t, main2.dataDir, "db/new.dat", "main's")
	tick(main2, backup)
	if got := readFile(t, backup.dataDir, "db/new.dat"); got != "main's" {
		t.Fatalf("the backup does not follow the main again: %q", got)
	}
}
