package sync

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"
)

func write(t testing.TB, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func read(t testing.TB, dir, rel string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func keys(m Manifest) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pair drives the main's publish and the backup's apply like the agents do,
// through an encode and a decode.
type pair struct {
	t            testing.TB
	main, backup string
	paths        []Path
	opts         ApplyOptions
	last         Manifest
	rev          int64
}

func newPair(t testing.TB, paths []Path, strict, preserve bool) *pair {
	return &pair{t: t, main: t.TempDir(), backup: t.TempDir(), paths: paths,
		opts: ApplyOptions{Paths: paths, Strict: strict, PreserveTimestamps: preserve}}
}

// cycle scans the main, publishes what changed (nil when nothing did), and
// applies it on the backup.
func (p *pair) cycle() (*ChangeSet, Report) {
	p.t.Helper()
	cur, err := Scan(p.main, p.paths, p.last)
	if err != nil {
		p.t.Fatal(err)
	}
	if p.last != nil && Compare(p.last, cur).Empty() {
		return nil, Report{}
	}
	p.rev++
	cs, err := Build(p.main, p.last, cur, p.rev)
	if err != nil {
		p.t.Fatal(err)
	}
	blob, err := Encode(cs, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	got, err := Decode(blob)
	if err != nil {
		p.t.Fatal(err)
	}
	rep, err := Apply(p.backup, got, p.opts)
	if err != nil {
		p.t.Fatal(err)
	}
	p.last = cs.Manifest
	return got, rep
}

var settingsPath = []Path{{Path: "settings"}}

func TestFirstCycleSendsAllLaterOnlyChanges(t *testing.T) {
	p := newPair(t, settingsPath, false, true)
	write(t, p.main, "settings/a.xml", "a1")
	write(t, p.main, "settings/sub/b.xml", "b1")
	write(t, p.main, "settings/c.txt", "c1")
	write(t, p.main, "state.json", "the server's own state, not synced")

	cs, rep := p.cycle()
	if !cs.Full || len(cs.Files) != 3 {
		t.Fatalf("first cycle: full=%v files=%v", cs.Full, sortedKeys(cs.Files))
	}
	if !rep.Complete() || len(rep.Written) != 3 {
		t.Fatalf("first apply: %+v", rep)
	}
	if _, ok := read(t, p.backup, "state.json"); ok {
		t.Fatal("a file outside the sync paths was synced")
	}
	if cs, _ := p.cycle(); cs != nil {
		t.Fatalf("nothing changed but a change set was sent: %v", sortedKeys(cs.Files))
	}

	write(t, p.main, "settings/a.xml", "a2")
	write(t, p.main, "settings/d.xml", "d1")
	cs, rep = p.cycle()
	if cs.Full || !reflect.DeepEqual(sortedKeys(cs.Files), []string{"settings/a.xml", "settings/d.xml"}) {
		t.Fatalf("second cycle sent %v (full %v)", sortedKeys(cs.Files), cs.Full)
	}
	if len(cs.Manifest) != 4 || !rep.Complete() {
		t.Fatalf("manifest %v, report %+v", keys(cs.Manifest), rep)
	}
	for rel, want := range map[string]string{"settings/a.xml": "a2", "settings/sub/b.xml": "b1", "settings/c.txt": "c1", "settings/d.xml": "d1"} {
		if got, _ := read(t, p.backup, rel); got != want {
			t.Errorf("%s on the backup = %q, want %q", rel, got, want)
		}
	}
}

func TestStrictDeletes(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprint("strict=", strict), func(t *testing.T) {
			p := newPair(t, settingsPath, strict, true)
			write(t, p.main, "settings/keep.xml", "k")
			write(t, p.main, "settings/old/gone.xml", "g")
			write(t, p.backup, "settings/backup-only.xml", "made on the backup")
			write(t, p.backup, "other/untouched.xml", "outside the sync paths")
			p.cycle()
			if err := os.RemoveAll(filepath.Join(p.main, "settings/old")); err != nil {
				t.Fatal(err)
			}
			cs, rep := p.cycle()
			if !reflect.DeepEqual(cs.Removed, []string{"settings/old/gone.xml"}) {
				t.Fatalf("removed = %v", cs.Removed)
			}
			_, gone := read(t, p.backup, "settings/old/gone.xml")
			_, extra := read(t, p.backup, "settings/backup-only.xml")
			if gone == strict || extra == strict {
				t.Fatalf("strict=%v: deleted file present %v, backup-only file present %v; report %+v", strict, gone, extra, rep)
			}
			if _, err := os.Stat(filepath.Join(p.backup, "settings/old")); strict && err == nil {
				t.Error("an emptied folder was left behind")
			}
			if _, ok := read(t, p.backup, "other/untouched.xml"); !ok {
				t.Fatal("a file outside the sync paths was deleted")
			}
			if _, ok := read(t, p.backup, "settings/keep.xml"); !ok {
				t.Fatal("a kept file is gone")
			}
		})
	}
}

func TestTimestamps(t *testing.T) {
	old := time.Date(2020, 3, 4, 5, 6, 7, 123456789, time.UTC)
	for _, preserve := range []bool{false, true} {
		t.Run(fmt.Sprint("preserve=", preserve), func(t *testing.T) {
			p := newPair(t, settingsPath, false, preserve)
			write(t, p.main, "settings/a.xml", "a")
			if err := os.Chtimes(filepath.Join(p.main, "settings/a.xml"), old, old); err != nil {
				t.Fatal(err)
			}
			p.cycle()
			fi, err := os.Stat(filepath.Join(p.backup, "settings/a.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if kept := fi.ModTime().Equal(old); kept != preserve {
				t.Fatalf("preserve=%v: backup mtime %v, source %v", preserve, fi.ModTime(), old)
			}
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
		})
	}
}

func TestFilters(t *testing.T) {
	paths := []Path{
		{Path: "settings", Include: []string{"*.xml", "printers/*.json"}, Exclude: []string{"*.tmp.xml", "cache"}},
		{Path: "./templates/"},
	}
	p := newPair(t, paths, false, true)
	for _, rel := range []string{
		"settings/a.xml", "settings/deep/er/b.xml", "settings/x.tmp.xml", "settings/c.txt",
		"settings/printers/p.json", "settings/deep/printers/q.json", "settings/cache/d.xml",
		"templates/t.btw", "other/o.xml",
	} {
		write(t, p.main, rel, rel)
	}
	// Never followed: a link to a file, a link to a folder out of the data
	// folder, and a named pipe.
	if err := os.Symlink(filepath.Join(p.main, "other/o.xml"), filepath.Join(p.main, "settings/link.xml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(p.main, "settings/outside")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Dir(p.main), "secret.xml", "outside the data folder")
	if err := os.Symlink("../secret.xml", filepath.Join(p.main, "settings/up.xml")); err != nil {
		t.Fatal(err)
	}
	cs, _ := p.cycle()
	want := []string{"settings/a.xml", "settings/deep/er/b.xml", "settings/printers/p.json", "templates/t.btw"}
	if got := keys(cs.Manifest); !reflect.DeepEqual(got, want) {
		t.Fatalf("synced %v, want %v", got, want)
	}
}

func TestSymlinkedSyncPathNotFollowed(t *testing.T) {
	p := newPair(t, settingsPath, true, true)
	outside := t.TempDir()
	write(t, outside, "x.xml", "x")
	if err := os.Symlink(outside, filepath.Join(p.main, "settings")); err != nil {
		t.Fatal(err)
	}
	m, err := Scan(p.main, settingsPath, nil)
	if err != nil || len(m) != 0 {
		t.Fatalf("scan through a symlinked sync path: %v, %v", keys(m), err)
	}
	// On the backup, a symlinked sub-folder is refused, and strict never
	// deletes through it.
	write(t, outside, "victim.xml", "v")
	if err := os.MkdirAll(filepath.Join(p.backup, "settings"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(p.backup, "settings/sub")); err != nil {
		t.Fatal(err)
	}
	cs := changeSet(t, map[string]string{"settings/sub/x.xml": "evil"})
	if _, err := Apply(p.backup, cs, p.opts); err == nil {
		t.Fatal("wrote through a symlinked folder")
	}
	if got, _ := read(t, outside, "x.xml"); got != "x" {
		t.Fatalf("file outside the data folder changed to %q", got)
	}
	if _, ok := read(t, outside, "victim.xml"); !ok {
		t.Fatal("strict deleted outside the data folder")
	}
}

// TestLinkedParentOfSyncPath: a sync path reached through a symbolic link
// inside the data folder is neither read nor, with strict, emptied.
func TestLinkedParentOfSyncPath(t *testing.T) {
	paths := []Path{{Path: "conf/settings"}}
	p := newPair(t, paths, true, true)
	write(t, p.main, "state/settings/own.xml", "the server's own file")
	if err := os.Symlink("state", filepath.Join(p.main, "conf")); err != nil {
		t.Fatal(err)
	}
	if m, err := Scan(p.main, paths, nil); err != nil || len(m) != 0 {
		t.Fatalf("scanned through a linked parent: %v, %v", keys(m), err)
	}
	write(t, p.backup, "state/settings/own.xml", "the backup's own file")
	if err := os.Symlink("state", filepath.Join(p.backup, "conf")); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(p.backup, &ChangeSet{Revision: 1, Full: true, Manifest: Manifest{}}, p.opts); err != nil {
		t.Fatal(err)
	}
	if _, ok := read(t, p.backup, "state/settings/own.xml"); !ok {
		t.Fatal("strict deleted through a linked parent")
	}
}

// changeSet builds a set carrying the given files.
func changeSet(t testing.TB, files map[string]string) *ChangeSet {
	cs := &ChangeSet{Revision: 1, Full: true, Manifest: Manifest{}, Files: map[string][]byte{}}
	for p, c := range files {
		sum := sha256.Sum256([]byte(c))
		cs.Manifest[p] = Entry{Size: int64(len(c)), Mode: 0o644, ModTime: time.Now().UnixNano(), SHA256: hex.EncodeToString(sum[:])}
		cs.Files[p] = []byte(c)
	}
	return cs
}

// craft writes a tar.gz by hand, with any entry names.
func craft(t testing.TB, hdr header, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	raw, _ := json.Marshal(hdr)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	add(headerName, raw)
	for n, c := range files {
		add(n, []byte(c))
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

func entry(c string) Entry {
	sum := sha256.Sum256([]byte(c))
	return Entry{Size: int64(len(c)), Mode: 0o644, SHA256: hex.EncodeToString(sum[:])}
}

func TestTraversalRefused(t *testing.T) {
	for _, name := range []string{"../escape.xml", "settings/../../escape.xml", "/etc/escape.xml", "settings/./a.xml", "settings//a.xml", "settings/a.xml/.."} {
		t.Run(name, func(t *testing.T) {
			// In the manifest.
			blob := craft(t, header{Format: FormatVersion, Manifest: Manifest{name: entry("x")}}, map[string]string{filePrefix + name: "x"})
			if _, err := Decode(blob); !errors.Is(err, ErrInvalidChangeSet) {
				t.Fatalf("decoded a set naming %q: %v", name, err)
			}
			// Only as a tar entry.
			blob = craft(t, header{Format: FormatVersion, Manifest: Manifest{"settings/a.xml": entry("x")}}, map[string]string{filePrefix + name: "x"})
			if _, err := Decode(blob); !errors.Is(err, ErrInvalidChangeSet) {
				t.Fatalf("decoded a set carrying %q: %v", name, err)
			}
			// In the removed list.
			blob = craft(t, header{Format: FormatVersion, Manifest: Manifest{}, Removed: []string{name}}, nil)
			if _, err := Decode(blob); !errors.Is(err, ErrInvalidChangeSet) {
				t.Fatalf("decoded a set removing %q: %v", name, err)
			}
		})
	}
	// Well-formed, but outside the target's sync paths or filters.
	dir := t.TempDir()
	for _, p := range []string{"state.json", "settings/run.sh"} {
		cs := changeSet(t, map[string]string{p: "x"})
		if _, err := Apply(dir, cs, ApplyOptions{Paths: []Path{{Path: "settings", Include: []string{"*.xml"}}}}); !errors.Is(err, ErrInvalidChangeSet) {
			t.Fatalf("applied %s outside the sync paths: %v", p, err)
		}
		if _, ok := read(t, dir, p); ok {
			t.Fatalf("%s written", p)
		}
	}
	// Content that does not match the manifest.
	blob := craft(t, header{Format: FormatVersion, Manifest: Manifest{"settings/a.xml": entry("x")}}, map[string]string{filePrefix + "settings/a.xml": "y"})
	if _, err := Decode(blob); !errors.Is(err, ErrInvalidChangeSet) {
		t.Fatalf("decoded a file not matching its manifest entry: %v", err)
	}
	// Bad sync path configuration.
	if _, err := Scan(dir, []Path{{Path: "../x"}}, nil); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("scanned ../x: %v", err)
	}
	if _, err := Scan(dir, []Path{{Path: "/etc"}}, nil); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("scanned /etc: %v", err)
	}
}

func TestSizeLimit(t *testing.T) {
	dir := t.TempDir()
	noise := make([]byte, 300<<10)
	for i := range 4 {
		_, _ = rand.Read(noise)
		write(t, dir, fmt.Sprintf("settings/blob%d.bin", i), string(noise))
	}
	m, err := Scan(dir, settingsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Build(dir, nil, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Encode(cs, 0)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("encoding 1.2 MiB of random data: %v", err)
	}
	t.Log(err)
	if _, err := Encode(cs, 2<<20); err != nil {
		t.Fatalf("with a larger limit: %v", err)
	}
}

func TestStaleReportedAndRepairedByFullCycle(t *testing.T) {
	p := newPair(t, settingsPath, true, true)
	write(t, p.main, "settings/a.xml", "a1")
	write(t, p.main, "settings/b.xml", "b1")
	p.cycle()
	// Changed on the backup while it served; and a file it never got.
	write(t, p.backup, "settings/a.xml", "changed on the backup")
	write(t, p.backup, "settings/extra.xml", "added on the backup")
	write(t, p.main, "settings/c.xml", "c1")
	_, rep := p.cycle()
	if !reflect.DeepEqual(rep.Stale, []string{"settings/a.xml"}) || rep.Complete() {
		t.Fatalf("report %+v", rep)
	}
	// The main's next full cycle overwrites them (Altova: changes made
	// during the failover are lost); strict removes the extra file.
	p.last = nil
	cs, rep := p.cycle()
	if !cs.Full || !rep.Complete() {
		t.Fatalf("full cycle: %+v", rep)
	}
	if got, _ := read(t, p.backup, "settings/a.xml"); got != "a1" {
		t.Fatalf("a.xml = %q", got)
	}
	if _, ok := read(t, p.backup, "settings/extra.xml"); ok {
		t.Fatal("strict kept a file the main does not have")
	}
}

// TestThousandFiles measures the figures of the docs: scan, encode,
// decode and apply of 1,000 small settings files.
func TestThousandFiles(t *testing.T) {
	p := newPair(t, settingsPath, true, true)
	for i := range 1000 {
		write(t, p.main, fmt.Sprintf("settings/d%02d/f%04d.xml", i%20, i),
			fmt.Sprintf("<printer id=%q><name>Printer %d</name><seats>%d</seats></printer>\n", fmt.Sprint(i), i, i%7))
	}
	t0 := time.Now()
	m, err := Scan(p.main, p.paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	tScan := time.Since(t0)
	t0 = time.Now()
	m2, _ := Scan(p.main, p.paths, m)
	tRescan := time.Since(t0)
	t0 = time.Now()
	cs, err := Build(p.main, nil, m2, 1)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := Encode(cs, 0)
	if err != nil {
		t.Fatal(err)
	}
	tEnc := time.Since(t0)
	t0 = time.Now()
	got, err := Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	tDec := time.Since(t0)
	t0 = time.Now()
	rep, err := Apply(p.backup, got, p.opts)
	if err != nil || !rep.Complete() || len(rep.Written) != 1000 {
		t.Fatalf("apply: %v %d", err, len(rep.Written))
	}
	tApply := time.Since(t0)
	t0 = time.Now()
	rep, _ = Apply(p.backup, got, p.opts)
	tReapply := time.Since(t0)
	if len(rep.Written)+len(rep.Touched) != 0 {
		t.Fatalf("re-apply wrote %d", len(rep.Written))
	}
	t.Logf("1,000 files: scan %v, rescan (hashes reused) %v, build+encode %v (%d KiB), decode %v, apply %v, re-apply (nothing to write) %v",
		tScan, tRescan, tEnc, len(blob)/1024, tDec, tApply, tReapply)
}
