package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Operations of FuzzClientAPI; an input is a sequence of them, each an op
// byte followed by its arguments.
const (
	opCheckout  = iota // client, printer, licence, address
	opHeartbeat        // id
	opReassert         // id, client, printer, licence, address
	opRelease          // id
	opUsage            // id, jobs (8 bytes), labels (8 bytes)
	opClock            // kind, amount
	opExpire           //
	opSync             // export the active member's state, import it on the standby
	opFailover         // sync, fence the active member, promote the standby
	opSettings         // partition, reservation, group kind
	opHostile          // mutation: import a mangled copy of the active's state on a third server
	opCount
)

var (
	fuzzClients  = []string{"c0", "c1", "c2", "dock-1", "dock-2", "guest"}
	fuzzPrinters = []string{"p0", "p1", "p2", "dock-p", "q<&>\"\\"}
	fuzzLicenses = []string{"LIC-1", "LIC-2", "LIC-3", "LabelDesigner", "Other", "nope"}
	fuzzAddrs    = []string{"127.0.0.1:1000", "10.0.0.1:1000", "10.0.0.2:1000", "[2001:db8::1]:1000", "[2001:db8::2]:1000", "[2001:db8:0:1::1]:1000", "not-an-address"}
)

// fuzzInput reads operations and their arguments; past its end it reads zeros.
type fuzzInput struct {
	data []byte
	i    int
}

func (in *fuzzInput) byte() byte {
	if in.i >= len(in.data) {
		return 0
	}
	b := in.data[in.i]
	in.i++
	return b
}

func (in *fuzzInput) int64() int64 {
	var b [8]byte
	for i := range b {
		b[i] = in.byte()
	}
	return int64(binary.BigEndian.Uint64(b[:]))
}

// str returns a name of pool, or for a byte of 200 and above, that many
// minus 200 times 4 raw bytes of the input (up to 220 bytes: past the limit).
func (in *fuzzInput) str(pool []string) string {
	b := in.byte()
	if b < 200 {
		return pool[int(b)%len(pool)]
	}
	n := int(b-200) * 4
	end := min(in.i+n, len(in.data))
	s := string(in.data[in.i:end])
	in.i = end
	return s
}

// fuzzHarness drives two members of a group (the active one and a standby)
// and a third server that checks what they export.
type fuzzHarness struct {
	t       *testing.T
	active  *testServer
	standby *testServer
	checker *testServer
	handler map[*testServer]http.Handler
	ids     []string // checkout ids seen, for later operations
	epoch   uint64
	checked State // the active member's state when its export was last checked
}

// id returns a checkout id seen before (255: the last one), or for a byte
// from 240 to 254 one nobody was given.
func (h *fuzzHarness) id(in *fuzzInput) string {
	b := in.byte()
	switch {
	case len(h.ids) == 0 || (b >= 240 && b < 255):
		return fmt.Sprintf("id-%d", b)
	case b == 255:
		return h.ids[len(h.ids)-1]
	}
	return h.ids[int(b)%len(h.ids)]
}

// do sends a client API request to the active member and checks the answer
// is one the API documents.
func (h *fuzzHarness) do(method, path string, body any, addr string) (int, []byte) {
	h.t.Helper()
	var r *bytes.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	} else {
		r = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, "http://server"+path, r)
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	h.handler[h.active].ServeHTTP(rec, req)
	switch rec.Code {
	case 200, 201, 204, 400, 403, 404, 409, 413, 429, 507:
	default:
		h.t.Fatalf("%s %s %v: answer %d %s", method, path, body, rec.Code, rec.Body.String())
	}
	if rec.Code == 200 || rec.Code == 201 {
		var c Checkout
		if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || c.ID == "" {
			h.t.Fatalf("%s %s: answer %d without a checkout: %s", method, path, rec.Code, rec.Body.String())
		}
		h.ids = append(h.ids, c.ID)
	}
	return rec.Code, rec.Body.Bytes()
}

func (h *fuzzHarness) sync() {
	h.t.Helper()
	if err := h.standby.Import(h.active.Export()); err != nil {
		h.t.Fatalf("the standby refused the active member's state: %v", err)
	}
}

func (h *fuzzHarness) step(in *fuzzInput) {
	t := h.t
	switch op := in.byte() % opCount; op {
	case opCheckout:
		req := CheckoutRequest{in.str(fuzzClients), in.str(fuzzPrinters), in.str(fuzzLicenses)}
		h.do(http.MethodPost, "/v1/checkouts", req, in.str(fuzzAddrs))
	case opHeartbeat:
		h.do(http.MethodPut, "/v1/checkouts/"+h.id(in), nil, "127.0.0.1:1")
	case opReassert:
		id := h.id(in)
		req := CheckoutRequest{in.str(fuzzClients), in.str(fuzzPrinters), in.str(fuzzLicenses)}
		h.do(http.MethodPut, "/v1/checkouts/"+id, req, in.str(fuzzAddrs))
	case opRelease:
		h.do(http.MethodDelete, "/v1/checkouts/"+h.id(in), nil, "127.0.0.1:1")
	case opUsage:
		id := h.id(in)
		h.do(http.MethodPost, "/v1/checkouts/"+id+"/usage", UsageReport{Jobs: in.int64(), Labels: in.int64()}, "127.0.0.1:1")
	case opClock:
		kind, n := in.byte(), int(in.byte())
		for _, c := range []*clock{h.active.clock, h.standby.clock, h.checker.clock} {
			switch kind % 3 {
			case 0:
				c.Advance(secs(n))
			case 1:
				c.Advance(secs(n * 3600))
			default:
				c.Advance(secs(31 * 24 * 3600)) // the next month
			}
		}
	case opExpire:
		h.active.ExpireCheckouts()
	case opSync:
		h.sync()
	case opFailover:
		h.sync()
		h.epoch++
		if err := h.active.SetRole(RoleRequest{Role: RoleStandby, Epoch: h.epoch, Active: h.standby.opts.Member}); err != nil {
			t.Fatal(err)
		}
		if err := h.standby.SetRole(RoleRequest{Role: RoleActive, Epoch: h.epoch}); err != nil {
			t.Fatal(err)
		}
		h.active, h.standby = h.standby, h.active
	case opSettings:
		b, part, res := in.byte(), int(in.byte()%4), int(in.byte()%4)
		set := Settings{
			PrinterGroups: map[string][]string{"dock": {"dock-*"}},
			Partitions:    map[string]map[string]int{"dock": {"LIC-1": part}},
			ClientGroups:  map[string]ClientGroup{"r": {Clients: []string{"dock-*"}}},
			Reservations:  map[string]map[string]int{"r": {"LIC-1": res, "LIC-2": res / 2}},
		}
		if b%2 == 1 {
			set.ClientGroups["r"] = ClientGroup{Addresses: []string{"10.0.0.0/8", "2001:db8::/64"}}
		}
		if b%4 >= 2 {
			set.ClientGroups["all"] = ClientGroup{Clients: []string{"*"}}
			set.Reservations["all"] = map[string]int{"LIC-3": res * 10}
		}
		if err := h.active.SetSettings(set); err != nil {
			t.Fatalf("settings %+v: %v", set, err)
		}
	case opHostile:
		snap := h.active.Export()
		m := in.byte()
		for i := range snap.Usage {
			u := &snap.Usage[i]
			switch (int(m) + i) % 5 {
			case 0:
				u.Jobs, u.Labels = -u.Jobs-1, math.MinInt64
			case 1:
				u.Period = ""
			case 2:
				u.Checkouts = math.MaxInt64
			}
		}
		if m%2 == 1 {
			snap.Usage = append(snap.Usage, snap.Usage...)
		}
		for i := 0; i < int(m%8)*10; i++ {
			snap.Usage = append(snap.Usage, UsageRecord{License: "LIC-1", Printer: strings.Repeat("<", 100) + fmt.Sprint(i),
				Period: fmt.Sprintf("2026-%02d", 1+i%12), Checkouts: Count(i), Jobs: -1, LastUse: testStart})
		}
		h.checker.resetForFuzz(RoleStandby)
		if err := h.checker.Import(snap); err != nil {
			t.Fatalf("a state with bad counts and too many rows was refused: %v", err)
		}
		h.checkServer("checker", h.checker)
		if err := h.checker.Import(h.checker.Export()); err != nil {
			t.Fatalf("the corrected state does not import again: %v", err)
		}
	}
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// check verifies the invariants on both members, and that the active
// member's state, through JSON, is imported by a fresh standby unchanged.
func (h *fuzzHarness) check() {
	t := h.t
	h.checkServer("active", h.active)
	h.checkServer("standby", h.standby)
	// The export changes only with the revision (and the member and epoch
	// after a failover), and with the clock through heartbeats and
	// promotions, which the checks below do not depend on.
	st := h.active.State()
	if st.Member == h.checked.Member && st.Revision == h.checked.Revision && st.Epoch == h.checked.Epoch {
		return
	}
	h.checked = st
	snap := h.active.Export()
	raw, err := json.Marshal(snap)
	if err != nil {
		t.Fatalf("encoding the active member's state: %v", err)
	}
	var back Snapshot
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("decoding the active member's state: %v", err)
	}
	h.checker.resetForFuzz(RoleStandby)
	if err := h.checker.Import(&back); err != nil {
		t.Fatalf("a standby refused the active member's state: %v", err)
	}
	got := h.checker.Export()
	if !reflect.DeepEqual(got.Usage, snap.Usage) || !reflect.DeepEqual(got.Checkouts, snap.Checkouts) {
		t.Fatalf("import changed the state:\n got %+v\nwant %+v", got, snap)
	}
	if c := h.checker.State().Corrections; c != nil {
		t.Fatalf("import of the active member's state corrected it: %+v", c)
	}
}

// checkServer verifies one server's invariants: indices consistent with
// its checkouts, seats within the licences, counts not negative, usage and
// checkouts within their budgets.
func (h *fuzzHarness) checkServer(name string, ts *testServer) {
	t := h.t
	s := ts.Server
	s.mu.Lock()
	defer s.mu.Unlock()
	inUse, perClient, perSource := map[string]int{}, map[string]int{}, map[string]int{}
	partUse, resUse := map[string]map[string]int{}, map[string]map[string]int{}
	coBytes := 0
	for id, c := range s.checkouts {
		if id != c.ID || s.seats[seatKey{c.License, c.Client, c.Printer}] != c {
			t.Fatalf("%s: checkout %s is not indexed", name, id)
		}
		inUse[c.License]++
		perClient[c.Client]++
		if c.source != "" {
			perSource[c.source]++
		}
		for _, g := range c.partitions {
			incr2(partUse, g, c.License)
		}
		if c.group != "" {
			incr2(resUse, c.group, c.License)
		}
		if c.bytes != checkoutRowBytes(&c.CheckoutRecord) {
			t.Fatalf("%s: checkout %s weighs %d, counted %d", name, id, checkoutRowBytes(&c.CheckoutRecord), c.bytes)
		}
		coBytes += c.bytes
	}
	nonEmpty := func(m map[string]map[string]int) map[string]map[string]int {
		out := map[string]map[string]int{}
		for k, v := range m {
			if len(v) > 0 {
				out[k] = v
			}
		}
		return out
	}
	switch {
	case len(s.seats) != len(s.checkouts):
		t.Fatalf("%s: %d seats for %d checkouts", name, len(s.seats), len(s.checkouts))
	case !reflect.DeepEqual(inUse, s.inUse), !reflect.DeepEqual(perClient, s.perClient), !reflect.DeepEqual(perSource, s.perSource):
		t.Fatalf("%s: counts %v %v %v, indices %v %v %v", name, inUse, perClient, perSource, s.inUse, s.perClient, s.perSource)
	case !reflect.DeepEqual(partUse, nonEmpty(s.partUse)), !reflect.DeepEqual(resUse, nonEmpty(s.resUse)):
		t.Fatalf("%s: groups %v %v, indices %v %v", name, partUse, resUse, s.partUse, s.resUse)
	case coBytes != s.coBytes:
		t.Fatalf("%s: checkouts weigh %d, counted %d", name, coBytes, s.coBytes)
	}
	for lic, n := range inUse {
		if l := s.licenses[lic]; l != nil && n > l.Printers {
			t.Fatalf("%s: %d seats of licence %s in use, it has %d", name, n, lic, l.Printers)
		}
	}
	if max := s.opts.MaxCheckoutsPerAddress; max > 0 {
		for src, n := range perSource {
			if n > max {
				t.Fatalf("%s: %d checkouts from %s, the limit is %d", name, n, src, max)
			}
		}
	}

	u := s.usage
	rows, detail, size := map[string]int{}, map[string]int{}, 0
	for k, r := range u.rows {
		if k != (usageKey{r.Period, r.License, r.Printer}) {
			t.Fatalf("%s: usage row %+v under key %+v", name, r, k)
		}
		if r.Checkouts < 0 || r.Jobs < 0 || r.Labels < 0 {
			t.Fatalf("%s: negative usage count %+v", name, r)
		}
		rows[k.period]++
		if k.printer != OtherPrinter {
			detail[k.period]++
		}
		size += usageRowBytes(r)
	}
	for p, n := range detail {
		if n > u.lim.rowsPerPeriod {
			t.Fatalf("%s: %d usage rows in %s, the cap is %d", name, n, p, u.lim.rowsPerPeriod)
		}
	}
	if size != u.bytes || !reflect.DeepEqual(rows, nonZero(u.periods)) || !reflect.DeepEqual(detail, nonZero(u.detail)) {
		t.Fatalf("%s: usage of %d bytes %v %v, counted %d %v %v", name, size, rows, detail, u.bytes, u.periods, u.detail)
	}
	raw, err := json.Marshal(u.records())
	if err != nil || len(raw) > u.lim.budget {
		t.Fatalf("%s: usage is %d bytes of JSON (%v), over the budget of %d", name, len(raw), err, u.lim.budget)
	}
	// The estimate between measurements has a margin of its own; the
	// budget keeps it below the agent's limit (900 KiB of 800). Below the
	// budget uncompressed, compression cannot exceed it.
	if limit := s.coBudget * 9 / 8; coBytes+checkoutArrayBytes+64 > limit {
		recs := make([]CheckoutRecord, 0, len(s.checkouts))
		for _, c := range s.checkouts {
			recs = append(recs, c.CheckoutRecord)
		}
		if n := gzipJSONSize(recs); n > limit {
			t.Fatalf("%s: %d checkouts take %d bytes compressed, over %d", name, len(recs), n, limit)
		}
	}
}

func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// resetForFuzz returns a server to an empty state in role, keeping its
// store, licences and limits: opening a store per fuzz input would take the
// fuzzer's time.
func (s *Server) resetForFuzz(role Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.role, s.epoch, s.revision, s.seq, s.serveUntil, s.active = role, 0, 0, 0, 0, ""
	if role == RoleActive {
		s.active = s.opts.Member
	}
	s.settings = Settings{}
	s.rules, _ = compileSettings(Settings{})
	s.checkouts, s.seats = map[string]*checkout{}, map[seatKey]*checkout{}
	s.inUse, s.perClient, s.perSource = map[string]int{}, map[string]int{}, map[string]int{}
	s.partUse, s.resUse = map[string]map[string]int{}, map[string]map[string]int{}
	s.corr = Corrections{}
	s.usage = newUsageTable(s.usage.lim, &s.corr, s.log)
	s.coBytes, s.coAdded, s.coChanges, s.coImports, s.coMeasure = 0, 0, 0, 0, measurement{}
}

// fuzzSeed encodes operations for the seed corpus.
func fuzzSeed(ops ...[]byte) []byte {
	var out []byte
	for _, op := range ops {
		out = append(out, op...)
	}
	return out
}

func fuzzInt64(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return b[:]
}

// FuzzClientAPI runs sequences of client API requests (checkouts,
// heartbeats, re-assertions, releases, usage reports, with client-chosen
// names, ids and addresses) against the active member of a two-member group,
// interleaved with clock steps, state synchronisation, failovers, settings
// with partitions and reservations, and imports of mangled state. After
// every operation it checks: indices consistent with the checkouts, seats in
// use within every licence, the per-address limit held, usage counts not
// negative, usage rows within the monthly cap and the size budget, checkouts
// within theirs, and the active member's state imported by a fresh standby
// unchanged and without corrections. The budgets are lowered so that short
// inputs reach them.
func FuzzClientAPI(f *testing.F) {
	sg := newSigner(f)
	dir := f.TempDir()
	sg.write(f, dir, "lic-1.lic", sg.license("LIC-1", "LabelDesigner", 3))
	sg.write(f, dir, "lic-2.lic", sg.license("LIC-2", "LabelDesigner", 2))
	sg.write(f, dir, "lic-3.lic", sg.license("LIC-3", "Other", 40))
	opts := []option{withLicenseDir(dir), withMaxPerClient(4), withMaxPerAddress(6), withUsageLimits(4, 3)}
	a := newTestServer(f, sg, append(opts, withMember("a"))...)
	b := newTestServer(f, sg, append(opts, withMember("b"), withRole(RoleStandby))...)
	c := newTestServer(f, sg, append(opts, withMember("c"), withRole(RoleStandby))...)
	handler := map[*testServer]http.Handler{}
	for _, ts := range []*testServer{a, b, c} {
		ts.store.db.NoSync = true
		ts.usage.lim.budget = 6 << 10
		ts.coBudget = 2 << 10
		handler[ts] = ts.ClientHandler(1 << 10)
	}

	// long is a raw name of 4n bytes that compress badly.
	seed := uint32(1)
	long := func(n byte) []byte {
		out := []byte{200 + n}
		for i := 0; i < int(n)*4; i++ {
			seed = seed*1664525 + 1013904223
			out = append(out, ' '+byte(seed>>24)%94)
		}
		return out
	}
	// Counters at the int64 maximum, synced and failed over.
	f.Add(fuzzSeed(
		[]byte{opCheckout, 0, 0, 0, 0},
		append(append([]byte{opUsage, 0}, fuzzInt64(math.MaxInt64)...), fuzzInt64(math.MaxInt64)...),
		append(append([]byte{opUsage, 0}, fuzzInt64(math.MaxInt64)...), fuzzInt64(-1)...),
		append(append([]byte{opUsage, 0}, fuzzInt64(math.MaxInt64)...), fuzzInt64(math.MaxInt64)...),
		[]byte{opSync, opFailover},
		append(append([]byte{opUsage, 0}, fuzzInt64(1)...), fuzzInt64(1)...),
		[]byte{opHostile, 3},
	))
	// Distinct printer names, released each time, over three months.
	var printers []byte
	for m := 0; m < 3; m++ {
		for i := byte(0); i < 12; i++ {
			printers = append(printers, opCheckout, 2)
			printers = append(printers, append([]byte{201 + i%10}, bytes.Repeat([]byte{'a' + i, 'b' + byte(m)}, int(1+i%10)*2)...)...)
			printers = append(printers, 2, 0, opRelease, 255)
		}
		printers = append(printers, opClock, 2, 0, opSync)
	}
	f.Add(printers)
	// One address rotating client ids; an IPv6 /64 likewise.
	f.Add(fuzzSeed(
		[]byte{opCheckout, 0, 0, 2, 1, opCheckout, 1, 1, 2, 1, opCheckout, 2, 2, 2, 1, opCheckout, 3, 3, 2, 1},
		[]byte{opCheckout, 4, 4, 2, 1, opCheckout, 5, 0, 2, 1, opCheckout, 0, 1, 2, 1, opCheckout, 1, 2, 2, 1},
		[]byte{opCheckout, 0, 0, 2, 3, opCheckout, 1, 0, 2, 4, opCheckout, 2, 0, 2, 5},
		[]byte{opReassert, 250, 2, 3, 2, 1, opFailover, opReassert, 251, 5, 4, 2, 1},
	))
	// Reservations and partitions, then members and others competing.
	f.Add(fuzzSeed(
		[]byte{opSettings, 0, 2, 2, opCheckout, 0, 0, 0, 0, opCheckout, 1, 1, 0, 0, opCheckout, 3, 3, 0, 0},
		[]byte{opSettings, 1, 3, 3, opCheckout, 2, 2, 0, 1, opCheckout, 4, 3, 0, 2, opFailover, opCheckout, 3, 1, 0, 0},
		[]byte{opClock, 0, 31, opExpire, opCheckout, 5, 2, 0, 0, opSettings, 2, 0, 3, opCheckout, 0, 0, 2, 0},
	))
	// Long names: the checkout budget fills and is freed again.
	var fill []byte
	for i := byte(0); i < 30; i++ {
		fill = append(fill, opCheckout)
		fill = append(fill, long(8+i%4)...)
		fill = append(fill, long(12-i%4)...)
		fill = append(fill, 2, i%6)
	}
	fill = append(fill, opSync, opClock, 1, 1, opExpire, opSync, opCheckout, 0, 0, 2, 0)
	f.Add(fill)
	// Bad input: control characters, the reserved printer, negative counts.
	f.Add(fuzzSeed(
		[]byte{opCheckout, 201, 'a', 7, 'b', 'c', 0, 0, 0},
		[]byte{opCheckout, 0, 201, '*', 0, 0, 0, 0},
		append(append([]byte{opCheckout, 0, 0, 0, 0, opUsage, 0}, fuzzInt64(-5)...), fuzzInt64(3)...),
		[]byte{opReassert, 241, 0, 0, 0, 6, opHeartbeat, 243, opRelease, 244, opHostile, 0},
	))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		for _, ts := range []*testServer{a, b, c} {
			ts.clock.mu.Lock()
			ts.clock.t = testStart
			ts.clock.mu.Unlock()
		}
		a.resetForFuzz(RoleActive)
		b.resetForFuzz(RoleStandby)
		h := &fuzzHarness{t: t, active: a, standby: b, checker: c, handler: handler}
		in := &fuzzInput{data: data}
		for n := 0; in.i < len(in.data) && n < 150; n++ {
			h.step(in)
			h.check()
		}
	})
}
