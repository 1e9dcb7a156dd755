package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/licensing"
)

const (
	testGroup = "printing/plant-a"
	testToken = "s3cret-admin-token"
)

var testStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// signer issues licences with one key trusted by the test servers.
type signer struct {
	priv ed25519.PrivateKey
	ring licensing.KeyRing
}

func newSigner(t testing.TB) *signer {
	t.Helper()
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &signer{priv: priv, ring: licensing.NewKeyRing(pub)}
}

func (s *signer) license(id, product string, printers int) licensing.License {
	return licensing.License{
		ID: id, Product: product, Edition: licensing.EditionEnterprise, Printers: printers,
		Group: testGroup, IssuedAt: testStart, NotBefore: testStart.AddDate(0, -1, 0), NotAfter: testStart.AddDate(1, 0, 0),
	}
}

// licenceDir is a new licence directory holding one licence, LIC-1 for
// LabelDesigner with the given printers, in file.
func (s *signer) licenceDir(t testing.TB, file string, printers int) string {
	t.Helper()
	dir := t.TempDir()
	s.write(t, dir, file, s.license("LIC-1", "LabelDesigner", printers))
	return dir
}

func (s *signer) write(t testing.TB, dir, file string, l licensing.License) {
	t.Helper()
	data, err := licensing.Issue(s.priv, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testServer is a server with its client and admin APIs on real loopback sockets.
type testServer struct {
	*Server
	clock  *clock
	client *httptest.Server
	admin  *httptest.Server
	opts   Options
}

type option func(*Options)

func withRole(r Role) option         { return func(o *Options) { o.Role = r } }
func withMember(m string) option     { return func(o *Options) { o.Member = m } }
func withDataDir(d string) option    { return func(o *Options) { o.DataDir = d } }
func withLicenseDir(d string) option { return func(o *Options) { o.LicenseDir = d } }
func withMaxPerClient(n int) option  { return func(o *Options) { o.MaxCheckoutsPerClient = n } }
func withMaxPerAddress(n int) option { return func(o *Options) { o.MaxCheckoutsPerAddress = n } }
func withUsageLimits(rowsPerPeriod, months int) option {
	return func(o *Options) { o.UsageRowsPerPeriod, o.UsageMonths = rowsPerPeriod, months }
}
func withBoottime(f func() int64) option {
	return func(o *Options) { o.BoottimeNow = f }
}

// newTestServer starts a server with one licence LIC-1 (product
// LabelDesigner, 2 printers) unless a licence directory is given.
func newTestServer(t testing.TB, sg *signer, opts ...option) *testServer {
	t.Helper()
	o := Options{
		Group: testGroup, Member: "a", DataDir: t.TempDir(), TrustedKeys: sg.ring,
		CheckoutTTL: 30 * time.Second, Version: "test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range opts {
		f(&o)
	}
	if o.LicenseDir == "" {
		o.LicenseDir = t.TempDir()
		sg.write(t, o.LicenseDir, "lic-1.lic", sg.license("LIC-1", "LabelDesigner", 2))
	}
	c := &clock{t: testStart}
	o.Now = c.Now
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, clock: c, opts: o,
		client: httptest.NewServer(srv.ClientHandler(1 << 10)),
		admin:  httptest.NewServer(srv.AdminHandler([]byte(testToken)))}
	t.Cleanup(func() {
		ts.client.Close()
		ts.admin.Close()
		_ = srv.Close()
	})
	return ts
}

func (ts *testServer) adminClient() *AdminClient {
	return NewAdminClient(ts.admin.URL, testToken, ts.admin.Client())
}

// call sends a JSON request and decodes the answer into out (when not nil).
// body may be a string (sent verbatim) or a value to encode.
func call(t testing.TB, method, url string, body, out any) int {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decoding answer: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// checkout posts a checkout and returns the status, the checkout and the error body.
func (ts *testServer) checkout(t testing.TB, client, printer, license string) (int, Checkout, Error) {
	t.Helper()
	var raw json.RawMessage
	code := call(t, http.MethodPost, ts.client.URL+"/v1/checkouts", CheckoutRequest{client, printer, license}, &raw)
	var c Checkout
	var e Error
	if code == http.StatusCreated {
		_ = json.Unmarshal(raw, &c)
	} else {
		_ = json.Unmarshal(raw, &e)
	}
	return code, c, e
}
