package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var event = Event{Kind: "LicenseTriad", Namespace: "printing", Name: "plant-a", Reason: "FailedOver",
	Member: "b", Epoch: 4, Message: "Member b took over (epoch 4)", Time: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}

func TestWebhookPostsJSONWithBearerToken(t *testing.T) {
	var got Event
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer srv.Close()

	// The test server listens on loopback over http: both need allowing.
	allow := Policy{AllowInternal: true, AllowHTTPCredentials: true}
	if err := (Webhook{URL: srv.URL, Token: "s3cret", Policy: allow}).Send(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q, want the bearer token", auth)
	}
	if got != event {
		t.Errorf("received %+v, want %+v", got, event)
	}
}

func TestWebhookErrorStatusIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	err := (Webhook{URL: srv.URL, Policy: Policy{AllowInternal: true}}).Send(context.Background(), event)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want the 401 named", err)
	}
}

// A real SMTP relay (github.com/emersion/go-smtp) with STARTTLS and AUTH
// PLAIN, on loopback.
type relay struct {
	mu       sync.Mutex
	from     string
	to       []string
	data     string
	tls      bool
	user     string
	password string
}

type session struct {
	r    *relay
	conn *smtp.Conn
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.r.user || pass != s.r.password {
			return errors.New("invalid credentials")
		}
		return nil
	}), nil
}
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.from = from
	_, s.r.tls = s.conn.TLSConnectionState()
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.to = append(s.r.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.data = string(b)
	return err
}
func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func startRelay(t *testing.T, withTLS bool) (*relay, int, *x509.CertPool) {
	r := &relay{user: "ops", password: "hunter2"}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{r: r, conn: c}, nil }))
	srv.Domain = "localhost"
	var pool *x509.CertPool
	if withTLS {
		var cert tls.Certificate
		cert, pool = selfSigned(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r, l.Addr().(*net.TCPAddr).Port, pool
}

func TestEmailOverSTARTTLSWithAuth(t *testing.T) {
	r, port, pool := startRelay(t, true)
	m := Email{Host: "127.0.0.1", Port: port, From: "ops@example.com", To: []string{"oncall@example.com", "lead@example.com"},
		StartTLS: true, Username: "ops", Password: "hunter2", TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		Policy: Policy{AllowInternal: true}}
	if err := m.Send(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.tls {
		t.Error("the mail was sent before STARTTLS")
	}
	if r.from != "ops@example.com" || strings.Join(r.to, ",") != "oncall@example.com,lead@example.com" {
		t.Errorf("envelope from=%q to=%v", r.from, r.to)
	}
	for _, want := range []string{"Subject: [licenseha] LicenseTriad printing/plant-a: FailedOver", "Member b took over", "Epoch:  4"} {
		if !strings.Contains(r.data, want) {
			t.Errorf("mail lacks %q:\n%s", want, r.data)
		}
	}
}

func TestEmailWrongPasswordIsRefused(t *testing.T) {
	_, port, pool := startRelay(t, true)
	m := Email{Host: "127.0.0.1", Port: port, From: "ops@example.com", To: []string{"oncall@example.com"},
		StartTLS: true, Username: "ops", Password: "wrong", TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		Policy: Policy{AllowInternal: true}}
	if err := m.Send(context.Background(), event); err == nil || !strings.Contains(err.Error(), "smtp auth") {
		t.Fatalf("err = %v, want an authentication error", err)
	}
}

func TestEmailRequiresSTARTTLSWhenAsked(t *testing.T) {
	_, port, _ := startRelay(t, false)
	m := Email{Host: "127.0.0.1", Port: port, From: "ops@example.com", To: []string{"oncall@example.com"}, StartTLS: true,
		Policy: Policy{AllowInternal: true}}
	if err := m.Send(context.Background(), event); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("err = %v, want STARTTLS refused", err)
	}
}
