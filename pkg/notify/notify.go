// Package notify sends a group's notifications — a member took over, the
// group lost service — to a webhook (JSON, bearer token) and by e-mail
// (SMTP with STARTTLS or implicit TLS, and authentication), to targets a
// Policy allows.
package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Event is one notification.
type Event struct {
	// Kind is LicenseTriad or LicenseBackupPair.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Reason is the Event reason, e.g. FailedOver or QuorumLost.
	Reason string `json:"reason"`
	// Member is the member concerned (the new active), if any.
	Member string `json:"member,omitempty"`
	// Epoch is the fencing epoch after the change.
	Epoch   int64     `json:"epoch,omitempty"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Subject is a one-line summary for e-mail subjects.
func (e Event) Subject() string {
	return fmt.Sprintf("[licenseha] %s %s/%s: %s", e.Kind, e.Namespace, e.Name, e.Reason)
}

// Webhook posts events as JSON.
type Webhook struct {
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// Policy decides which URLs may be posted to (see Policy).
	Policy Policy
	// TLSConfig overrides the TLS settings (tests trust their own CA).
	TLSConfig *tls.Config
	// Timeout bounds the whole request; default 10 s.
	Timeout time.Duration
}

// Send posts one event; any answer but 2xx is an error, redirects included.
// Errors name the URL without credentials or query (Redact): they end up in
// the operator's log.
func (w Webhook) Send(ctx context.Context, e Event) error {
	target := Redact(w.URL)
	u, err := w.Policy.checkURL(w.URL, w.Token != "")
	if err != nil {
		return fmt.Errorf("webhook %s: %w", target, err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: invalid request", target)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "licenseha-operator")
	if w.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.Token)
	}
	timeout := w.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	resp, err := w.Policy.httpClient(timeout, w.TLSConfig).Do(req)
	if err != nil {
		// A *url.Error quotes the URL with its user name and query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook POST %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", target, resp.Status)
	}
	return nil
}

// TLSMode says how the connection to an SMTP relay is secured.
type TLSMode string

const (
	// StartTLS connects in plain text and upgrades with STARTTLS before
	// anything else is sent; sending is refused when the relay does not
	// offer STARTTLS.
	StartTLS TLSMode = "StartTLS"
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465).
	ImplicitTLS TLSMode = "Implicit"
	// NoTLS sends in plain text; net/smtp then sends credentials only to a
	// relay on the local host.
	NoTLS TLSMode = "None"
)

// Email sends events through an SMTP relay.
type Email struct {
	Host string
	Port int
	From string
	To   []string
	// TLS secures the connection: StartTLS, ImplicitTLS or NoTLS. When
	// empty, the deprecated StartTLS field decides (true: StartTLS, false:
	// NoTLS).
	TLS TLSMode
	// StartTLS upgrades the connection before authenticating; sending is
	// refused when the relay does not offer it.
	//
	// Deprecated: set TLS.
	StartTLS bool
	// Username and Password authenticate with AUTH PLAIN when set.
	Username, Password string
	// RootCAs is a PEM bundle of the CA certificates the relay's certificate
	// must chain to, instead of the system's (a relay with a private CA).
	RootCAs []byte
	// TLSConfig overrides the TLS settings (RootCAs included); its
	// ServerName defaults to Host.
	TLSConfig *tls.Config
	Timeout   time.Duration
	// Policy decides which relays may be connected to (see Policy).
	Policy Policy
}

// mode is the TLS mode in effect.
func (m Email) mode() TLSMode {
	switch {
	case m.TLS != "":
		return m.TLS
	case m.StartTLS:
		return StartTLS
	}
	return NoTLS
}

// tlsConfig is the client configuration for the relay: TLSConfig when set,
// otherwise TLS 1.2 or later, verified against RootCAs or the system's.
func (m Email) tlsConfig() (*tls.Config, error) {
	if m.TLSConfig != nil {
		cfg := m.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = m.Host
		}
		return cfg, nil
	}
	cfg := &tls.Config{ServerName: m.Host, MinVersion: tls.VersionTLS12}
	if len(m.RootCAs) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(m.RootCAs) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Send delivers one event as a plain-text mail. Errors name the relay and
// what failed, never the credentials.
func (m Email) Send(ctx context.Context, e Event) error {
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	mode := m.mode()
	switch mode {
	case StartTLS, ImplicitTLS, NoTLS:
	default:
		return fmt.Errorf("smtp: unknown TLS mode %q: want StartTLS, Implicit or None", mode)
	}
	if err := m.Policy.checkHost(m.Host); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Host, err)
	}
	var cfg *tls.Config
	if mode != NoTLS {
		var err error
		if cfg, err = m.tlsConfig(); err != nil {
			return fmt.Errorf("smtp %s: %w", m.Host, err)
		}
	}
	addr := net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
	conn, err := m.Policy.dialer(timeout).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if mode == ImplicitTLS {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			var rh tls.RecordHeaderError
			if errors.As(err, &rh) {
				return fmt.Errorf("smtp %s: the relay does not speak TLS on port %d (implicit TLS usually listens on 465; "+
					"a relay on 587 or 25 wants tls: StartTLS): %w", addr, m.Port, err)
			}
			return fmt.Errorf("smtp %s TLS: %w", addr, err)
		}
		conn = tc
	}
	// With a *tls.Conn, net/smtp knows the connection is encrypted.
	c, err := smtp.NewClient(conn, m.Host)
	if err != nil {
		conn.Close()
		var ne net.Error
		if mode != ImplicitTLS && errors.As(err, &ne) && ne.Timeout() && m.Port == 465 {
			return fmt.Errorf("smtp %s: no greeting from the relay (port 465 usually expects implicit TLS: tls: Implicit): %w", addr, err)
		}
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if mode == StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp %s: the relay does not offer STARTTLS, which TLS mode StartTLS (the default) requires; "+
				"a relay that speaks TLS from the first byte (SMTPS, port 465) wants tls: Implicit", addr)
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp STARTTLS: %w", err)
		}
	}
	if m.Username != "" {
		// net/smtp refuses PLAIN over an unencrypted connection to a
		// remote host, so credentials never travel in clear text.
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, m.Host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(m.message(e)); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	return c.Quit()
}

func (m Email) message(e Event) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", m.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(m.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", e.Subject())
	fmt.Fprintf(&b, "Date: %s\r\n", e.Time.UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "%s\r\n\r\n", e.Message)
	fmt.Fprintf(&b, "Group:  %s %s/%s\r\n", e.Kind, e.Namespace, e.Name)
	fmt.Fprintf(&b, "Reason: %s\r\n", e.Reason)
	if e.Member != "" {
		fmt.Fprintf(&b, "Member: %s\r\n", e.Member)
	}
	if e.Epoch != 0 {
		fmt.Fprintf(&b, "Epoch:  %d\r\n", e.Epoch)
	}
	fmt.Fprintf(&b, "Time:   %s\r\n", e.Time.UTC().Format(time.RFC3339))
	return []byte(b.String())
}
