package server

import "testing"

// Two writers racing (a role request and a snapshot import) may commit in
// either order; the durable epoch must end at the higher one.
func TestStoreEpochNeverGoesBack(t *testing.T) {
	dir := t.TempDir()
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	five, three := uint64(5), uint64(3)
	if err := st.write(write{epoch: &five}); err != nil {
		t.Fatal(err)
	}
	if err := st.write(write{epoch: &three}); err != nil {
		t.Fatal(err)
	}
	d, err := st.load()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	if d.epoch != 5 {
		t.Fatalf("durable epoch = %d after writing 5 then 3, want 5", d.epoch)
	}
}
