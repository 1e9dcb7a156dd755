package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/internal/testpki"
	"github.com/licenseha/licenseha/pkg/notify/notifytest"
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

// relayCA signs the certificates of the test relays; clients trust it
// through Email.RootCAs, the way spec.notifications.email.caSecretRef does.
func relayCA(t *testing.T) *testpki.CA { return testpki.NewCA(t) }

// startRelay runs a real SMTP relay on 127.0.0.1 (see notifytest) with a
// certificate from ca for 127.0.0.1, accepting user ops with password
// hunter2.
func startRelay(t *testing.T, mode notifytest.Mode, ca *testpki.CA) *notifytest.Relay {
	t.Helper()
	cfg := notifytest.Config{Mode: mode, Username: "ops", Password: "hunter2"}
	if ca != nil {
		certPEM, keyPEM := ca.Issue(t, "127.0.0.1")
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificate = cert
	}
	return notifytest.Start(t, cfg)
}

// mailTo is a message to the relay r, authenticating as ops, trusting ca.
func mailTo(r *notifytest.Relay, mode TLSMode, ca *testpki.CA) Email {
	m := Email{Host: r.Host, Port: r.Port, From: "ops@example.com", To: []string{"oncall@example.com", "lead@example.com"},
		TLS: mode, Username: "ops", Password: "hunter2", Timeout: 3 * time.Second, Policy: Policy{AllowInternal: true}}
	if ca != nil {
		m.RootCAs = ca.CertPEM
	}
	return m
}

func sendMail(m Email) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.Send(ctx, event)
}

// expectDelivered checks the one message r received: over TLS, after AUTH
// as ops, with the envelope and the event in subject and body.
func expectDelivered(t *testing.T, r *notifytest.Relay) {
	t.Helper()
	got := r.Messages()
	if len(got) != 1 {
		t.Fatalf("the relay received %d messages, want 1", len(got))
	}
	msg := got[0]
	if !msg.TLS {
		t.Error("the mail was sent without TLS")
	}
	if msg.User != "ops" {
		t.Errorf("authenticated user = %q, want ops", msg.User)
	}
	if msg.From != "ops@example.com" || strings.Join(msg.To, ",") != "oncall@example.com,lead@example.com" {
		t.Errorf("envelope from=%q to=%v", msg.From, msg.To)
	}
	if want := "[licenseha] LicenseTriad printing/plant-a: FailedOver"; msg.Subject != want {
		t.Errorf("subject = %q, want %q", msg.Subject, want)
	}
	for _, want := range []string{"Member b took over (epoch 4)", "Member: b", "Epoch:  4", "Time:   2026-11-21T10:00:00Z"} {
		if !strings.Contains(msg.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, msg.Body)
		}
	}
}

func TestEmailOverSTARTTLSWithAuth(t *testing.T) {
	ca := relayCA(t)
	r := startRelay(t, notifytest.StartTLS, ca)
	if err := sendMail(mailTo(r, StartTLS, ca)); err != nil {
		t.Fatal(err)
	}
	expectDelivered(t, r)
}

func TestEmailOverImplicitTLSWithAuth(t *testing.T) {
	ca := relayCA(t)
	r := startRelay(t, notifytest.Implicit, ca)
	if err := sendMail(mailTo(r, ImplicitTLS, ca)); err != nil {
		t.Fatal(err)
	}
	expectDelivered(t, r)
}

// The deprecated StartTLS field still works when TLS is unset: true is
// STARTTLS, false is plain text.
func TestEmailDeprecatedStartTLSField(t *testing.T) {
	ca := relayCA(t)
	r := startRelay(t, notifytest.StartTLS, ca)
	m := mailTo(r, "", ca)
	m.StartTLS = true
	if err := sendMail(m); err != nil {
		t.Fatal(err)
	}
	expectDelivered(t, r)

	plain := notifytest.Start(t, notifytest.Config{Mode: notifytest.Plain})
	m = mailTo(plain, "", nil)
	m.Username, m.Password = "", ""
	if err := sendMail(m); err != nil {
		t.Fatal(err)
	}
	if got := plain.Messages(); len(got) != 1 || got[0].TLS {
		t.Fatalf("plain relay got %+v, want one message in plain text", got)
	}
}

func TestEmailWrongPasswordIsRefused(t *testing.T) {
	ca := relayCA(t)
	for _, mode := range []TLSMode{StartTLS, ImplicitTLS} {
		r := startRelay(t, map[TLSMode]notifytest.Mode{StartTLS: notifytest.StartTLS, ImplicitTLS: notifytest.Implicit}[mode], ca)
		m := mailTo(r, mode, ca)
		m.Password = "wr0ng-pa55"
		err := sendMail(m)
		if err == nil || !strings.Contains(err.Error(), "smtp auth") || !strings.Contains(err.Error(), "535") {
			t.Errorf("%s: err = %v, want the relay's authentication error", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), "wr0ng-pa55") {
			t.Errorf("%s: the error carries the password: %v", mode, err)
		}
		if n := len(r.Messages()); n != 0 {
			t.Errorf("%s: %d messages delivered", mode, n)
		}
	}
}

// A relay that does not offer STARTTLS gets nothing, credentials least of
// all, when STARTTLS is required.
func TestEmailRequiresSTARTTLSWhenAsked(t *testing.T) {
	r := startRelay(t, notifytest.Plain, nil)
	err := sendMail(mailTo(r, StartTLS, nil))
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("err = %v, want STARTTLS refused", err)
	}
	if n := r.AuthAttempts(); n != 0 {
		t.Errorf("the client tried AUTH %d times over plain text", n)
	}
	if n := len(r.Messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

// Implicit TLS against a relay that greets in plain text fails at the
// handshake, before any SMTP, with a hint at the port.
func TestEmailImplicitTLSAgainstAPlainRelay(t *testing.T) {
	for _, mode := range []notifytest.Mode{notifytest.Plain, notifytest.StartTLS} {
		ca := relayCA(t)
		r := startRelay(t, mode, ca)
		err := sendMail(mailTo(r, ImplicitTLS, ca))
		if err == nil || !strings.Contains(err.Error(), "does not speak TLS") || !strings.Contains(err.Error(), "465") {
			t.Errorf("relay mode %d: err = %v, want the TLS handshake refused with a hint", mode, err)
		}
		if r.AuthAttempts() != 0 || len(r.Messages()) != 0 {
			t.Errorf("relay mode %d: AUTH %d, messages %d; want nothing sent", mode, r.AuthAttempts(), len(r.Messages()))
		}
	}
}

// A relay whose certificate does not chain to the configured CAs (or to
// the system's, without any) is refused in both TLS modes, before AUTH.
func TestEmailWrongCAIsRefused(t *testing.T) {
	ca, other := relayCA(t), relayCA(t)
	for _, tc := range []struct {
		relay notifytest.Mode
		mode  TLSMode
	}{{notifytest.StartTLS, StartTLS}, {notifytest.Implicit, ImplicitTLS}} {
		r := startRelay(t, tc.relay, ca)
		for name, trust := range map[string]*testpki.CA{"another CA": other, "the system's CAs": nil} {
			err := sendMail(mailTo(r, tc.mode, trust))
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s, trusting %s: err = %v, want the certificate refused", tc.mode, name, err)
			}
		}
		if r.AuthAttempts() != 0 || len(r.Messages()) != 0 {
			t.Errorf("%s: AUTH %d, messages %d; want nothing sent", tc.mode, r.AuthAttempts(), len(r.Messages()))
		}
	}
}

func TestEmailRejectsAnInvalidCABundle(t *testing.T) {
	ca := relayCA(t)
	r := startRelay(t, notifytest.Implicit, ca)
	m := mailTo(r, ImplicitTLS, ca)
	m.RootCAs = []byte("not a certificate")
	if err := sendMail(m); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("err = %v, want the bundle refused", err)
	}
	m.RootCAs, m.TLS = ca.CertPEM, "SSL"
	if err := sendMail(m); err == nil || !strings.Contains(err.Error(), "unknown TLS mode") {
		t.Fatalf("err = %v, want the mode refused", err)
	}
}
