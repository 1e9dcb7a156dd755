package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/notify/notifytest"
)

// hook is a webhook receiver on loopback that counts the requests it gets.
func hook(t *testing.T, tlsServer bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	srv := httptest.NewUnstartedServer(h)
	if tlsServer {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

func send(w Webhook) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if w.Timeout == 0 {
		w.Timeout = 3 * time.Second
	}
	return w.Send(ctx, event)
}

func TestWebhookRefusesInternalTargetsByDefault(t *testing.T) {
	srv, hits := hook(t, false)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct{ url, why string }{
		{srv.URL, "loopback address"},                                  // 127.0.0.1, where the test server listens
		{"http://localhost:" + strconv.Itoa(port) + "/", "local host"}, // a name for it
		{"http://[::1]:" + strconv.Itoa(port) + "/", "loopback address"},
		{"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/", "loopback address"},
		{"http://0.0.0.0:" + strconv.Itoa(port) + "/", "unspecified address"},
		{"http://169.254.169.254/latest/meta-data/", "link-local address"},
		{"http://[fe80::1%25eth0]/", "link-local address"},
		{"http://10.96.0.1/", "private"},
		{"http://172.16.3.4/", "private"},
		{"http://192.168.1.10/", "private"},
		{"http://[fd12:3456::1]/", "private"},
		{"http://100.64.0.10/", "private"},
		{"http://[64:ff9b::a9fe:a9fe]/", "link-local address"}, // NAT64 for 169.254.169.254
		{"http://kubernetes.default.svc/", "cluster-internal name"},
		{"http://hook.printing.svc.cluster.local:8080/x", "cluster-internal name"},
		{"http://alerts/", "single-label name"},
		{"ftp://example.com/", "only http and https"},
	} {
		err := send(Webhook{URL: tc.url})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: err = %v, want refused (%s)", tc.url, err, tc.why)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the internal receiver got %d requests", n)
	}
}

func TestWebhookInternalTargetsWhenAllowed(t *testing.T) {
	srv, hits := hook(t, false)
	if err := send(Webhook{URL: srv.URL, Policy: Policy{AllowInternal: true}}); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 {
		t.Fatalf("hits = %d, want 1", hits.Load())
	}
	// Link-local stays refused: cloud metadata services answer there.
	err := send(Webhook{URL: "http://169.254.169.254/latest/meta-data/", Policy: Policy{AllowInternal: true}})
	if !errors.Is(err, ErrRefused) {
		t.Errorf("link-local with AllowInternal: err = %v, want refused", err)
	}
}

// The address is checked when the connection is made, after resolution: a
// name that resolves to a forbidden address is refused even when it passed
// the name check (DNS rebinding: the name resolved elsewhere when checked).
func TestDialerChecksTheResolvedAddress(t *testing.T) {
	srv, hits := hook(t, false)
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	for _, addr := range []string{"localhost:" + port, "127.0.0.1:" + port} {
		_, err := Policy{}.dialer(time.Second).DialContext(context.Background(), "tcp", addr)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("dial %s: err = %v, want refused at connect", addr, err)
		}
	}
	c, err := Policy{AllowInternal: true}.dialer(time.Second).DialContext(context.Background(), "tcp", "localhost:"+port)
	if err != nil {
		t.Fatalf("dial with AllowInternal: %v", err)
	}
	c.Close()
	if hits.Load() != 0 {
		t.Errorf("hits = %d", hits.Load())
	}
}

func TestWebhookBearerTokenOnlyOverHTTPS(t *testing.T) {
	plain, plainHits := hook(t, false)
	err := send(Webhook{URL: plain.URL, Token: "s3cret", Policy: Policy{AllowInternal: true}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "only over https") {
		t.Errorf("token over http: err = %v, want refused", err)
	}
	userinfo := strings.Replace(plain.URL, "http://", "http://ops:hunter2@", 1)
	err = send(Webhook{URL: userinfo, Policy: Policy{AllowInternal: true}})
	if !errors.Is(err, ErrRefused) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("credentials in an http URL: err = %v, want refused, without the password", err)
	}
	if plainHits.Load() != 0 {
		t.Errorf("the http receiver got %d requests", plainHits.Load())
	}
	if err := send(Webhook{URL: plain.URL, Token: "s3cret", Policy: Policy{AllowInternal: true, AllowHTTPCredentials: true}}); err != nil {
		t.Errorf("token over http, allowed: %v", err)
	}

	secure, secureHits := hook(t, true)
	pool := secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	if err := send(Webhook{URL: secure.URL, Token: "s3cret", Policy: Policy{AllowInternal: true},
		TLSConfig: &tls.Config{RootCAs: pool}}); err != nil {
		t.Errorf("token over https: %v", err)
	}
	if secureHits.Load() != 1 {
		t.Errorf("the https receiver got %d requests, want 1", secureHits.Load())
	}
}

func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	target, targetHits := hook(t, false)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/elsewhere", http.StatusTemporaryRedirect))
	defer redirect.Close()
	err := send(Webhook{URL: redirect.URL, Token: "s3cret", Policy: Policy{AllowInternal: true, AllowHTTPCredentials: true}})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("err = %v, want the redirect reported as an error", err)
	}
	if targetHits.Load() != 0 {
		t.Errorf("the redirect was followed")
	}
}

func TestWebhookErrorsNameNoSecret(t *testing.T) {
	// Nothing listens on port 1; every error must name the target without
	// its credentials and query.
	const u = "http://ops:hunter2@127.0.0.1:1/hook/path?token=abc123&x=1"
	for _, p := range []Policy{{}, {AllowInternal: true}, {AllowInternal: true, AllowHTTPCredentials: true}} {
		err := send(Webhook{URL: u, Token: "t0ken", Policy: p})
		if err == nil {
			t.Fatalf("policy %+v: no error", p)
		}
		for _, secret := range []string{"hunter2", "ops", "abc123", "token=", "t0ken"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("policy %+v: error %q contains %q", p, err, secret)
			}
		}
		if !strings.Contains(err.Error(), "http://redacted@127.0.0.1:1/hook/path?redacted") {
			t.Errorf("policy %+v: error %q does not name the redacted target", p, err)
		}
	}
	// An unparsable URL with credentials: url.Parse would quote it whole.
	err := send(Webhook{URL: "http://ops:hunter2@[::1/%zz?token=abc123"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "abc123") {
		t.Errorf("invalid URL: err = %v", err)
	}
	// An error status names the redacted URL too.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer srv.Close()
	err = send(Webhook{URL: srv.URL + "/h?key=abc123", Policy: Policy{AllowInternal: true}})
	if err == nil || strings.Contains(err.Error(), "abc123") || !strings.Contains(err.Error(), "403") {
		t.Errorf("error status: err = %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/services/T0/B0":                 "https://hooks.example.com/services/T0/B0",
		"https://user:pass@hooks.example.com/x?token=abc":          "https://redacted@hooks.example.com/x?redacted",
		"https://hooks.example.com:8443/a%20b?":                    "https://hooks.example.com:8443/a%20b?redacted",
		"not a url":                                                "<invalid URL>",
		"https://hooks.example.com/x#frag":                         "https://hooks.example.com/x",
		"http://[::1]:8080/p?sig=1":                                "http://[::1]:8080/p?redacted",
		"https://hooks.example.com/x?token=abc&other=" + "%zz-bad": "https://hooks.example.com/x?redacted",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmailRefusesInternalRelayByDefault(t *testing.T) {
	r := startRelay(t, notifytest.Implicit, relayCA(t))
	for _, mode := range []TLSMode{StartTLS, ImplicitTLS, NoTLS} {
		for _, host := range []string{"127.0.0.1", "localhost", "mail.default.svc.cluster.local", "169.254.169.254"} {
			m := Email{Host: host, Port: r.Port, From: "ops@example.com", To: []string{"oncall@example.com"}, TLS: mode, Timeout: 2 * time.Second}
			if err := m.Send(context.Background(), event); !errors.Is(err, ErrRefused) {
				t.Errorf("%s relay %s: err = %v, want refused", mode, host, err)
			}
		}
	}
	if r.AuthAttempts() != 0 || len(r.Messages()) != 0 {
		t.Errorf("the internal relay was reached")
	}
}
