package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

const (
	e2eGroup = "printing/plant-a"
	e2eToken = "e2e-admin-token"
)

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("LICENSEHA_GROUP", "ns/g")
	t.Setenv("LICENSEHA_CHECKOUT_TTL", "5s")
	t.Setenv("LICENSEHA_MEMBER", "from-env")
	cfg, err := parseFlags([]string{"--admin-token-file", "/tok", "--member", "from-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.group != "ns/g" || cfg.checkoutTTL != 5*time.Second || cfg.member != "from-flag" {
		t.Fatalf("config = %+v; want group and TTL from the environment, member from the flag", cfg)
	}
	t.Setenv("LICENSEHA_CHECKOUT_TTL", "soon")
	if _, err := parseFlags([]string{"--admin-token-file", "/tok"}); err == nil || !strings.Contains(err.Error(), "LICENSEHA_CHECKOUT_TTL") {
		t.Fatalf("bad environment value = %v, want an error naming the variable", err)
	}
}

// proc is a license-server process.
type proc struct {
	name        string
	cmd         *exec.Cmd
	url, admin  string
	adminClient *server.AdminClient
	licDir      string
	logs        *strings.Builder
	mu          sync.Mutex
	exited      chan struct{}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startServer(t *testing.T, bin, name, role, keys, licDir, tokenFile string) *proc {
	t.Helper()
	p := &proc{name: name, licDir: licDir, logs: &strings.Builder{}, exited: make(chan struct{})}
	listen, adminListen := freePort(t), freePort(t)
	p.url, p.admin = "http://"+listen, "http://"+adminListen
	p.cmd = exec.Command(bin, "--listen", listen, "--admin-listen", adminListen, "--admin-token-file", tokenFile,
		"--data-dir", t.TempDir(), "--license-dir", licDir, "--trusted-keys", keys,
		"--group", e2eGroup, "--member", name, "--role", role, "--checkout-ttl", "30s")
	w := lockedWriter{&p.mu, p.logs}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s logs:\n%s", name, p.logs.String())
			p.mu.Unlock()
		}
	})
	p.adminClient = server.NewAdminClient(p.admin, e2eToken, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become healthy: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) setRole(t *testing.T, role server.Role, epoch uint64, active string) {
	t.Helper()
	if _, err := p.adminClient.SetRole(context.Background(), server.RoleRequest{Role: role, Epoch: epoch, Active: active}); err != nil {
		t.Fatalf("%s: set role %s: %v", p.name, role, err)
	}
}

func (p *proc) checkoutIDs(t *testing.T) []string {
	t.Helper()
	snap, err := p.adminClient.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, c := range snap.Checkouts {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestFailoverBetweenProcesses builds license-server, starts two processes
// and checks that a client keeps every checkout through a fenced switchover
// (following the active hint) and through a crash of the active process.
func TestFailoverBetweenProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts server processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "license-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := licensing.EncodePublicKey(pub)
	keys := filepath.Join(dir, "trusted.pem")
	tokenFile := filepath.Join(dir, "token")
	licDir := filepath.Join(dir, "licenses")
	must(t, os.WriteFile(keys, pubPEM, 0o600))
	must(t, os.WriteFile(tokenFile, []byte(e2eToken+"\n"), 0o600))
	must(t, os.Mkdir(licDir, 0o750))
	issue := func(id string, printers int) {
		now := time.Now()
		data, err := licensing.Issue(priv, licensing.License{ID: id, Product: "LabelDesigner", Edition: licensing.EditionEnterprise,
			Printers: printers, Group: e2eGroup, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
		must(t, err)
		must(t, os.WriteFile(filepath.Join(licDir, strings.ToLower(id)+".lic"), data, 0o600))
	}
	issue("LIC-1", 10)

	a := startServer(t, bin, "a", "active", keys, licDir, tokenFile)
	b := startServer(t, bin, "b", "standby", keys, licDir, tokenFile)

	var mu sync.Mutex
	var moves []client.Move
	c, err := client.New(client.Config{
		Endpoints: []string{a.url, b.url}, Members: map[string]string{"a": a.url, "b": b.url},
		ClientID: "station-7", HeartbeatInterval: -1, HomeCheckInterval: -1, RequestTimeout: time.Second,
		OnMove: func(m client.Move) { mu.Lock(); moves = append(moves, m); mu.Unlock() },
	})
	must(t, err)
	defer c.Close()
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := c.Checkout(ctx, fmt.Sprintf("zebra-%d", i), "LIC-1"); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.Join(ids(c.Checkouts()), ",")

	// Switchover: the supervisor promotes b and fences a, which names b.
	// b never saw a snapshot, so only re-assertion can give it the checkouts.
	b.setRole(t, server.RoleActive, 1, "")
	a.setRole(t, server.RoleStandby, 1, "b")
	start := time.Now()
	heartbeatAll(t, c)
	t.Logf("Switchover: client moved in %v", time.Since(start))
	if c.Endpoint() != b.url {
		t.Fatalf("client on %s after switchover, want b", c.Endpoint())
	}
	if got := strings.Join(b.checkoutIDs(t), ","); got != want {
		t.Fatalf("b holds %s, want every checkout %s", got, want)
	}

	// Crash: b dies; a is promoted at a newer epoch.
	must(t, b.cmd.Process.Signal(syscall.SIGKILL))
	<-b.exited
	a.setRole(t, server.RoleActive, 2, "")
	start = time.Now()
	heartbeatAll(t, c)
	t.Logf("Crash failover: client moved in %v", time.Since(start))
	if c.Endpoint() != a.url {
		t.Fatalf("client on %s after b crashed, want a", c.Endpoint())
	}
	if got := strings.Join(a.checkoutIDs(t), ","); got != want {
		t.Fatalf("a holds %s, want every checkout %s", got, want)
	}
	mu.Lock()
	if len(moves) != 2 || moves[0].Reason != "not active" || moves[1].Reason != "connection failed" {
		t.Fatalf("moves = %+v, want a hinted switchover and a crash failover", moves)
	}
	mu.Unlock()

	// Role active from an old epoch is refused; a fence from one is applied
	// and the server keeps its epoch.
	if _, err := a.adminClient.SetRole(ctx, server.RoleRequest{Role: server.RoleActive, Epoch: 1}); !server.IsCode(err, server.CodeStaleEpoch) {
		t.Fatalf("role active from epoch 1 after epoch 2 = %v, want stale_epoch", err)
	}
	if st, err := a.adminClient.SetRole(ctx, server.RoleRequest{Role: server.RoleStandby, Epoch: 1}); err != nil ||
		st.Role != server.RoleStandby || st.Epoch != 2 {
		t.Fatalf("fence from epoch 1 after epoch 2 = %+v, %v; want standby at epoch 2", st, err)
	}

	// Sequenced requests: a renewal of role active that arrives after a
	// newer fence is refused, and so is role active without seq.
	if _, err := a.adminClient.SetRole(ctx, server.RoleRequest{Role: server.RoleActive, Epoch: 2, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.adminClient.SetRole(ctx, server.RoleRequest{Role: server.RoleStandby, Epoch: 2, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	for _, late := range []server.RoleRequest{{Role: server.RoleActive, Epoch: 2, Seq: 2}, {Role: server.RoleActive, Epoch: 2}} {
		if _, err := a.adminClient.SetRole(ctx, late); !server.IsCode(err, server.CodeStaleSequence) {
			t.Fatalf("role active with seq %d after a fence with seq 3 = %v, want stale_sequence", late.Seq, err)
		}
	}
	if st, err := a.adminClient.State(ctx); err != nil || st.Role != server.RoleStandby {
		t.Fatalf("state after the late requests = %+v, %v; want standby", st, err)
	}

	// SIGHUP reloads the licence directory.
	issue("LIC-2", 3)
	must(t, a.cmd.Process.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(5 * time.Second)
	for {
		lics, err := a.adminClient.Licenses(ctx)
		must(t, err)
		if len(lics) == 2 && lics[1].Valid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("licences after SIGHUP = %+v, want LIC-2 loaded", lics)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.mu.Lock()
	logs := a.logs.String()
	a.mu.Unlock()
	if strings.Contains(logs, e2eToken) || strings.Contains(logs, "signature") {
		t.Fatal("server logs contain the admin token or licence signatures")
	}
}

func heartbeatAll(t *testing.T, c *client.Client) {
	t.Helper()
	for _, h := range c.Checkouts() {
		if err := c.Heartbeat(context.Background(), h.ID); err != nil {
			t.Fatalf("heartbeat %s: %v", h.ID, err)
		}
	}
}

func ids(cs []client.Checkout) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
