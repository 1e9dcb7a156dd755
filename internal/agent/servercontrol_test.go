package agent

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/election"
	"github.com/licenseha/licenseha/pkg/server"
)

// controlAgainstRealServer returns the agent's server control wired to a
// reference license server running in-process behind its admin API.
func controlAgainstRealServer(t *testing.T) (*serverControl, *server.AdminClient) {
	t.Helper()
	admin := standbyServer(t, "ns/plant-a", "a")
	a := &Agent{log: logr.Discard(), admin: admin, metrics: newAgentMetrics()}
	a.control = &serverControl{a: a}
	return a.control, admin
}

// standbyServer is the admin API of a reference license server running
// in-process as member of groupKey, on standby, without licences.
func standbyServer(t *testing.T, groupKey, member string) *server.AdminClient {
	t.Helper()
	srv, err := server.New(server.Options{Group: groupKey, Member: member, Role: server.RoleStandby,
		DataDir: t.TempDir(), LicenseDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.AdminHandler([]byte("token")))
	t.Cleanup(ts.Close)
	return server.NewAdminClient(ts.URL, "token", &http.Client{Timeout: time.Second})
}

func role(t *testing.T, admin *server.AdminClient) server.Role {
	t.Helper()
	st, err := admin.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Role
}

// The role application the election drives: a fence is in effect when Apply
// returns, and a late "active" (an older sequence number) cannot undo it.
func TestServerControlOrdersRoleChanges(t *testing.T) {
	c, admin := controlAgainstRealServer(t)
	ctx := context.Background()
	serve := func(seq uint64) election.ServerCommand {
		return election.ServerCommand{ServerState: election.ServerState{Seq: seq, Mode: election.Serve, Epoch: 2,
			Until: time.Duration(boottime.Now()) + time.Minute}, Active: "a"}
	}
	if err := c.Apply(ctx, serve(2)); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if r := role(t, admin); r != server.RoleActive {
		t.Fatalf("after serve the server is %s", r)
	}
	fence := election.ServerCommand{ServerState: election.ServerState{Seq: 4, Mode: election.Fence, Epoch: 2}}
	if err := c.Apply(ctx, fence); err != nil {
		t.Fatalf("fence: %v", err)
	}
	if r := role(t, admin); r != server.RoleStandby {
		t.Fatalf("the fence is not in effect when Apply returns: %s", r)
	}
	if err := c.Apply(ctx, serve(3)); err == nil {
		t.Fatal("a late renewal was accepted after the fence")
	}
	if r := role(t, admin); r != server.RoleStandby {
		t.Fatalf("a late renewal undid the fence: %s", r)
	}
	// An older fence that arrives late is superseded, not a failure to
	// escalate.
	old := election.ServerCommand{ServerState: election.ServerState{Seq: 1, Mode: election.Fence, Epoch: 1}}
	if err := c.Apply(ctx, old); err != nil {
		t.Fatalf("a superseded fence reported as failed: %v", err)
	}
	// A deadline already past is never sent.
	past := serve(9)
	past.Until = time.Duration(boottime.Now()) - time.Millisecond
	if err := c.Apply(ctx, past); err == nil {
		t.Fatal("a serve whose deadline passed was applied")
	}
	if r := role(t, admin); r != server.RoleStandby {
		t.Fatalf("server is %s", r)
	}
}
