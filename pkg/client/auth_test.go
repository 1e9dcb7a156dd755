package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseha/licenseha/internal/testpki"
	"github.com/licenseha/licenseha/pkg/server"
)

// secureMember serves a member's client API the way a group with
// spec.clientAccess does: over TLS with its own certificate, and only for a
// bearer token.
type secureMember struct {
	url   string
	hs    *http.Server
	hits  atomic.Int64
	noTok atomic.Int64 // requests that arrived without a token
}

// secure puts every member of g behind TLS and the token check. Member a is
// reached as 127.0.0.1 and b as localhost, each with a certificate for its
// own name only, so a client that verified every endpoint against one name
// could not fail over.
func secure(t *testing.T, g map[string]*member, ca *testpki.CA, token string) map[string]*secureMember {
	t.Helper()
	hosts := map[string]string{"a": "127.0.0.1", "b": "localhost"}
	out := map[string]*secureMember{}
	for name, m := range g {
		host := hosts[name]
		crt, key := ca.Issue(t, host)
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		var tokens server.ClientTokens
		tokens.Set([]string{token})
		sm := &secureMember{}
		inner := server.RequireClientToken(&tokens, m.srv.ClientHandler(0))
		sm.hs = &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sm.hits.Add(1)
				if r.Header.Get("Authorization") == "" {
					sm.noTok.Add(1)
				}
				inner.ServeHTTP(w, r)
			}),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
			ErrorLog:  log.New(io.Discard, "", 0),
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		sm.url = "https://" + net.JoinHostPort(host, port)
		go func() { _ = sm.hs.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { _ = sm.hs.Close() })
		out[name] = sm
	}
	return out
}

func secureClient(t *testing.T, s map[string]*secureMember, mv *moves, mutate func(*Config)) *Client {
	t.Helper()
	return clientOf(t, s["a"].url, s["b"].url, mv, mutate)
}

func TestFailoverWithTokenAndTLS(t *testing.T) {
	ca := testpki.NewCA(t)
	g := newGroup(t, 5, "a", "b")
	s := secure(t, g, ca, "station-token")
	var mv moves
	c := secureClient(t, s, &mv, func(cfg *Config) {
		cfg.Token, cfg.RootCAs = "station-token", ca.CertPEM
		cfg.HomeCheckInterval = 20 * time.Millisecond
	})
	ctx := context.Background()
	held, err := c.Checkout(ctx, "p1", "LIC-1")
	if err != nil {
		t.Fatalf("checkout over TLS with a token: %v", err)
	}

	// Switchover: a names b as active; the client follows the hint and
	// re-asserts its checkout on b, verifying b's own certificate.
	failover(t, g, "b", 1)
	if err := c.Heartbeat(ctx, held.ID); err != nil || c.Endpoint() != s["b"].url {
		t.Fatalf("after the switchover: %v, on %s; want b", err, c.Endpoint())
	}
	if !checkoutIDs(t, g["b"].srv)[held.ID] {
		t.Fatal("b does not hold the re-asserted checkout")
	}

	// Crash: b's listener goes; a serves again. The home check and the
	// next request find a over TLS.
	_ = s["b"].hs.Close()
	failover(t, map[string]*member{"a": g["a"]}, "a", 2)
	if err := c.Heartbeat(ctx, held.ID); err != nil {
		t.Fatalf("heartbeat after b crashed: %v", err)
	}
	if c.Endpoint() != s["a"].url || !checkoutIDs(t, g["a"].srv)[held.ID] {
		t.Fatalf("client on %s; want back on a holding the checkout", c.Endpoint())
	}
	for name, sm := range s {
		if sm.noTok.Load() != 0 {
			t.Fatalf("%s received %d requests without the token", name, sm.noTok.Load())
		}
	}
	if m := mv.list(); len(m) < 2 || m[0].Reason != "not active" {
		t.Fatalf("moves = %+v, want a hinted move to b and a move back to a", m)
	}
}

func TestWrongTokenIsNotAFailover(t *testing.T) {
	ca := testpki.NewCA(t)
	g := newGroup(t, 5, "a", "b")
	s := secure(t, g, ca, "station-token")
	var mv moves
	c := secureClient(t, s, &mv, func(cfg *Config) { cfg.Token, cfg.RootCAs = "stale-token", ca.CertPEM })
	_, err := c.Checkout(context.Background(), "p1", "LIC-1")
	var re *server.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || !server.IsCode(err, server.CodeUnauthorized) {
		t.Fatalf("checkout with a wrong token = %v, want 401 unauthorized", err)
	}
	// Every member shares the group's tokens: trying another one would only
	// spread the refusal.
	if len(mv.list()) != 0 || s["b"].hits.Load() != 0 {
		t.Fatalf("moves %+v, b hit %d times; want no failover on 401", mv.list(), s["b"].hits.Load())
	}
}

func TestUntrustedCertificateFailsOver(t *testing.T) {
	trusted, other := testpki.NewCA(t), testpki.NewCA(t)
	g := newGroup(t, 5, "a", "b")
	sa := secure(t, map[string]*member{"a": g["a"]}, other, "tok") // a's certificate is from a CA the client does not trust
	sb := secure(t, map[string]*member{"b": g["b"]}, trusted, "tok")
	failover(t, g, "b", 1)
	var mv moves
	c := secureClient(t, map[string]*secureMember{"a": sa["a"], "b": sb["b"]}, &mv, func(cfg *Config) {
		cfg.Token = "tok"
		// The roots through TLSConfig this time.
		cfg.TLSConfig = &tls.Config{RootCAs: trusted.Pool(), MinVersion: tls.VersionTLS12}
	})
	co, err := c.Checkout(context.Background(), "p1", "LIC-1")
	if err != nil || co.Member != "b" {
		t.Fatalf("checkout = %+v, %v; want it served by b after a's certificate was refused", co, err)
	}
	if m := mv.list(); len(m) != 1 || m[0].Reason != "connection failed" {
		t.Fatalf("moves = %+v, want one move away from a", m)
	}

	// Nobody trusted: the error says why.
	c2 := secureClient(t, map[string]*secureMember{"a": sa["a"], "b": sa["a"]}, nil, func(cfg *Config) {
		cfg.Endpoints, cfg.Members = []string{sa["a"].url}, nil
		cfg.RootCAs = trusted.CertPEM
	})
	_, err = c2.Status(context.Background())
	var unknown x509.UnknownAuthorityError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &unknown) {
		t.Fatalf("status from an untrusted server = %v, want ErrUnavailable wrapping an unknown-authority error", err)
	}
}

func TestTLSOptionsAreChecked(t *testing.T) {
	base := Config{Endpoints: []string{"https://plant-a:5160"}, ClientID: "c", HeartbeatInterval: -1, HomeCheckInterval: -1}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		err    string
	}{
		{"roots with an own HTTP client", func(c *Config) { c.HTTPClient, c.RootCAs = http.DefaultClient, []byte("x") }, "HTTPClient"},
		{"TLS config with an own HTTP client", func(c *Config) { c.HTTPClient, c.TLSConfig = http.DefaultClient, &tls.Config{} }, "HTTPClient"},
		{"roots that hold no certificate", func(c *Config) { c.RootCAs = []byte("not a certificate") }, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.err)
			}
		})
	}
	// The caller's TLS configuration is not modified.
	ca := testpki.NewCA(t)
	own := &tls.Config{ServerName: ""}
	cfg := base
	cfg.TLSConfig, cfg.RootCAs = own, ca.CertPEM
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if own.RootCAs != nil {
		t.Fatal("New modified the caller's TLSConfig")
	}
}
