package server

import (
	"encoding/json"
	"testing"
)

// FuzzImportSnapshot feeds arbitrary bytes to the snapshot endpoint's decoder
// and Import: nothing may panic, and a snapshot that is accepted must leave a
// state whose export is accepted again (indices consistent with checkouts).
func FuzzImportSnapshot(f *testing.F) {
	sg := newSigner(f)
	seed := newTestServer(f, sg)
	seed.checkout(f, "alice", "p1", "LIC-1")
	if err := seed.SetSettings(Settings{PrinterGroups: map[string][]string{"g": {"p*"}}, Partitions: map[string]map[string]int{"g": {"LIC-1": 1}}}); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(seed.Export())
	f.Add(good)
	f.Add([]byte(`{"formatVersion":1,"group":"printing/plant-a","checkouts":[{"id":"x","client":"c","printer":"p","license":"L"},{"id":"x","client":"c","printer":"p","license":"L"}]}`))
	f.Add([]byte(`{"formatVersion":2}`))
	f.Add([]byte(`{"formatVersion":1,"group":"printing/plant-a","usage":[{"license":"L","printer":"p","jobs":-1}]}`))

	ts := newTestServer(f, sg, withRole(RoleStandby))
	f.Fuzz(func(t *testing.T, data []byte) {
		var snap Snapshot
		if err := json.Unmarshal(data, &snap); err != nil {
			return
		}
		// Staleness is tested elsewhere; keep every input importable so the
		// fuzzer explores the contents rather than the epoch check.
		st := ts.State()
		snap.Epoch, snap.Revision = st.Epoch, st.Revision
		if err := ts.Import(&snap); err != nil {
			return
		}
		out := ts.Export()
		if len(out.Checkouts) != len(snap.Checkouts) {
			t.Fatalf("imported %d checkouts, export has %d", len(snap.Checkouts), len(out.Checkouts))
		}
		if st := ts.Status(); st.Checkouts != len(out.Checkouts) {
			t.Fatalf("status counts %d checkouts, export has %d", st.Checkouts, len(out.Checkouts))
		}
		if err := ts.Import(out); err != nil {
			t.Fatalf("re-import of the export refused: %v", err)
		}
	})
}
