package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The agent renews role active from one goroutine and fences from another;
// a renewal sent before the fence may arrive after it. Its lower seq gets it
// refused, and the member stays fenced.
func TestLateActiveCannotUndoFence(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby))
	ac := ts.adminClient()
	ctx := context.Background()
	until := func() int64 { return ts.bootNow() + int64(time.Minute) }
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: 3, Seq: 1, ServeUntilBoottime: until()}); err != nil {
		t.Fatal(err)
	}
	renewal := RoleRequest{Role: RoleActive, Epoch: 3, Seq: 2, ServeUntilBoottime: until()} // sent, then delayed
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleStandby, Epoch: 3, Seq: 3, Active: "b"}); err != nil {
		t.Fatalf("fence = %v", err)
	}
	_, err := ac.SetRole(ctx, renewal)
	if !IsCode(err, CodeStaleSequence) {
		t.Fatalf("late renewal with seq 2 after the fence with seq 3 = %v, want stale_sequence", err)
	}
	var re *ResponseError
	if !strings.Contains(err.Error(), "seq") || !errors.As(err, &re) || re.StatusCode != http.StatusConflict || re.Body.Field != "seq" {
		t.Fatalf("late renewal refused with %v, want 409 naming seq", err)
	}
	if st := ts.State(); st.Role != RoleStandby || st.Active != "b" {
		t.Fatalf("state after the late renewal = %+v, want still fenced, pointing at b", st)
	}
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusServiceUnavailable {
		t.Fatalf("checkout after the late renewal = %d, want 503", code)
	}
}

func TestRoleSequence(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby))
	ac := ts.adminClient()
	ctx := context.Background()
	set := func(req RoleRequest) error {
		t.Helper()
		_, err := ac.SetRole(ctx, req)
		return err
	}
	expectRole := func(want Role) {
		t.Helper()
		if got := ts.State().Role; got != want {
			t.Fatalf("role = %s, want %s", got, want)
		}
	}
	// Before any sequenced request, role active without seq is accepted.
	if err := set(RoleRequest{Role: RoleActive, Epoch: 1}); err != nil {
		t.Fatalf("unsequenced active on a fresh server = %v, want success", err)
	}
	if err := set(RoleRequest{Role: RoleStandby, Epoch: 1, Seq: 5}); err != nil {
		t.Fatal(err)
	}
	// An equal seq is refused, whatever the role: a retry needs a new seq.
	for _, r := range []Role{RoleActive, RoleStandby, RoleWitness} {
		if err := set(RoleRequest{Role: r, Epoch: 1, Seq: 5}); !IsCode(err, CodeStaleSequence) {
			t.Fatalf("%s with the seq already applied = %v, want stale_sequence", r, err)
		}
	}
	expectRole(RoleStandby)
	// Once sequenced, always sequenced: role active without seq is refused...
	err := set(RoleRequest{Role: RoleActive, Epoch: 1})
	if !IsCode(err, CodeStaleSequence) || !strings.Contains(err.Error(), "seq") {
		t.Fatalf("unsequenced active after a sequenced request = %v, want stale_sequence naming seq", err)
	}
	expectRole(RoleStandby)
	// ...while a fence without seq is still applied.
	if err := set(RoleRequest{Role: RoleWitness, Epoch: 1}); err != nil {
		t.Fatalf("unsequenced fence after a sequenced request = %v, want success", err)
	}
	expectRole(RoleWitness)
	// A refused request does not move the sequence: seq 7 refused for its
	// epoch, seq 6 is then still newer than anything applied.
	if err := set(RoleRequest{Role: RoleActive, Epoch: 0, Seq: 7}); !IsCode(err, CodeStaleEpoch) {
		t.Fatalf("active from an older epoch = %v, want stale_epoch", err)
	}
	if err := set(RoleRequest{Role: RoleActive, Epoch: 1, Seq: 6}); err != nil {
		t.Fatalf("active with the next seq = %v, want success", err)
	}
	expectRole(RoleActive)
	// Seqs may skip (the agent counts requests it gave up on).
	if err := set(RoleRequest{Role: RoleStandby, Epoch: 1, Seq: 100}); err != nil {
		t.Fatal(err)
	}
	if err := set(RoleRequest{Role: RoleActive, Epoch: 1, Seq: 99}); !IsCode(err, CodeStaleSequence) {
		t.Fatalf("active with seq 99 after 100 = %v, want stale_sequence", err)
	}
	expectRole(RoleStandby)
}

// Requests sent concurrently and delivered in any order leave the server in
// the role of the one with the highest seq, whichever arrived last.
func TestConcurrentRoleRequestsEndAtTheHighestSeq(t *testing.T) {
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby))
	ac := ts.adminClient()
	for round := range 4 {
		base := uint64(round * 100)
		n := 40
		order := rand.Perm(n)
		var wg sync.WaitGroup
		for _, i := range order {
			req := RoleRequest{Role: RoleActive, Epoch: 1, Seq: base + uint64(i) + 1}
			if (i+round)%2 == 0 {
				req.Role = RoleStandby
			}
			wg.Go(func() {
				_, err := ac.SetRole(context.Background(), req)
				if err != nil && !IsCode(err, CodeStaleSequence) {
					t.Errorf("seq %d: %v", req.Seq, err)
				}
			})
		}
		wg.Wait()
		want := RoleActive
		if (n-1+round)%2 == 0 {
			want = RoleStandby
		}
		if got := ts.State().Role; got != want {
			t.Fatalf("round %d: role = %s, want %s, the role of the highest seq", round, got, want)
		}
	}
}

// Malformed, out-of-range and extreme role requests are refused with the
// field named, or applied without breaking the rules for the requests after.
func TestHostileRoleRequests(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"negative seq", `{"role":"active","epoch":1,"seq":-1}`, 400, CodeBadRequest, "seq"},
		{"seq beyond uint64", `{"role":"active","epoch":1,"seq":18446744073709551616}`, 400, CodeBadRequest, "seq"},
		{"fractional seq", `{"role":"active","epoch":1,"seq":1.5}`, 400, CodeBadRequest, "seq"},
		{"seq as a string", `{"role":"active","epoch":1,"seq":"2"}`, 400, CodeBadRequest, "seq"},
		{"negative epoch", `{"role":"standby","epoch":-1}`, 400, CodeBadRequest, "epoch"},
		{"negative bound", `{"role":"active","epoch":1,"serveUntilBoottime":-5}`, 400, CodeBadRequest, "serveUntilBoottime"},
		{"bound beyond int64", `{"role":"active","epoch":1,"serveUntilBoottime":9223372036854775808}`, 400, CodeBadRequest, "serveUntilBoottime"},
		{"former field name", `{"role":"active","epoch":1,"serveUntilMonotonic":5}`, 400, CodeBadRequest, "serveUntilMonotonic"},
		{"empty role", `{"epoch":1}`, 400, CodeBadRequest, "role"},
		{"role in upper case", `{"role":"ACTIVE","epoch":1}`, 400, CodeBadRequest, "role"},
		{"null", `null`, 400, CodeBadRequest, "role"},
	}
	ts := newTestServer(t, newSigner(t), withRole(RoleStandby))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Error
			code := call(t, http.MethodPut, ts.admin.URL+"/admin/v1/role", tc.body, &e)
			if code != tc.status || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("PUT %s = %d %+v, want %d %s naming %q", tc.body, code, e, tc.status, tc.code, tc.field)
			}
			if st := ts.State(); st.Role != RoleStandby || st.Epoch != 0 {
				t.Fatalf("a refused request changed the state: %+v", st)
			}
		})
	}

	// The largest values are valid: the largest bound serves, the largest
	// seq is applied. No seq can follow it, but a fence without seq still
	// stops the server.
	ac := ts.adminClient()
	ctx := context.Background()
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleActive, Epoch: math.MaxUint64, Seq: math.MaxUint64, ServeUntilBoottime: math.MaxInt64}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ts.checkout(t, "alice", "p1", "LIC-1"); code != http.StatusCreated {
		t.Fatalf("checkout under the largest bound = %d, want 201", code)
	}
	if _, err := ac.SetRole(ctx, RoleRequest{Role: RoleStandby, Epoch: 1, Seq: math.MaxUint64}); !IsCode(err, CodeStaleSequence) {
		t.Fatalf("fence repeating the largest seq = %v, want stale_sequence", err)
	}
	if st, err := ac.SetRole(ctx, RoleRequest{Role: RoleStandby, Epoch: 1}); err != nil || st.Role != RoleStandby || st.Epoch != math.MaxUint64 {
		t.Fatalf("unsequenced fence after the largest seq = %+v, %v; want standby at the largest epoch", st, err)
	}
}

// FuzzRoleRequests applies sequences of role requests and checks each answer
// and the resulting state against a model of the rules: seq strictly
// increasing once used, role active only from the newest epoch, a fence
// always applied otherwise, the epoch never going back, a bound honoured.
func FuzzRoleRequests(f *testing.F) {
	f.Add([]byte(`[{"role":"active","epoch":1,"seq":1},{"role":"standby","epoch":1,"seq":3},{"role":"active","epoch":1,"seq":2}]`))
	f.Add([]byte(`[{"role":"active","epoch":5},{"role":"standby","epoch":4},{"role":"active","epoch":4,"seq":9},{"role":"witness","epoch":2}]`))
	f.Add([]byte(`[{"role":"standby","epoch":1,"seq":2},{"role":"active","epoch":1},{"role":"active","epoch":1,"seq":2},{"role":"active","epoch":2,"seq":3,"serveUntilBoottime":1}]`))
	f.Add([]byte(`[{"role":"active","epoch":18446744073709551615,"seq":18446744073709551615},{"role":"standby"},{"role":"leader","seq":1},{"role":"active","serveUntilBoottime":-1}]`))
	const bootNow = int64(1e12)
	ts := newTestServer(f, newSigner(f), withBoottime(func() int64 { return bootNow }))
	f.Fuzz(func(t *testing.T, data []byte) {
		var reqs []RoleRequest
		if err := json.Unmarshal(data, &reqs); err != nil || len(reqs) > 64 {
			return
		}
		// Start every input from a fresh standby (a new server per input
		// would spend the time opening stores).
		ts.mu.Lock()
		ts.role, ts.epoch, ts.seq, ts.serveUntil = RoleStandby, 0, 0, 0
		ts.mu.Unlock()
		var epoch, seq uint64
		role := RoleStandby
		for i, req := range reqs {
			fence := req.Role != RoleActive
			var want string // expected error code, "" for success
			switch {
			case !req.Role.Valid() || req.ServeUntilBoottime < 0:
				want = CodeBadRequest
			case req.Seq != 0 && req.Seq <= seq, req.Seq == 0 && seq != 0 && !fence:
				want = CodeStaleSequence
			case !fence && req.Epoch < epoch:
				want = CodeStaleEpoch
			}
			err := ts.SetRole(req)
			got := ""
			if err != nil {
				_, body := errorStatus(err)
				got = body.Code
			}
			if got != want {
				t.Fatalf("request %d %+v after epoch %d seq %d: answer %q (%v), want %q", i, req, epoch, seq, got, err, want)
			}
			if want == "" {
				epoch = max(epoch, req.Epoch)
				if req.Seq != 0 {
					seq = req.Seq
				}
				role = req.Role
				if role == RoleActive && req.ServeUntilBoottime != 0 && req.ServeUntilBoottime <= bootNow {
					role = RoleStandby
				}
			}
			if st := ts.State(); st.Role != role || st.Epoch != epoch {
				t.Fatalf("after request %d %+v: role %s epoch %d, want %s at %d", i, req, st.Role, st.Epoch, role, epoch)
			}
		}
	})
}
