// Package notifytest runs a real SMTP relay on loopback for tests of the
// e-mail notifications: SMTP over a TCP socket (github.com/emersion/go-smtp),
// in plain text, with STARTTLS or with implicit TLS, optionally requiring
// AUTH PLAIN, recording every message it accepts. Only tests import it.
package notifytest

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TB is what the relay needs of a test: *testing.T and Ginkgo's GinkgoT()
// have it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Mode is how the relay secures its connections.
type Mode int

const (
	// Plain never offers TLS.
	Plain Mode = iota
	// StartTLS offers the STARTTLS extension on a plain connection.
	StartTLS
	// Implicit speaks TLS from the first byte (SMTPS).
	Implicit
)

// Config configures a relay.
type Config struct {
	Mode Mode
	// Certificate is the relay's certificate, for StartTLS and Implicit.
	Certificate tls.Certificate
	// Username and Password, when set, are the only credentials accepted,
	// and MAIL FROM is refused before a successful AUTH.
	Username, Password string
}

// Message is one message the relay accepted.
type Message struct {
	// From and To are the envelope: MAIL FROM and RCPT TO.
	From string
	To   []string
	// User is the user that authenticated on the connection, if any.
	User string
	// TLS is true when the message travelled over TLS (STARTTLS or
	// implicit).
	TLS bool
	// Subject is the Subject header; Body the text after the headers.
	Subject, Body string
	// Data is the whole message as received.
	Data string
}

// Relay is a running SMTP relay.
type Relay struct {
	// Host and Port are where it listens (127.0.0.1 and a free port).
	Host string
	Port int

	cfg      Config
	mu       sync.Mutex
	messages []Message
	authTry  int
	arrived  chan struct{}
}

// Start runs a relay on 127.0.0.1 until the test ends.
func Start(t TB, cfg Config) *Relay {
	t.Helper()
	r := &Relay{cfg: cfg, arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{r: r, conn: c}, nil
	}))
	srv.Domain = "relay.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	// AUTH in plain text is allowed on the relay's side, so that tests see
	// what the client (not the relay) refuses.
	srv.AllowInsecureAuth = true
	// Clients that give up on the relay (wrong CA, no STARTTLS) are the
	// point of many tests, not errors.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	switch cfg.Mode {
	case StartTLS:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cfg.Certificate}}
	case Implicit:
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cfg.Certificate}})
	}
	addr := l.Addr().(*net.TCPAddr)
	r.Host, r.Port = addr.IP.String(), addr.Port
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// Messages returns the messages accepted so far, oldest first.
func (r *Relay) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.messages...)
}

// AuthAttempts counts the AUTH commands received, successful or not.
func (r *Relay) AuthAttempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.authTry
}

// Wait waits up to timeout until at least n messages arrived and returns
// the messages accepted by then.
func (r *Relay) Wait(n int, timeout time.Duration) []Message {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if got := r.Messages(); len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-tick.C:
		case <-deadline.C:
			return r.Messages()
		}
	}
}

type session struct {
	r    *Relay
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	s.r.mu.Lock()
	s.r.authTry++
	s.r.mu.Unlock()
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if s.r.cfg.Username == "" || user != s.r.cfg.Username || pass != s.r.cfg.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.r.cfg.Username != "" && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.from, s.to = from, nil
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	m := Message{From: s.from, To: s.to, User: s.user, TLS: isTLS, Data: string(b)}
	if parsed, err := mail.ReadMessage(strings.NewReader(m.Data)); err == nil {
		m.Subject = parsed.Header.Get("Subject")
		body, _ := io.ReadAll(parsed.Body)
		m.Body = string(body)
	} else {
		return errors.New("unreadable message: " + err.Error())
	}
	s.r.mu.Lock()
	s.r.messages = append(s.r.messages, m)
	s.r.mu.Unlock()
	select {
	case s.r.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }
