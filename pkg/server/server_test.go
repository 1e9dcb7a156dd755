package server

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/boottime"
)

func TestSeatsRunOutAndComeBackOnExpiry(t *testing.T) {
	ts := newTestServer(t, newSigner(t))

	code, first, _ := ts.checkout(t, "alice", "p1", "LIC-1")
	if code != http.StatusCreated || first.License != "LIC-1" || first.Member != "a" {
		t.Fatalf("first checkout = %d %+v, want 201 on LIC-1 from member a", code, first)
	}
	if code, again, _ := ts.checkout(t, "alice", "p1", "LabelDesigner"); code != http.StatusCreated || again.ID != first.ID {
		t.Fatalf("same client and printer by product name = %d %+v, want the seat %s again", code, again, first.ID)
	}
	if code, _, _ := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("second seat = %d, want 201", code)
	}
	code, _, e := ts.checkout(t, "carol", "p3", "LIC-1")
	if code != http.StatusConflict || e.Code != CodeNoSeat || !strings.Contains(e.Message, "all 2 printer seats") {
		t.Fatalf("third seat = %d %+v, want 409 no_seat", code, e)
	}

	// bob heartbeats, alice does not: after the TTL only alice's seat is free.
	ts.clock.Advance(20 * time.Second)
	var hb Checkout
	bobID := ""
	for _, c := range ts.Export().Checkouts {
		if c.Client == "bob" {
			bobID = c.ID
		}
	}
	if code := call(t, http.MethodPut, ts.client.URL+"/v1/checkouts/"+bobID, nil, &hb); code != http.StatusOK ||
		!hb.ExpiresAt.Equal(ts.clock.Now().Add(30*time.Second)) {
		t.Fatalf("heartbeat = %d %+v, want 200 extending by the TTL", code, hb)
	}
	ts.clock.Advance(15 * time.Second)
	if code, _, _ := ts.checkout(t, "carol", "p3", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout after alice's seat expired = %d, want 201", code)
	}
	if code, _, _ := ts.checkout(t, "dave", "p4", "LIC-1"); code != http.StatusConflict {
		t.Fatalf("checkout while bob and carol hold both seats = %d, want 409", code)
	}
	if got := ts.Licenses()[0].InUse; got != 2 {
		t.Fatalf("seats in use = %d, want 2", got)
	}
}

func TestReleaseFreesTheSeat(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	_, c1, _ := ts.checkout(t, "alice", "p1", "LIC-1")
	ts.checkout(t, "bob", "p2", "LIC-1")
	if code := call(t, http.MethodDelete, ts.client.URL+"/v1/checkouts/"+c1.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("release = %d, want 204", code)
	}
	if code, _, _ := ts.checkout(t, "carol", "p3", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout after release = %d, want 201", code)
	}
	var e Error
	if code := call(t, http.MethodDelete, ts.client.URL+"/v1/checkouts/"+c1.ID, nil, &e); code != http.StatusNotFound || e.Code != CodeNotFound {
		t.Fatalf("second release = %d %+v, want 404 not_found", code, e)
	}
}

func TestReassertKeepsTheID(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	var c Checkout
	body := CheckoutRequest{Client: "alice", Printer: "p1", License: "LIC-1"}
	if code := call(t, http.MethodPut, ts.client.URL+"/v1/checkouts/abc123", body, &c); code != http.StatusOK || c.ID != "abc123" {
		t.Fatalf("re-assert of an unknown checkout = %d %+v, want 200 keeping id abc123", code, c)
	}
	var e Error
	if code := call(t, http.MethodPut, ts.client.URL+"/v1/checkouts/other", nil, &e); code != http.StatusNotFound {
		t.Fatalf("heartbeat without body of an unknown checkout = %d, want 404", code)
	}
	thief := CheckoutRequest{Client: "mallory", Printer: "p1", License: "LIC-1"}
	if code := call(t, http.MethodPut, ts.client.URL+"/v1/checkouts/abc123", thief, &e); code != http.StatusConflict || e.Code != CodeConflict {
		t.Fatalf("re-assert by another client = %d %+v, want 409 conflict", code, e)
	}
}

func TestRolesAndEpochFencing(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby), withMember("b"))
	ac := ts.adminClient()
	ctx := context.Background()

	code, _, e := ts.checkout(t, "alice", "p1", "LIC-1")
	if code != http.StatusServiceUnavailable || e.Code != CodeNotActive || e.Message != "not active" || e.Active != "" {
		t.Fatalf("checkout on a standby = %d %+v, want 503 not active without a hint", code, e)
	}
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleStandby, Epoch: 4, Active: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, _, e := ts.checkout(t, "alice", "p1", "LIC-1"); e.Active != "a" {
		t.Fatalf("not-active answer names %q, want the hint a", e.Active)
	}
	st, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 5})
	if err != nil || st.Role != RoleActive || st.Epoch != 5 || st.Active != "b" {
		t.Fatalf("promotion = %+v, %v; want active at epoch 5", st, err)
	}
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout on the active = %d, want 201", code)
	}
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 4}); !IsCode(err, CodeStaleEpoch) {
		t.Fatalf("role active from epoch 4 = %v, want stale_epoch", err)
	}
	if st := ts.State(); st.Role != RoleActive || st.Epoch != 5 {
		t.Fatalf("a refused role request changed the state: %+v", st)
	}
	// A fence is applied whatever its epoch; the server keeps the highest.
	st, err = ac.SetRole(ctx, RoleRequest{Role: RoleStandby, Epoch: 4, Active: "c"})
	if err != nil || st.Role != RoleStandby || st.Epoch != 5 || st.Active != "c" {
		t.Fatalf("fence from epoch 4 = %+v, %v; want standby, still at epoch 5", st, err)
	}
	if code, _, _ := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusServiceUnavailable {
		t.Fatalf("checkout after a fence from an older epoch = %d, want 503", code)
	}
	// The fence did not lower the epoch: an older active is still refused.
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 4}); !IsCode(err, CodeStaleEpoch) {
		t.Fatalf("role active from epoch 4 after the fence = %v, want stale_epoch", err)
	}
	// The same epoch may promote again and demote (fencing keeps the epoch).
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 5}); err != nil {
		t.Fatalf("role active at the same epoch = %v, want success", err)
	}
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleWitness, Epoch: 5}); err != nil {
		t.Fatalf("fence at the same epoch = %v, want success", err)
	}
	if code, _, _ := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusServiceUnavailable {
		t.Fatalf("checkout after fencing = %d, want 503", code)
	}
	var be Error
	if code := call(t, http.MethodPut, ts.admin.URL+"/admin/v1/role", `{"role":"leader","epoch":6}`, &be); code != http.StatusBadRequest || be.Field != "role" {
		t.Fatalf("unknown role = %d %+v, want 400 naming role", code, be)
	}
}

func TestPromotionExtendsKnownCheckouts(t *testing.T) {
	sg := newSigner(t)
	a := newTestServer(t, sg)
	b := newTestServer(t, sg, withRole(RoleStandby), withMember("b"))
	_, c, _ := a.checkout(t, "alice", "p1", "LIC-1")
	if err := b.Import(a.Export()); err != nil {
		t.Fatal(err)
	}
	// The standby's copy would expire before clients reach it; promotion renews it.
	b.clock.Advance(29 * time.Second)
	if err := b.SetRole(RoleRequest{Role: RoleActive, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(10 * time.Second)
	if n := b.ExpireCheckouts(); n != 0 {
		t.Fatalf("%d checkouts expired right after promotion, want 0", n)
	}
	var hb Checkout
	if code := call(t, http.MethodPut, b.client.URL+"/v1/checkouts/"+c.ID, nil, &hb); code != http.StatusOK || hb.Member != "b" {
		t.Fatalf("heartbeat on the new active = %d %+v, want 200 from b", code, hb)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	sg := newSigner(t)
	a := newTestServer(t, sg)
	b := newTestServer(t, sg, withRole(RoleStandby), withMember("b"))
	ctx := context.Background()
	settings := Settings{
		Access:          AccessRules{DenyUsers: []string{"guest*"}, AllowAddresses: []string{"127.0.0.0/8"}},
		PrinterGroups:   map[string][]string{"dock": {"dock-*"}},
		Partitions:      map[string]map[string]int{"dock": {"LIC-1": 1}},
		AllowedPrinters: []string{"*"},
	}
	if err := a.adminClient().SetSettings(ctx, settings); err != nil {
		t.Fatal(err)
	}
	_, c, _ := a.checkout(t, "alice", "dock-1", "LIC-1")
	a.checkout(t, "bob", "office-1", "LIC-1")
	if code := call(t, http.MethodPost, a.client.URL+"/v1/checkouts/"+c.ID+"/usage", UsageReport{Jobs: 2, Labels: 40}, nil); code != http.StatusNoContent {
		t.Fatalf("usage report = %d, want 204", code)
	}

	snap, err := a.adminClient().Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Checkouts) != 2 || len(snap.Usage) != 2 || snap.Revision == 0 {
		t.Fatalf("snapshot has %d checkouts, %d usage records, revision %d", len(snap.Checkouts), len(snap.Usage), snap.Revision)
	}
	st, err := b.adminClient().Import(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != snap.Revision {
		t.Fatalf("revision after import = %d, want the snapshot's %d", st.Revision, snap.Revision)
	}
	back, err := b.adminClient().Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Settings, snap.Settings) || !reflect.DeepEqual(back.Usage, snap.Usage) ||
		!reflect.DeepEqual(back.Checkouts, snap.Checkouts) {
		t.Fatalf("state after import differs:\n got %+v\nwant %+v", back, snap)
	}
	// The imported partition is enforced on the new active.
	if err := b.SetRole(RoleRequest{Role: RoleActive, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if code, _, e := b.checkout(t, "carol", "dock-2", "LIC-1"); code != http.StatusConflict || e.Code != CodeNoSeat {
		t.Fatalf("checkout beyond the imported partition = %d %+v, want 409", code, e)
	}
}

func TestStaleSnapshotRefused(t *testing.T) {
	sg := newSigner(t)
	a := newTestServer(t, sg)
	ctx := context.Background()
	a.checkout(t, "alice", "p1", "LIC-1")
	old := a.Export()
	a.checkout(t, "bob", "p2", "LIC-1")

	_, err := a.adminClient().Import(ctx, old)
	if !IsCode(err, CodeStaleSnapshot) || !strings.Contains(err.Error(), "revision") {
		t.Fatalf("import of an older revision = %v, want stale_snapshot", err)
	}
	if err := a.SetRole(RoleRequest{Role: RoleActive, Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	newer := a.Export()
	newer.Epoch, newer.Revision = 2, newer.Revision+100
	if _, err := a.adminClient().Import(ctx, newer); !IsCode(err, CodeStaleSnapshot) {
		t.Fatalf("import of an older epoch = %v, want stale_snapshot", err)
	}
	if got := a.Status().Checkouts; got != 2 {
		t.Fatalf("a refused import changed the checkouts: %d, want 2", got)
	}
	other := a.Export()
	other.Group = "printing/plant-b"
	var e Error
	if code := call(t, http.MethodPut, a.admin.URL+"/admin/v1/snapshot", other, &e); code != http.StatusBadRequest || e.Field != "group" {
		t.Fatalf("import of another group's snapshot = %d %+v, want 400 naming group", code, e)
	}
}

func TestAdminRequiresToken(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	for _, auth := range []string{"", "Bearer wrong", "Basic " + testToken, testToken} {
		req, _ := http.NewRequest(http.MethodGet, ts.admin.URL+"/admin/v1/state", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q = %d, want 401", auth, resp.StatusCode)
		}
	}
	if _, err := NewAdminClient(ts.admin.URL, "wrong", nil).State(context.Background()); !IsCode(err, CodeUnauthorized) {
		t.Fatalf("AdminClient with a wrong token = %v, want unauthorized", err)
	}
	st, err := ts.adminClient().State(context.Background())
	if err != nil || st.Member != "a" || st.Group != testGroup || st.Role != RoleActive {
		t.Fatalf("State() = %+v, %v", st, err)
	}
}

func TestSettingsRulesEnforced(t *testing.T) {
	sg := newSigner(t)
	dir := sg.licenceDir(t, "lic-1.lic", 10)
	ts := newTestServer(t, sg, withLicenseDir(dir))
	set := func(s Settings) {
		t.Helper()
		if err := ts.adminClient().SetSettings(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	expectForbidden := func(client, printer, reason string) {
		t.Helper()
		code, _, e := ts.checkout(t, client, printer, "LIC-1")
		if code != http.StatusForbidden || e.Code != CodeForbidden || !strings.Contains(e.Message, reason) {
			t.Fatalf("checkout by %s on %s = %d %+v, want 403 saying %q", client, printer, code, e, reason)
		}
	}

	set(Settings{Access: AccessRules{DenyUsers: []string{"guest-*"}}})
	expectForbidden("guest-1", "p1", "denied by the access rules")
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout by a user not denied = %d", code)
	}

	set(Settings{Access: AccessRules{AllowUsers: []string{"alice"}}})
	expectForbidden("bob", "p1", "not in the allowed users")

	set(Settings{Access: AccessRules{AllowAddresses: []string{"10.0.0.0/8"}}})
	expectForbidden("alice", "p2", "not in the allowed addresses")
	set(Settings{Access: AccessRules{DenyAddresses: []string{"127.0.0.1"}}})
	expectForbidden("alice", "p2", "denied by the access rules")

	set(Settings{AllowedPrinters: []string{"zebra-*"}})
	expectForbidden("alice", "laser-1", `printer "laser-1" is not in the allowed printers`)

	set(Settings{
		PrinterGroups: map[string][]string{"dock": {"dock-*"}},
		Partitions:    map[string]map[string]int{"dock": {"LIC-1": 1}},
	})
	if code, _, _ := ts.checkout(t, "alice", "dock-1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("first dock printer = %d, want 201", code)
	}
	code, _, e := ts.checkout(t, "alice", "dock-2", "LIC-1")
	if code != http.StatusConflict || e.Code != CodeNoSeat || !strings.Contains(e.Message, "printer group dock may use 1 seats") {
		t.Fatalf("second dock printer = %d %+v, want 409 naming the partition", code, e)
	}
	if code, _, _ := ts.checkout(t, "alice", "office-1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("printer outside the partition = %d, want 201", code)
	}
}

func TestBadRequestsNameTheField(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	_, c, _ := ts.checkout(t, "alice", "p1", "LIC-1")
	cases := []struct {
		name, method, url, body string
		status                  int
		field, msg              string
	}{
		{"unknown field", "POST", "/v1/checkouts", `{"client":"a","printer":"p","license":"LIC-1","colour":"red"}`, 400, "colour", "unknown field"},
		{"wrong type", "POST", "/v1/checkouts", `{"client":"a","printer":7,"license":"LIC-1"}`, 400, "printer", "must be a string"},
		{"empty client", "POST", "/v1/checkouts", `{"printer":"p","license":"LIC-1"}`, 400, "client", "must not be empty"},
		{"malformed", "POST", "/v1/checkouts", `{"client":`, 400, "", "unexpected EOF"},
		{"no body", "POST", "/v1/checkouts", ``, 400, "", "body is empty"},
		{"trailing data", "POST", "/v1/checkouts", `{"client":"a","printer":"p","license":"LIC-1"} {}`, 400, "", "after the JSON body"},
		{"too large", "POST", "/v1/checkouts", `{"client":"` + strings.Repeat("x", 2000) + `"}`, 413, "", "larger than 1024 bytes"},
		{"negative jobs", "POST", "/v1/checkouts/" + c.ID + "/usage", `{"jobs":-1,"labels":3}`, 400, "jobs", "must not be negative"},
		{"negative labels", "POST", "/v1/checkouts/" + c.ID + "/usage", `{"jobs":1,"labels":-3}`, 400, "labels", "must not be negative"},
		{"unknown endpoint", "GET", "/v2/nothing", ``, 404, "", "no endpoint GET /v2/nothing"},
		{"unknown licence", "POST", "/v1/checkouts", `{"client":"a","printer":"p","license":"Nope"}`, 404, "", `no licence or product "Nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Error
			code := call(t, tc.method, ts.client.URL+tc.url, tc.body, &e)
			if code != tc.status || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) || e.Code == "" {
				t.Fatalf("%s %s = %d %+v, want %d field %q message containing %q", tc.method, tc.url, code, e, tc.status, tc.field, tc.msg)
			}
		})
	}
	var e Error
	bad := Settings{Access: AccessRules{AllowAddresses: []string{"10.0.0.0/33"}}}
	if code := call(t, http.MethodPut, ts.admin.URL+"/admin/v1/settings", bad, &e); code != 400 || e.Field != "settings.access.allowAddresses" {
		t.Fatalf("bad CIDR = %d %+v, want 400 naming settings.access.allowAddresses", code, e)
	}
}

func TestTooManyCheckoutsPerClient(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withMaxPerClient(1))
	ts.checkout(t, "alice", "p1", "LIC-1")
	code, _, e := ts.checkout(t, "alice", "p2", "LIC-1")
	if code != http.StatusTooManyRequests || e.Code != CodeTooManyCheckouts {
		t.Fatalf("second checkout of a limited client = %d %+v, want 429 too_many_checkouts", code, e)
	}
}

func TestRestartKeepsDurableState(t *testing.T) {
	sg := newSigner(t)
	dataDir, licDir := t.TempDir(), t.TempDir()
	sg.write(t, licDir, "lic-1.lic", sg.license("LIC-1", "LabelDesigner", 2))
	first := newTestServer(t, sg, withDataDir(dataDir), withLicenseDir(licDir))
	settings := Settings{AllowedPrinters: []string{"zebra-*"}}
	if err := first.SetSettings(settings); err != nil {
		t.Fatal(err)
	}
	if err := first.SetAliases(map[string]string{"LIC-9": "LIC-1"}); err != nil {
		t.Fatal(err)
	}
	if err := first.SetRole(RoleRequest{Role: RoleActive, Epoch: 7}); err != nil {
		t.Fatal(err)
	}
	_, c, _ := first.checkout(t, "alice", "zebra-1", "LIC-1")
	if err := first.ReportUsage(c.ID, UsageReport{Jobs: 3, Labels: 30}); err != nil {
		t.Fatal(err)
	}
	wantUsage, wantRev := first.Usage(), first.State().Revision
	first.client.Close()
	first.admin.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := newTestServer(t, sg, withDataDir(dataDir), withLicenseDir(licDir))
	st := second.State()
	if st.Epoch != 7 || st.Revision != wantRev {
		t.Fatalf("after restart epoch %d revision %d, want 7 and %d", st.Epoch, st.Revision, wantRev)
	}
	if got := second.Settings(); !reflect.DeepEqual(got, settings) {
		t.Fatalf("settings after restart = %+v, want %+v", got, settings)
	}
	if got := second.Usage(); !reflect.DeepEqual(got, wantUsage) {
		t.Fatalf("usage after restart = %+v, want %+v", got, wantUsage)
	}
	if _, c, _ := second.checkout(t, "bob", "zebra-2", "LIC-9"); c.License != "LIC-1" {
		t.Fatalf("alias after restart served %q, want LIC-1", c.License)
	}
	if err := second.SetRole(RoleRequest{Role: RoleActive, Epoch: 6}); err == nil {
		t.Fatal("after restart role active from an older epoch was accepted")
	}
	if err := second.SetRole(RoleRequest{Role: RoleStandby, Epoch: 6}); err != nil || second.State().Epoch != 7 {
		t.Fatalf("after restart a fence from an older epoch = %v at epoch %d, want applied keeping epoch 7", err, second.State().Epoch)
	}
}

func TestAliasesServeForeignLicenceIDs(t *testing.T) {
	ts := newTestServer(t, newSigner(t))
	var e Error
	if code := call(t, http.MethodPut, ts.admin.URL+"/admin/v1/aliases", `{"aliases":{"MAIN-7":"LIC-1"}}`, &e); code != 200 {
		t.Fatalf("set aliases = %d %+v", code, e)
	}
	code, c, _ := ts.checkout(t, "alice", "p1", "MAIN-7")
	if code != http.StatusCreated || c.License != "LIC-1" {
		t.Fatalf("checkout of an aliased id = %d %+v, want 201 on LIC-1", code, c)
	}
	ts.checkout(t, "bob", "p2", "MAIN-7")
	if code, _, _ := ts.checkout(t, "carol", "p3", "MAIN-7"); code != http.StatusConflict {
		t.Fatalf("aliased checkout beyond the local printer count = %d, want 409", code)
	}
}

func TestActiveRoleLapsesWithoutRenewal(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby), withMember("a"))
	ac := ts.adminClient()
	ctx := context.Background()
	deadline := boottime.Now() + int64(300*time.Millisecond)
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 2, ServeUntilBoottime: deadline}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout within the bound = %d, want 201", code)
	}
	// A frozen supervisor never renews: past the bound the server fences
	// itself, whatever its role was set to.
	time.Sleep(time.Duration(deadline-boottime.Now()) + 10*time.Millisecond)
	if code, _, e := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusServiceUnavailable || e.Code != CodeNotActive {
		t.Fatalf("checkout after the bound = %d %+v, want 503 not_active", code, e)
	}
	if ts.State().Role != RoleStandby {
		t.Fatalf("state after the bound = %s, want standby", ts.State().Role)
	}
	// A renewal at the same epoch serves again.
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 2, ServeUntilBoottime: boottime.Now() + int64(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout after renewal = %d, want 201", code)
	}
	var be Error
	if code := call(t, http.MethodPut, ts.admin.URL+"/admin/v1/role", `{"role":"active","epoch":3,"serveUntilBoottime":-5}`, &be); code != http.StatusBadRequest || be.Field != "serveUntilBoottime" {
		t.Fatalf("negative bound = %d %+v, want 400 naming serveUntilBoottime", code, be)
	}
}

// The serve bound is read on CLOCK_BOOTTIME: time that passes on that clock
// only (a suspended node, a frozen pod) still ends the active role, and an
// instant already passed is not served at all.
func TestServeBoundFollowsBoottime(t *testing.T) {
	var boot atomic.Int64
	boot.Store(int64(time.Hour))
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby), withBoottime(boot.Load))
	ctx := context.Background()
	ac := ts.adminClient()
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 1, ServeUntilBoottime: boot.Load() + int64(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout within the bound = %d, want 201", code)
	}
	// A suspend of the node: CLOCK_BOOTTIME jumps, nothing else happened.
	boot.Add(int64(time.Second))
	if code, _, e := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusServiceUnavailable || e.Code != CodeNotActive {
		t.Fatalf("checkout once CLOCK_BOOTTIME reached the bound = %d %+v, want 503 not_active", code, e)
	}
	// A request whose bound has passed by the time it arrives never serves.
	st, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 1, ServeUntilBoottime: boot.Load() - 1})
	if err != nil || st.Role != RoleStandby {
		t.Fatalf("active with a passed bound = %+v, %v; want accepted but standby", st, err)
	}
	if code, _, _ := ts.checkout(t, "bob", "p2", "LIC-1"); code != http.StatusServiceUnavailable {
		t.Fatalf("checkout under a passed bound = %d, want 503", code)
	}
}
