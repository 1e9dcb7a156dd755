package sync

import (
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and
// whatever it accepts names only clean relative paths whose contents match
// the manifest, and re-encodes.
func FuzzDecode(f *testing.F) {
	cs := &ChangeSet{Revision: 7, Full: true, Manifest: Manifest{}, Files: map[string][]byte{}}
	for p, c := range map[string]string{"settings/a.xml": "<a/>", "settings/sub/b.json": "{}"} {
		e := entry(c)
		cs.Manifest[p], cs.Files[p] = e, []byte(c)
	}
	cs.Removed = []string{"settings/old.xml"}
	blob, err := Encode(cs, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add(craft(f, header{Format: FormatVersion, Manifest: Manifest{"../x": entry("x")}}, map[string]string{"files/../x": "x"}))
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		if err != nil {
			return
		}
		for p := range got.Manifest {
			if validRel(p) != nil {
				t.Fatalf("accepted %q", p)
			}
		}
		for p, b := range got.Files {
			if e, ok := got.Manifest[p]; !ok || e.SHA256 != entry(string(b)).SHA256 || e.Size != int64(len(b)) {
				t.Fatalf("accepted %q not matching its manifest entry", p)
			}
		}
		if _, err := Encode(got, 64<<20); err != nil {
			t.Fatalf("re-encoding an accepted set: %v", err)
		}
	})
}
