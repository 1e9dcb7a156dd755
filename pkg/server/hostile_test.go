package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// isNotFound reports whether err is a not_found answer.
func isNotFound(err error) bool {
	_, body := errorStatus(err)
	return body.Code == CodeNotFound
}

// agentObjectLimit is the bound the member's agent puts on each of the two
// synced-state objects' compressed data (internal/agent/statesync.go).
const agentObjectLimit = 900 * 1024

// syncedSizes encodes a snapshot the way the agent publishes it: settings and
// usage gzip-compressed in the ConfigMap, checkouts in the Secret. It returns
// the compressed bytes of each object.
func syncedSizes(t testing.TB, snap *Snapshot) (configMap, secret int) {
	t.Helper()
	gz := func(v any) int {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if err := json.NewEncoder(w).Encode(v); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Len()
	}
	return gz(snap.Settings) + gz(snap.Usage), gz(snap.Checkouts)
}

// randomName returns n printable ASCII characters that JSON needs no escape
// for and gzip cannot shrink much: what a hostile client sends.
func randomName(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:;,=+!#$%()[]{}|~^@ "
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// Two usage reports of the largest count must not wrap the counters around:
// they stop at the maximum, and a standby still imports the state.
func TestUsageCountersSaturate(t *testing.T) {
	sg := newSigner(t)
	a := newTestServer(t, sg)
	b := newTestServer(t, sg, withRole(RoleStandby), withMember("b"))
	_, c, _ := a.checkout(t, "alice", "p1", "LIC-1")
	for i := 0; i < 3; i++ {
		body := fmt.Sprintf(`{"jobs":%d,"labels":%d}`, int64(math.MaxInt64), int64(math.MaxInt64))
		if code := call(t, http.MethodPost, a.client.URL+"/v1/checkouts/"+c.ID+"/usage", body, nil); code != http.StatusNoContent {
			t.Fatalf("usage report %d = %d, want 204", i, code)
		}
	}
	u := a.Usage()
	if len(u) != 1 || u[0].Jobs != math.MaxInt64 || u[0].Labels != math.MaxInt64 || u[0].Checkouts != 1 {
		t.Fatalf("usage after reports of the largest count = %+v, want jobs and labels at the int64 maximum", u)
	}
	if _, err := b.adminClient().Import(context.Background(), a.Export()); err != nil {
		t.Fatalf("standby refused the state of saturated counters: %v", err)
	}
}

// A peer that wrapped its counters (an older server) or wrote numbers beyond
// int64 must not stop the standbys from taking its state: the import clamps
// the counts and keeps everything else.
func TestImportClampsCountsAPeerWrote(t *testing.T) {
	b := newTestServer(t, newSigner(t), withRole(RoleStandby), withMember("b"))
	raw := `{"formatVersion":1,"group":"printing/plant-a","member":"a","revision":5,"epoch":1,
	  "takenAt":"2026-03-01T12:00:00Z","settings":{"access":{}},
	  "usage":[{"license":"LIC-1","printer":"p1","checkouts":-3,"jobs":-9223372036854775807,"labels":99999999999999999999,"lastUse":"2026-03-01T11:00:00Z"},
	           {"license":"LIC-1","printer":"p2","checkouts":2,"jobs":1e30,"labels":-1e30,"lastUse":"2026-03-01T11:00:00Z"}],
	  "checkouts":[{"id":"c1","client":"alice","printer":"p1","requested":"LIC-1","license":"LIC-1","expiresAt":"2026-03-01T12:00:30Z"}]}`
	var st State
	if code := call(t, http.MethodPut, b.admin.URL+"/admin/v1/snapshot", raw, &st); code != http.StatusOK || st.Revision != 5 {
		t.Fatalf("import of a snapshot with wrapped and overflowing counts = %d %+v, want 200 at revision 5", code, st)
	}
	got := map[string]UsageRecord{}
	for _, u := range b.Usage() {
		got[u.Printer] = u
		if u.Checkouts < 0 || u.Jobs < 0 || u.Labels < 0 {
			t.Fatalf("negative count after import: %+v", u)
		}
	}
	if p1 := got["p1"]; p1.Checkouts != 0 || p1.Jobs != 0 || p1.Labels != math.MaxInt64 {
		t.Fatalf("p1 = %+v, want checkouts and jobs clamped to 0, labels to the maximum", p1)
	}
	if p2 := got["p2"]; p2.Checkouts != 2 || p2.Jobs != math.MaxInt64 || p2.Labels != 0 {
		t.Fatalf("p2 = %+v, want jobs at the maximum, labels 0", p2)
	}
	if n := b.Status().Checkouts; n != 1 {
		t.Fatalf("standby holds %d checkouts, want the snapshot's 1", n)
	}
	// The corrected state is exported and imported again as it is.
	if err := b.Import(b.Export()); err != nil {
		t.Fatalf("re-import of the corrected state: %v", err)
	}
}

// Checkouts on thousands of distinct printer names must not grow the usage
// statistics without bound: the synced state stays below the agent's limit,
// and no checkout goes uncounted.
func TestUsageRowsStayBounded(t *testing.T) {
	sg := newSigner(t)
	a := newTestServer(t, sg)
	b := newTestServer(t, sg, withRole(RoleStandby), withMember("b"))
	r := rand.New(rand.NewPCG(1, 2))
	const n = 12_000
	for i := 0; i < n; i++ {
		c, err := a.Checkout(CheckoutRequest{Client: "mallory", Printer: randomName(r, 128), License: "LIC-1"}, "", netip.Addr{})
		if err != nil {
			t.Fatalf("checkout %d: %v", i, err)
		}
		if err := a.ReportUsage(c.ID, UsageReport{Jobs: 1, Labels: 1}); err != nil {
			t.Fatal(err)
		}
		if err := a.Release(c.ID); err != nil {
			t.Fatal(err)
		}
	}
	snap := a.Export()
	var checkouts, jobs int64
	for _, u := range snap.Usage {
		checkouts += int64(u.Checkouts)
		jobs += int64(u.Jobs)
	}
	if checkouts != n || jobs != n {
		t.Fatalf("usage counts %d checkouts and %d jobs, want %d of each", checkouts, jobs, n)
	}
	if len(snap.Usage) > 1100 {
		t.Fatalf("%d usage rows after %d distinct printers, want the rows bounded", len(snap.Usage), n)
	}
	cm, _ := syncedSizes(t, snap)
	t.Logf("%d usage rows take %d bytes compressed", len(snap.Usage), cm)
	if cm > agentObjectLimit {
		t.Fatalf("settings and usage take %d bytes compressed, over the agent's limit of %d", cm, agentObjectLimit)
	}
	if err := b.Import(snap); err != nil {
		t.Fatalf("standby refused the state: %v", err)
	}
}

// A client that sends a new client id with every checkout is still one
// source: the per-client limit holds across its ids.
func TestPerClientLimitHoldsAcrossClientIDs(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "lic-1.lic", 10)
	ts := newTestServer(t, sg, withLicenseDir(dir), withMaxPerClient(2))
	for i := 0; i < 2; i++ {
		if code, _, e := ts.checkout(t, fmt.Sprintf("rotating-%d", i), fmt.Sprintf("p%d", i), "LIC-1"); code != http.StatusCreated {
			t.Fatalf("checkout %d = %d %+v, want 201", i, code, e)
		}
	}
	code, _, e := ts.checkout(t, "rotating-2", "p2", "LIC-1")
	if code != http.StatusTooManyRequests || e.Code != CodeTooManyCheckouts {
		t.Fatalf("third checkout from the same address under a new client id = %d %+v, want 429 too_many_checkouts", code, e)
	}
	// Re-asserting an unknown checkout under yet another id is held too.
	var re Error
	code = call(t, http.MethodPut, ts.client.URL+"/v1/checkouts/abc123", CheckoutRequest{"rotating-3", "p3", "LIC-1"}, &re)
	if code != http.StatusTooManyRequests || re.Code != CodeTooManyCheckouts {
		t.Fatalf("re-assertion from the same address under a new client id = %d %+v, want 429", code, re)
	}
	if got := ts.Status().Checkouts; got != 2 {
		t.Fatalf("%d checkouts held, want 2", got)
	}
}

// Clients holding every seat of a large licence under long random names must
// not push the checkouts past the agent's limit: beyond the server's budget
// new checkouts are refused (507 state_full) and the state still syncs.
func TestCheckoutStateStaysBounded(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "big.lic", 20_000)
	a := newTestServer(t, sg, withLicenseDir(dir))
	b := newTestServer(t, sg, withLicenseDir(dir), withRole(RoleStandby), withMember("b"))
	r := rand.New(rand.NewPCG(3, 4))
	granted, refused := 0, 0
	for i := 0; i < 8000; i++ {
		_, err := a.Checkout(CheckoutRequest{Client: randomName(r, 128), Printer: randomName(r, 128), License: "LIC-1"}, "", netip.Addr{})
		if err != nil {
			status, body := errorStatus(err)
			if status != http.StatusInsufficientStorage || body.Code != "state_full" {
				t.Fatalf("checkout %d: %d %+v, want 201 or 507 state_full", i, status, body)
			}
			refused++
			continue
		}
		granted++
	}
	snap := a.Export()
	_, sec := syncedSizes(t, snap)
	t.Logf("%d checkouts granted, %d refused; they take %d bytes compressed", granted, refused, sec)
	if sec > agentObjectLimit {
		t.Fatalf("%d checkouts take %d bytes compressed, over the agent's limit of %d", granted, sec, agentObjectLimit)
	}
	if refused == 0 || granted < 2000 {
		t.Fatalf("%d granted, %d refused; want the budget to hold thousands and refuse the rest", granted, refused)
	}
	if err := b.Import(snap); err != nil {
		t.Fatalf("standby refused the state: %v", err)
	}
}

// Concurrent checkouts and releases near a full budget, with measurements in
// between, keep the checkouts within it (run with -race).
func TestCheckoutBudgetUnderConcurrency(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "big.lic", 10_000)
	a := newTestServer(t, sg, withLicenseDir(dir))
	a.mu.Lock()
	a.coBudget = 32 << 10
	a.mu.Unlock()
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			var held []string
			for i := 0; i < 400; i++ {
				c, err := a.Checkout(CheckoutRequest{Client: randomName(r, 40), Printer: randomName(r, 40), License: "LIC-1"}, "", netip.Addr{})
				if err == nil {
					held = append(held, c.ID)
				} else if status, _ := errorStatus(err); status != http.StatusInsufficientStorage {
					done <- err
					return
				}
				if i%3 == 0 && len(held) > 0 {
					// Expired checkouts (the clock moves) are gone already.
					if err := a.Release(held[0]); err != nil && !isNotFound(err) {
						done <- err
						return
					}
					held = held[1:]
				}
				if i%50 == 0 {
					a.clock.Advance(time.Second)
				}
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, sec := syncedSizes(t, a.Export()); sec > 36<<10 {
		t.Fatalf("checkouts take %d bytes compressed, over the budget's %d (with the agent's margin)", sec, 36<<10)
	}
}
