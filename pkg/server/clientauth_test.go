package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/internal/testpki"
)

func TestParseClientTokens(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{name: "one", in: "abc", want: []string{"abc"}},
		{name: "several with comments and blanks", in: "# printers\nabc\n\n  def  \r\n#old\n", want: []string{"abc", "def"}},
		{name: "empty", in: "", err: "no client token"},
		{name: "only comments", in: "# none\n\n", err: "no client token"},
		{name: "white space inside", in: "ab c\n", err: "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClientTokens([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestClientTokensAllows(t *testing.T) {
	var tok ClientTokens
	if tok.Allows("Bearer x") {
		t.Fatal("an unset token set allows a request")
	}
	tok.Set([]string{"first", "second"})
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"Bearer first", true},
		{"Bearer second", true},
		{"", false},
		{"Bearer", false},
		{"Bearer firs", false},
		{"Bearer first ", false},
		{"bearer first", false},
		{"Basic Zmlyc3Q=", false},
		{"first", false},
	} {
		if got := tok.Allows(tc.header); got != tc.want {
			t.Errorf("Allows(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
	tok.Set(nil)
	if tok.Allows("Bearer first") {
		t.Fatal("an empty token set allows a request")
	}
}

// authServer is a test server whose client API is protected as the
// license-server binary protects it: tokens and a certificate from files,
// served over real TLS on loopback.
type authServer struct {
	*testServer
	auth      *ClientAuth
	url       string
	dir       string
	ca        *testpki.CA
	tlsClient *http.Client
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	// Written next to the target and renamed, as the kubelet swaps a
	// mounted Secret: a reader never sees half a file.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newAuthServer(t *testing.T, tokens string, withTLS bool) *authServer {
	t.Helper()
	ts := newTestServer(t, newSigner(t))
	as := &authServer{testServer: ts, dir: t.TempDir(), ca: testpki.NewCA(t)}
	tokenFile, certFile, keyFile := "", "", ""
	if tokens != "" {
		tokenFile = filepath.Join(as.dir, "tokens")
		writeFile(t, tokenFile, []byte(tokens))
	}
	if withTLS {
		certFile, keyFile = filepath.Join(as.dir, "tls.crt"), filepath.Join(as.dir, "tls.key")
		crt, key := as.ca.Issue(t, "127.0.0.1", "localhost")
		writeFile(t, certFile, crt)
		writeFile(t, keyFile, key)
	}
	auth, err := LoadClientAuth(tokenFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	as.auth = auth
	// Served the way the license-server binary serves it (httptest's TLS
	// mode would add a certificate of its own).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: auth.Handler(ts.Server.ClientHandler(0)), TLSConfig: auth.TLSConfig(),
		ErrorLog: log.New(io.Discard, "", 0)}
	as.url = "http://" + ln.Addr().String()
	if hs.TLSConfig != nil {
		as.url = "https://" + ln.Addr().String()
		go func() { _ = hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { _ = hs.Serve(ln) }()
	}
	t.Cleanup(func() { _ = hs.Close() })
	as.tlsClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: as.ca.Pool()}}}
	t.Cleanup(as.tlsClient.CloseIdleConnections)
	return as
}

// do sends a request with an optional bearer token and returns the status
// and the decoded error body (for answers >= 300).
func do(t *testing.T, hc *http.Client, method, url, token string, body any) (int, Error, http.Header) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&buf).Encode(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var e Error
	if resp.StatusCode >= 300 {
		_ = json.NewDecoder(resp.Body).Decode(&e)
	}
	return resp.StatusCode, e, resp.Header
}

func TestClientTokenRequired(t *testing.T) {
	as := newAuthServer(t, "# station tokens\ntok-one\ntok-two\n", false)
	hc := http.DefaultClient
	checkout := CheckoutRequest{Client: "station-1", Printer: "dock-1", License: "LIC-1"}

	code, e, h := do(t, hc, http.MethodPost, as.url+"/v1/checkouts", "", checkout)
	if code != http.StatusUnauthorized || e.Code != CodeUnauthorized || !strings.Contains(e.Message, "Authorization: Bearer") {
		t.Fatalf("no token: %d %+v, want 401 unauthorized asking for a bearer token", code, e)
	}
	if got := h.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge", got)
	}
	code, e, _ = do(t, hc, http.MethodPost, as.url+"/v1/checkouts", "tok-three", checkout)
	if code != http.StatusUnauthorized || !strings.Contains(e.Message, "not accepted") {
		t.Fatalf("wrong token: %d %+v, want 401 saying the token is not accepted", code, e)
	}
	for _, tok := range []string{"tok-one", "tok-two"} {
		if code, e, _ := do(t, hc, http.MethodPost, as.url+"/v1/checkouts", tok, checkout); code != http.StatusCreated {
			t.Fatalf("token %s: %d %+v, want 201", tok, code, e)
		}
	}
	// Every client endpoint needs the token; only the health probes do not.
	for _, path := range []string{"/v1/status", "/v1/nothing"} {
		if code, _, _ := do(t, hc, http.MethodGet, as.url+path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d, want 401", path, code)
		}
	}
	if code, _, _ := do(t, hc, http.MethodPut, as.url+"/v1/checkouts/x", "", nil); code != http.StatusUnauthorized {
		t.Errorf("PUT without a token = %d, want 401", code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, _ := do(t, hc, http.MethodGet, as.url+path, "", nil); code != http.StatusOK {
			t.Errorf("GET %s without a token = %d, want 200", path, code)
		}
	}
	if code, _, _ := do(t, hc, http.MethodPost, as.url+"/healthz", "", nil); code != http.StatusUnauthorized {
		t.Errorf("POST /healthz without a token = %d, want 401 (only GET probes are open)", code)
	}
}

func TestClientTokensReload(t *testing.T) {
	as := newAuthServer(t, "old-token\n", false)
	hc := http.DefaultClient
	writeFile(t, as.auth.TokenFile, []byte("new-token\n"))
	changed, err := as.auth.Reload()
	if err != nil || len(changed) != 1 || changed[0] != "client tokens" {
		t.Fatalf("Reload = %v, %v; want the client tokens changed", changed, err)
	}
	if code, _, _ := do(t, hc, http.MethodGet, as.url+"/v1/status", "old-token", nil); code != http.StatusUnauthorized {
		t.Fatalf("rotated-out token = %d, want 401", code)
	}
	if code, _, _ := do(t, hc, http.MethodGet, as.url+"/v1/status", "new-token", nil); code != http.StatusOK {
		t.Fatalf("new token = %d, want 200", code)
	}
	// Unchanged files change nothing; a broken file keeps the tokens in force.
	if changed, err := as.auth.Reload(); err != nil || len(changed) != 0 {
		t.Fatalf("Reload of unchanged files = %v, %v; want nothing", changed, err)
	}
	writeFile(t, as.auth.TokenFile, []byte("# emptied by mistake\n"))
	if _, err := as.auth.Reload(); err == nil || !strings.Contains(err.Error(), "no client token") {
		t.Fatalf("Reload of an empty token file = %v, want an error", err)
	}
	if code, _, _ := do(t, hc, http.MethodGet, as.url+"/v1/status", "new-token", nil); code != http.StatusOK {
		t.Fatalf("after a failed reload the token = %d, want 200 (previous tokens stay)", code)
	}
}

func TestClientTLS(t *testing.T) {
	as := newAuthServer(t, "tok", true)
	if !strings.HasPrefix(as.url, "https://") {
		t.Fatalf("url %s is not https", as.url)
	}
	// Verified against the CA, with the token: served.
	if code, e, _ := do(t, as.tlsClient, http.MethodPost, as.url+"/v1/checkouts", "tok",
		CheckoutRequest{Client: "c", Printer: "p", License: "LIC-1"}); code != http.StatusCreated {
		t.Fatalf("checkout over TLS = %d %+v, want 201", code, e)
	}
	// Over TLS, the token is still required.
	if code, _, _ := do(t, as.tlsClient, http.MethodGet, as.url+"/v1/status", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("status over TLS without a token = %d, want 401", code)
	}

	// A client that does not trust the CA refuses the server.
	_, err := http.Get(as.url + "/healthz")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("GET without the CA = %v, want an unknown-authority error", err)
	}
	// Plain HTTP to the TLS port gets no API answer.
	resp, err := http.Get("http://" + strings.TrimPrefix(as.url, "https://") + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP to the TLS port was served")
		}
	}
	// A name the certificate does not cover is refused.
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(as.url, "https://"))
	wrong := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: as.ca.Pool(), ServerName: "plant-b"}}}
	if _, err := wrong.Get("https://" + net.JoinHostPort(host, port) + "/healthz"); err == nil || !strings.Contains(err.Error(), "plant-b") {
		t.Fatalf("GET verifying another name = %v, want a name mismatch", err)
	}
	if as.auth.TLSConfig().MinVersion != tls.VersionTLS12 {
		t.Fatal("TLS below 1.2 is accepted")
	}
}

func TestClientTLSReload(t *testing.T) {
	as := newAuthServer(t, "", true)
	serial := func() string {
		t.Helper()
		as.tlsClient.CloseIdleConnections()
		resp, err := as.tlsClient.Get(as.url + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status without tokens configured = %d, want 200", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	crt, key := as.ca.Issue(t, "127.0.0.1")
	writeFile(t, as.auth.CertFile, crt)
	writeFile(t, as.auth.KeyFile, key)
	if changed, err := as.auth.Reload(); err != nil || len(changed) != 1 || changed[0] != "TLS certificate" {
		t.Fatalf("Reload = %v, %v; want the certificate changed", changed, err)
	}
	after := serial()
	if after == before {
		t.Fatal("the renewed certificate is not served")
	}
	// A key that does not match keeps the current certificate.
	_, otherKey := as.ca.Issue(t, "127.0.0.1")
	writeFile(t, as.auth.KeyFile, otherKey)
	if _, err := as.auth.Reload(); err == nil {
		t.Fatal("Reload of a mismatched key pair succeeded")
	}
	if serial() != after {
		t.Fatal("a failed reload changed the served certificate")
	}
}

func TestLoadClientAuthErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadClientAuth("", filepath.Join(dir, "tls.crt"), ""); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("certificate without key = %v, want an error", err)
	}
	if _, err := LoadClientAuth(filepath.Join(dir, "missing"), "", ""); err == nil || !strings.Contains(err.Error(), "client tokens") {
		t.Fatalf("missing token file = %v, want an error naming the client tokens", err)
	}
	var none *ClientAuth
	h := http.NotFoundHandler()
	if none.TLSConfig() != nil || none.Handler(h) == nil {
		t.Fatal("a nil ClientAuth must mean: no TLS, handler unchanged")
	}
}
