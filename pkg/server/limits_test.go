package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Client-supplied strings are bounded and checked; the answer names the
// field and says what is allowed.
func TestClientStringsAreValidated(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	long := strings.Repeat("x", MaxNameBytes+1)
	cases := []struct {
		name, method, path, body string
		field, msg               string
	}{
		{"long client", "POST", "/v1/checkouts", `{"client":"` + long + `","printer":"p","license":"LIC-1"}`, "client", "is 129 bytes long; allowed are 1 to 128 bytes of printable UTF-8"},
		{"long printer", "POST", "/v1/checkouts", `{"client":"a","printer":"` + long + `","license":"LIC-1"}`, "printer", "is 129 bytes long"},
		{"long license", "POST", "/v1/checkouts", `{"client":"a","printer":"p","license":"` + long + `"}`, "license", "is 129 bytes long"},
		{"control character", "POST", "/v1/checkouts", `{"client":"a\u0007b","printer":"p","license":"LIC-1"}`, "client", "non-printable character U+0007"},
		{"line separator", "POST", "/v1/checkouts", `{"client":"a","printer":"p\u2028","license":"LIC-1"}`, "printer", "non-printable character U+2028"},
		{"empty printer", "POST", "/v1/checkouts", `{"client":"a","printer":"","license":"LIC-1"}`, "printer", "must not be empty"},
		{"reserved printer", "POST", "/v1/checkouts", `{"client":"a","printer":"*","license":"LIC-1"}`, "printer", "is reserved"},
		{"long id", "PUT", "/v1/checkouts/" + strings.Repeat("a", MaxIDBytes+1), `{"client":"a","printer":"p","license":"LIC-1"}`, "id", "allowed are 1 to 64 bytes of letters"},
		{"id with a space", "PUT", "/v1/checkouts/a%20b", `{"client":"a","printer":"p","license":"LIC-1"}`, "id", "contains ' '"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Error
			code := call(t, tc.method, ts.client.URL+tc.path, tc.body, &e)
			if code != http.StatusBadRequest || e.Code != CodeBadRequest || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("%s %s = %d %+v, want 400 naming %q saying %q", tc.method, tc.path, code, e, tc.field, tc.msg)
			}
		})
	}
	// Names of other scripts, spaces and punctuation are fine.
	if code, _, e := ts.checkout(t, "Jürgen Müller (Lager)", "Zebra ZT410 – Halle 3", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout with printable non-ASCII names = %d %+v, want 201", code, e)
	}
}

// A reservation keeps seats of a licence for a client group: other clients
// cannot take them, members can, and beyond their reservation members share
// the remaining seats like everybody else.
func TestReservationsKeepSeats(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "lic-1.lic", 4)
	a := newTestServer(t, sg, withLicenseDir(dir))
	b := newTestServer(t, sg, withLicenseDir(dir), withRole(RoleStandby), withMember("b"))
	settings := Settings{
		ClientGroups: map[string]ClientGroup{"dock": {Clients: []string{"dock-*"}}},
		Reservations: map[string]map[string]int{"dock": {"LIC-1": 2}},
	}
	if err := a.adminClient().SetSettings(context.Background(), settings); err != nil {
		t.Fatal(err)
	}
	want := func(ts *testServer, client, printer string, status int, msg string) Checkout {
		t.Helper()
		code, c, e := ts.checkout(t, client, printer, "LIC-1")
		if code != status || !strings.Contains(e.Message, msg) {
			t.Fatalf("checkout by %s = %d %+v, want %d %q", client, code, e, status, msg)
		}
		return c
	}
	office := want(a, "office-1", "o1", 201, "")
	want(a, "office-2", "o2", 201, "")
	want(a, "office-3", "o3", 409, "the 2 free seats of licence LIC-1 are reserved for the client groups dock")
	want(a, "dock-1", "d1", 201, "")
	want(a, "dock-2", "d2", 201, "")
	want(a, "dock-3", "d3", 409, "all 4 printer seats")

	// Beyond its reservation a member competes for the unreserved seats.
	if err := a.Release(office.ID); err != nil {
		t.Fatal(err)
	}
	want(a, "dock-3", "d3", 201, "")

	// The standby counts the reservation from the imported checkouts.
	if err := b.Import(a.Export()); err != nil {
		t.Fatal(err)
	}
	if err := b.SetRole(RoleRequest{Role: RoleActive, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range b.Export().Checkouts {
		if c.Client == "office-2" {
			if err := b.Release(c.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	want(b, "office-9", "o9", 201, "")

	// A group can also be an address range, which a client cannot change by
	// choosing another id.
	c := newTestServer(t, sg, withLicenseDir(dir))
	if err := c.SetSettings(Settings{
		ClientGroups: map[string]ClientGroup{"local": {Addresses: []string{"127.0.0.0/8"}}, "remote": {Addresses: []string{"10.0.0.0/8"}}},
		Reservations: map[string]map[string]int{"local": {"LIC-1": 1}, "remote": {"LIC-1": 3}},
	}); err != nil {
		t.Fatal(err)
	}
	want(c, "anyone", "p1", 201, "")
	want(c, "anyone-else", "p2", 409, "reserved for the client groups remote")
	if _, err := c.Checkout(CheckoutRequest{"x", "p3", "LIC-1"}, "", netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Fatalf("checkout from the remote range: %v", err)
	}
}

func TestReservationSettingsAreValidated(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	cases := []struct {
		name  string
		set   Settings
		field string
	}{
		{"undefined group", Settings{Reservations: map[string]map[string]int{"dock": {"LIC-1": 1}}}, "settings.reservations.dock"},
		{"empty group", Settings{ClientGroups: map[string]ClientGroup{"dock": {}}}, "settings.clientGroups.dock"},
		{"bad pattern", Settings{ClientGroups: map[string]ClientGroup{"dock": {Clients: []string{"["}}}}, "settings.clientGroups.dock.clients"},
		{"bad address", Settings{ClientGroups: map[string]ClientGroup{"dock": {Addresses: []string{"10.0.0.0/40"}}}}, "settings.clientGroups.dock.addresses"},
		{"negative seats", Settings{ClientGroups: map[string]ClientGroup{"dock": {Clients: []string{"d*"}}},
			Reservations: map[string]map[string]int{"dock": {"LIC-1": -1}}}, "settings.reservations.dock.LIC-1"},
		{"too large", Settings{AllowedPrinters: []string{strings.Repeat("p", SettingsBudgetBytes)}}, "settings"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Error
			if code := call(t, http.MethodPut, ts.admin.URL+"/admin/v1/settings", tc.set, &e); code != 400 || e.Field != tc.field {
				t.Fatalf("settings %+v = %d %+v, want 400 naming %s", tc.set, code, e, tc.field)
			}
		})
	}
}

// -1 turns the per-address limit off (clients behind one NAT address), and a
// separate value bounds it apart from the per-client limit.
func TestPerAddressLimitSettings(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "lic-1.lic", 10)
	off := newTestServer(t, sg, withLicenseDir(dir), withMaxPerClient(1), withMaxPerAddress(-1))
	for _, client := range []string{"a", "b", "c"} {
		if code, _, e := off.checkout(t, client, "p-"+client, "LIC-1"); code != http.StatusCreated {
			t.Fatalf("checkout by %s without a per-address limit = %d %+v", client, code, e)
		}
	}
	three := newTestServer(t, sg, withLicenseDir(dir), withMaxPerClient(1), withMaxPerAddress(3))
	for i, client := range []string{"a", "b", "c", "d"} {
		code, _, e := three.checkout(t, client, "p-"+client, "LIC-1")
		if (i < 3) != (code == http.StatusCreated) {
			t.Fatalf("checkout %d by %s with 3 per address = %d %+v", i, client, code, e)
		}
		if i == 3 && (e.Code != CodeTooManyCheckouts || !strings.Contains(e.Message, "address 127.0.0.1 already holds 3 checkouts")) {
			t.Fatalf("fourth checkout = %+v, want too_many_checkouts naming the address", e)
		}
	}
	// The address travels with the checkout: a new active member counts it.
	b := newTestServer(t, sg, withLicenseDir(dir), withMaxPerClient(1), withMaxPerAddress(3), withRole(RoleStandby), withMember("b"))
	if err := b.Import(three.Export()); err != nil {
		t.Fatal(err)
	}
	if err := b.SetRole(RoleRequest{Role: RoleActive, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if code, _, e := b.checkout(t, "e", "p-e", "LIC-1"); code != http.StatusTooManyRequests {
		t.Fatalf("checkout on the new active from an address at its limit = %d %+v, want 429", code, e)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3":               "10.1.2.3",
		"::ffff:10.1.2.3":        "10.1.2.3",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":   "2001:db8:1:2::/64",
		"fe80::1%eth0":           "fe80::/64",
		"2001:db8:1:3:3:4:5:6":   "2001:db8:1:3::/64",
		"::1":                    "::/64",
		"192.168.0.1%not-a-zone": "",
	} {
		a, _ := netip.ParseAddr(in)
		if got := sourceKey(a); got != want {
			t.Errorf("sourceKey(%s) = %q, want %q", in, got, want)
		}
	}
}

// Usage rows are per month; past the month's row cap further printers count
// under "*"; months before the previous one keep one row per licence; months
// past retention are dropped.
func TestUsageCapAndAgeing(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withUsageLimits(2, 3))
	use := func(printer string, jobs int64) {
		t.Helper()
		c, err := ts.Checkout(CheckoutRequest{"alice", printer, "LIC-1"}, "", netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.ReportUsage(c.ID, UsageReport{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		if err := ts.Release(c.ID); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() map[string]UsageRecord {
		out := map[string]UsageRecord{}
		for _, u := range ts.Usage() {
			out[u.Period+" "+u.Printer] = u
		}
		return out
	}
	use("p1", 1)
	use("p2", 2)
	use("p3", 4)
	use("p4", 8)
	use("p1", 16)
	got := rows()
	if len(got) != 3 || got["2026-03 p1"].Jobs != 17 || got["2026-03 p2"].Jobs != 2 || got["2026-03 *"].Jobs != 12 || got["2026-03 *"].Checkouts != 2 {
		t.Fatalf("March rows = %+v, want p1, p2 and * (p3 and p4)", got)
	}
	if c := ts.State().Corrections; c == nil || c.OverflowUsage != 4 {
		t.Fatalf("corrections = %+v, want 4 counted under *", c)
	}

	ts.clock.Advance(31 * 24 * time.Hour) // April
	use("p5", 32)
	if got := rows(); len(got) != 4 || got["2026-04 p5"].Jobs != 32 || got["2026-03 p1"].Jobs != 17 {
		t.Fatalf("April rows = %+v, want March kept in detail", got)
	}
	ts.clock.Advance(30 * 24 * time.Hour) // May: March is folded
	use("p6", 64)
	got = rows()
	if len(got) != 3 || got["2026-03 *"].Jobs != 31 || got["2026-03 *"].Checkouts != 5 || got["2026-04 p5"].Jobs != 32 {
		t.Fatalf("May rows = %+v, want March in one * row, April in detail", got)
	}
	ts.clock.Advance(31 * 24 * time.Hour) // June: March is past the 3 months kept
	use("p7", 128)
	got = rows()
	if _, ok := got["2026-03 *"]; ok || len(got) != 3 || got["2026-04 *"].Jobs != 32 {
		t.Fatalf("June rows = %+v, want March dropped, April folded", got)
	}
	if c := ts.State().Corrections; c.DroppedUsageRows != 1 {
		t.Fatalf("corrections = %+v, want 1 dropped row", c)
	}
}

// The size budget holds even when every row is as large as clients can make
// it: the oldest months give way first, then new printers are counted
// under "*".
func TestUsageBudgetFoldsOldestFirst(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	ts.mu.Lock()
	ts.usage.lim.budget = 40 << 10
	ts.mu.Unlock()
	name := func(i int) string { return strings.Repeat("<", MaxNameBytes-8) + fmt.Sprintf("%08d", i) }
	for month := 0; month < 3; month++ {
		for i := 0; i < 200; i++ {
			c, err := ts.Checkout(CheckoutRequest{"alice", name(i), "LIC-1"}, "", netip.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.Release(c.ID); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(ts.Usage())
			if len(raw) > 40<<10 {
				t.Fatalf("month %d printer %d: usage JSON is %d bytes, over the budget", month, i, len(raw))
			}
		}
		ts.clock.Advance(31 * 24 * time.Hour)
	}
	var total int64
	for _, u := range ts.Usage() {
		total += int64(u.Checkouts)
	}
	if total != 600 {
		t.Fatalf("usage counts %d checkouts, want 600", total)
	}
}

// Rows from older servers have no period: they take the month of their last
// use. Duplicates are added together, saturating.
func TestImportedRowsWithoutPeriod(t *testing.T) {
	b := newTestServer(t, newSigner(t), withRole(RoleStandby), withMember("b"))
	snap := &Snapshot{FormatVersion: 1, Group: testGroup, Revision: 3, Usage: []UsageRecord{
		{License: "LIC-1", Printer: "p1", Jobs: math.MaxInt64 - 1, LastUse: testStart.AddDate(0, -1, 0)},
		{License: "LIC-1", Printer: "p1", Jobs: 5, LastUse: testStart.AddDate(0, -1, 0)},
		{License: "LIC-1", Printer: "p2", Jobs: 1, LastUse: testStart},
	}}
	if err := b.Import(snap); err != nil {
		t.Fatal(err)
	}
	got := b.Usage()
	if len(got) != 2 || got[0].Period != "2026-02" || got[0].Jobs != math.MaxInt64 || got[1].Period != "2026-03" {
		t.Fatalf("usage = %+v, want p1 in February saturated, p2 in March", got)
	}
	c := b.State().Corrections
	if c == nil || c.MergedUsageRows != 1 || c.SaturatedCounts != 1 {
		t.Fatalf("corrections = %+v, want one merged row and one saturated count", c)
	}
}

func TestCountDecodesAnyNumber(t *testing.T) {
	for in, want := range map[string]Count{
		"0": 0, "42": 42, "-7": -7, "1.9": 1, "-1.9": -1, "1e3": 1000,
		"9223372036854775807": math.MaxInt64, "9223372036854775808": math.MaxInt64, "1e30": math.MaxInt64,
		"-9223372036854775809": math.MinInt64, "-1e30": math.MinInt64, "1e-999999999999": 0, "1e999999999999": math.MaxInt64,
	} {
		var c Count
		if err := json.Unmarshal([]byte(in), &c); err != nil || c != want {
			t.Errorf("Count from %s = %d, %v; want %d", in, c, err, want)
		}
	}
	var u UsageRecord
	err := json.Unmarshal([]byte(`{"jobs":"12"}`), &u)
	var te *json.UnmarshalTypeError
	if !errorsAs(err, &te) || te.Field != "jobs" {
		t.Fatalf("a string count = %v, want a type error naming jobs", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// The per-address limit counts the connection's remote address: a client
// cannot escape it by claiming another address in X-Forwarded-For.
func TestForwardedForIsIgnored(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "lic-1.lic", 10)
	ts := newTestServer(t, sg, withLicenseDir(dir), withMaxPerClient(1))
	h := ts.ClientHandler(0)
	for i, want := range []int{201, 429} {
		body := strings.NewReader(`{"client":"c` + strconv.Itoa(i) + `","printer":"p` + strconv.Itoa(i) + `","license":"LIC-1"}`)
		req := httptest.NewRequest(http.MethodPost, "/v1/checkouts", body)
		req.RemoteAddr = "192.0.2.7:4000"
		req.Header.Set("X-Forwarded-For", "198.51.100."+strconv.Itoa(i))
		req.Header.Set("X-Real-IP", "198.51.100."+strconv.Itoa(i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("checkout %d = %d %s, want %d", i, rec.Code, rec.Body.String(), want)
		}
	}
	if got := ts.Export().Checkouts[0].Address; got != "192.0.2.7" {
		t.Fatalf("recorded address %q, want the connection's 192.0.2.7", got)
	}
}
