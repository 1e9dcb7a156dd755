package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/licenseha/licenseha/internal/testpki"
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

func TestVersionFlag(t *testing.T) {
	cfg, err := parseFlags([]string{"--version"})
	if err != nil || !cfg.showVersion {
		t.Fatalf("--version alone = %+v, %v; want it accepted without the required flags", cfg, err)
	}
	// LICENSEHA_VERSION is not the --version flag: it neither stops the
	// server nor fails to parse as a boolean.
	t.Setenv("LICENSEHA_VERSION", "v9.9.9")
	cfg, err = parseFlags([]string{"--group", "ns/g", "--admin-token-file", "/tok", "--member", "m"})
	if err != nil || cfg.showVersion {
		t.Fatalf("with LICENSEHA_VERSION set = %+v, %v; want a normal start", cfg, err)
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

// startServer starts a license-server process; extra flags are appended
// (with --tls-cert-file the client API URL is https).
func startServer(t *testing.T, bin, name, role, keys, licDir, tokenFile string, extra ...string) *proc {
	t.Helper()
	p := &proc{name: name, licDir: licDir, logs: &strings.Builder{}, exited: make(chan struct{})}
	listen, adminListen := freePort(t), freePort(t)
	scheme, health := "http://", http.DefaultClient
	if slices.Contains(extra, "--tls-cert-file") {
		// Only to wait for the process; the tests verify the certificate.
		scheme = "https://"
		health = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	}
	p.url, p.admin = scheme+listen, "http://"+adminListen
	args := []string{"--listen", listen, "--admin-listen", adminListen, "--admin-token-file", tokenFile,
		"--data-dir", t.TempDir(), "--license-dir", licDir, "--trusted-keys", keys,
		"--group", e2eGroup, "--member", name, "--role", role, "--checkout-ttl", "30s"}
	p.cmd = exec.Command(bin, append(args, extra...)...)
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
		resp, err := health.Get(p.url + "/healthz")
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

// buildServer builds the license server into a temporary directory, which it
// returns with the binary's path; with -short the test is skipped instead.
func buildServer(t *testing.T) (dir, bin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts server processes")
	}
	dir = t.TempDir()
	bin = filepath.Join(dir, "license-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir, bin
}

// TestFailoverBetweenProcesses builds license-server, starts two processes
// and checks that a client keeps every checkout through a fenced switchover
// (following the active hint) and through a crash of the active process.
func TestFailoverBetweenProcesses(t *testing.T) {
	dir, bin := buildServer(t)
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
	t.Logf("Switchover: client moved in %v", movedTo(t, c, b, want, "switchover"))

	// Crash: b dies; a is promoted at a newer epoch.
	must(t, b.cmd.Process.Signal(syscall.SIGKILL))
	<-b.exited
	a.setRole(t, server.RoleActive, 2, "")
	t.Logf("Crash failover: client moved in %v", movedTo(t, c, a, want, "b crashed"))
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

func TestClientAuthFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--tls-cert-file", "/c"}, "go together"},
		{[]string{"--tls-key-file", "/k"}, "go together"},
		{[]string{"--client-auth-reload-interval", "0s"}, "must be positive"},
	} {
		if _, err := parseFlags(append([]string{"--group", "ns/g", "--admin-token-file", "/tok"}, tc.args...)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.err)
		}
	}
	t.Setenv("LICENSEHA_CLIENT_TOKEN_FILE", "/tokens")
	cfg, err := parseFlags([]string{"--group", "ns/g", "--admin-token-file", "/tok", "--tls-cert-file", "/c", "--tls-key-file", "/k"})
	if err != nil || cfg.clientTokenFile != "/tokens" || cfg.tlsCertFile != "/c" || cfg.tlsKeyFile != "/k" {
		t.Fatalf("parseFlags = %+v, %v; want the client auth files from flags and environment", cfg, err)
	}
}

// TestClientAuthBetweenProcesses starts two license-server processes whose
// client API needs a token and speaks TLS with certificates from one CA, and
// checks that the failover client keeps its checkouts through a crash of the
// active process; tokens rotate without a restart.
func TestClientAuthBetweenProcesses(t *testing.T) {
	dir, bin := buildServer(t)
	pub, priv, err := licensing.GenerateKey()
	must(t, err)
	pubPEM, _ := licensing.EncodePublicKey(pub)
	keys := filepath.Join(dir, "trusted.pem")
	adminToken := filepath.Join(dir, "admin-token")
	clientTokens := filepath.Join(dir, "client-tokens")
	licDir := filepath.Join(dir, "licenses")
	must(t, os.WriteFile(keys, pubPEM, 0o600))
	must(t, os.WriteFile(adminToken, []byte(e2eToken+"\n"), 0o600))
	must(t, os.WriteFile(clientTokens, []byte("station-token\n"), 0o600))
	must(t, os.Mkdir(licDir, 0o750))
	now := time.Now()
	lic, err := licensing.Issue(priv, licensing.License{ID: "LIC-1", Product: "LabelDesigner", Edition: licensing.EditionEnterprise,
		Printers: 10, Group: e2eGroup, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(licDir, "lic-1.lic"), lic, 0o600))

	ca := testpki.NewCA(t)
	start := func(name, role string) *proc {
		crt, key := ca.Issue(t, "127.0.0.1", "localhost")
		crtFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		must(t, os.WriteFile(crtFile, crt, 0o600))
		must(t, os.WriteFile(keyFile, key, 0o600))
		return startServer(t, bin, name, role, keys, licDir, adminToken, "--client-token-file", clientTokens,
			"--tls-cert-file", crtFile, "--tls-key-file", keyFile, "--client-auth-reload-interval", "100ms")
	}
	a, b := start("a", "active"), start("b", "standby")

	c, err := client.New(client.Config{
		Endpoints: []string{a.url, b.url}, Members: map[string]string{"a": a.url, "b": b.url},
		ClientID: "station-7", Token: "station-token", RootCAs: ca.CertPEM,
		HeartbeatInterval: -1, HomeCheckInterval: -1, RequestTimeout: time.Second,
	})
	must(t, err)
	defer c.Close()
	ctx := context.Background()
	co, err := c.Checkout(ctx, "zebra-1", "LIC-1")
	must(t, err)

	// Crash: a dies, b is promoted; the client moves over TLS and
	// re-asserts its checkout there with its token.
	must(t, a.cmd.Process.Signal(syscall.SIGKILL))
	<-a.exited
	b.setRole(t, server.RoleActive, 1, "")
	movedTo(t, c, b, co.ID, "a crashed")

	// Rotation: the token file changes; the server picks it up without a
	// restart and refuses the old token.
	must(t, os.WriteFile(clientTokens, []byte("rotated-token\n"), 0o600))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Status(ctx)
		var re *server.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusUnauthorized && server.IsCode(err, server.CodeUnauthorized) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status with the rotated-out token = %v, want 401 unauthorized", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rotated, err := client.New(client.Config{Endpoints: []string{b.url}, ClientID: "station-8", Token: "rotated-token",
		RootCAs: ca.CertPEM, HeartbeatInterval: -1, HomeCheckInterval: -1})
	must(t, err)
	defer rotated.Close()
	if _, err := rotated.Status(ctx); err != nil {
		t.Fatalf("status with the rotated token: %v", err)
	}
	b.mu.Lock()
	logs := b.logs.String()
	b.mu.Unlock()
	if strings.Contains(logs, "station-token") || strings.Contains(logs, "rotated-token") {
		t.Fatal("server logs contain a client token")
	}
	if !strings.Contains(logs, "Reloaded client API credentials") {
		t.Fatalf("server logs do not record the reload:\n%s", logs)
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

// movedTo heartbeats every checkout of c and fails unless c then talks to p
// and p holds exactly the checkouts want (their IDs, comma-separated); after
// names what happened, for the messages. It returns how long the
// heartbeats took.
func movedTo(t *testing.T, c *client.Client, p *proc, want, after string) time.Duration {
	t.Helper()
	start := time.Now()
	heartbeatAll(t, c)
	took := time.Since(start)
	if c.Endpoint() != p.url {
		t.Fatalf("client on %s after %s, want %s", c.Endpoint(), after, p.name)
	}
	if got := strings.Join(p.checkoutIDs(t), ","); got != want {
		t.Fatalf("%s holds %s after %s, want the checkouts %s", p.name, got, after, want)
	}
	return took
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
