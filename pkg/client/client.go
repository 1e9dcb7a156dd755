// Package client is a Go client for licenseha license servers with failover.
//
// A Client knows a list of server endpoints and a home server. It sends every
// request to its current endpoint and moves to another one when the current
// one fails to connect, times out or answers 503 (not active), following the
// "active" hint of a not-active answer when the hint names a known member. It
// re-asserts every checkout it holds after each move, so no seat is lost, and
// returns home as soon as the home server serves again. For groups that
// protect their client API (spec.clientAccess) it sends a bearer token
// (Config.Token) and verifies the servers' certificates (Config.RootCAs,
// Config.TLSConfig). Heartbeats run in the
// background. A Client is safe for concurrent use; Close stops its goroutines.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licenseha/licenseha/pkg/server"
)

// Config configures a Client.
type Config struct {
	// Endpoints are the base URLs of the servers, e.g. "http://plant-a:5160",
	// in the order the client tries them.
	Endpoints []string
	// Home is the endpoint the client prefers and returns to; it defaults to
	// the first endpoint and is added to Endpoints when missing.
	Home string
	// Members maps member names to endpoints so that the "active" hint of a
	// not-active answer leads straight to the active member. A hint that is
	// itself one of the endpoints needs no entry.
	Members map[string]string
	// ClientID identifies this client to the servers (required).
	ClientID string
	// HTTPClient sends the requests; nil means a keep-alive client built
	// with TLSConfig and RootCAs. When set, configure TLS on its transport
	// instead: RootCAs and TLSConfig must then be empty.
	HTTPClient *http.Client
	// Token, when set, is sent with every request as "Authorization:
	// Bearer <token>": one of the group's client tokens
	// (spec.clientAccess.tokenSecretRef). Use it with https endpoints only;
	// over http anyone on the path can read it.
	Token string
	// RootCAs is a PEM bundle of the CA certificates that sign the servers'
	// certificates (spec.clientAccess.tls), added to TLSConfig's roots;
	// neither set means the system's roots.
	RootCAs []byte
	// TLSConfig configures TLS for https endpoints, e.g. RootCAs or a client
	// certificate for a proxy in front of the servers. Leave ServerName
	// empty: each endpoint's own host name is verified, which is what lets
	// the client fail over between members with different names.
	TLSConfig *tls.Config
	// RequestTimeout bounds each attempt on one endpoint; default 2s.
	RequestTimeout time.Duration
	// HeartbeatInterval is how often held checkouts are renewed; default 10s.
	// It must be well below the servers' checkout TTL. Negative disables
	// background heartbeats.
	HeartbeatInterval time.Duration
	// HomeCheckInterval is how often the client checks, while away, whether
	// home serves again; default 2s. Negative disables returning home.
	HomeCheckInterval time.Duration
	// OnMove, when set, is called after every move to another endpoint,
	// once the checkouts are re-asserted. It must return quickly and must not
	// send requests through the client (moves are serialised).
	OnMove func(Move)
	// Logger receives the client's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Move describes a change of the current endpoint.
type Move struct {
	From, To string
	// Reason is why the client moved, e.g. "connection failed" or "home serves again".
	Reason string
	At     time.Time
}

// Checkout is a printer seat held by the client.
type Checkout struct {
	server.Checkout
	// Printer and Requested (the licence id or product asked for) are what
	// the client re-asserts after a move.
	Printer   string `json:"printer"`
	Requested string `json:"requested"`
}

// ErrUnavailable is returned when no endpoint serves the request.
var ErrUnavailable = errors.New("no license server is available")

// Client talks to a group of license servers. Create it with New.
type Client struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger

	mu      sync.Mutex // guards current, gen, held and unresponsive
	current string
	gen     uint64 // increases on every move
	held    map[string]*Checkout
	// unresponsive holds the endpoints whose last attempt timed out, until
	// when the client does not move to them (see failover).
	unresponsive map[string]time.Time

	moveMu sync.Mutex // serialises moves and their re-assertions

	// reconnect is set when a kept-alive connection may lead to the wrong
	// server: a member that is not active answered, or something that is
	// no license server did. Behind a Service, an established connection
	// stays with the pod it was opened to (kube-proxy keeps established
	// flows), so the next request must open a new one to be routed to the
	// current active member.
	reconnect atomic.Bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a client and starts its background heartbeats and home checks.
func New(cfg Config) (*Client, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("client id is empty")
	}
	eps := make([]string, 0, len(cfg.Endpoints)+1)
	for _, e := range cfg.Endpoints {
		if e = strings.TrimRight(e, "/"); e != "" && !slices.Contains(eps, e) {
			eps = append(eps, e)
		}
	}
	cfg.Home = strings.TrimRight(cfg.Home, "/")
	if cfg.Home == "" && len(eps) > 0 {
		cfg.Home = eps[0]
	}
	if cfg.Home == "" {
		return nil, errors.New("no endpoint given")
	}
	if !slices.Contains(eps, cfg.Home) {
		eps = append([]string{cfg.Home}, eps...)
	}
	cfg.Endpoints = eps
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.HomeCheckInterval == 0 {
		cfg.HomeCheckInterval = 2 * time.Second
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient, log: cfg.Logger, current: cfg.Home, held: map[string]*Checkout{}}
	if c.http != nil && (cfg.TLSConfig != nil || len(cfg.RootCAs) > 0) {
		return nil, errors.New("TLSConfig and RootCAs apply to the client's own transport: configure TLS on HTTPClient's transport instead")
	}
	if c.http == nil {
		tlsCfg, err := clientTLSConfig(cfg.TLSConfig, cfg.RootCAs)
		if err != nil {
			return nil, err
		}
		c.http = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: cfg.RequestTimeout,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if cfg.Token != "" {
		for _, ep := range cfg.Endpoints {
			if strings.HasPrefix(strings.ToLower(ep), "http://") {
				c.log.Warn("The client token is sent over plain HTTP; use https endpoints", "endpoint", ep)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if cfg.HeartbeatInterval > 0 {
		c.every(ctx, cfg.HeartbeatInterval, c.heartbeatAll)
	}
	if cfg.HomeCheckInterval > 0 && len(cfg.Endpoints) > 1 {
		c.every(ctx, cfg.HomeCheckInterval, c.checkHome)
	}
	return c, nil
}

// clientTLSConfig is base (or an empty configuration) with the CA
// certificates of rootCAs added to its roots.
func clientTLSConfig(base *tls.Config, rootCAs []byte) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		cfg = base.Clone()
	}
	if len(rootCAs) == 0 {
		return cfg, nil
	}
	pool := x509.NewCertPool()
	if cfg.RootCAs != nil {
		pool = cfg.RootCAs.Clone()
	}
	if !pool.AppendCertsFromPEM(rootCAs) {
		return nil, errors.New("RootCAs holds no PEM certificate")
	}
	cfg.RootCAs = pool
	return cfg, nil
}

func (c *Client) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
			}
		}
	}()
}

// Close stops the background goroutines. Held checkouts are not released;
// they expire on the server unless released first.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
}

// Endpoint returns the endpoint requests currently go to.
func (c *Client) Endpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Checkouts returns the checkouts the client holds.
func (c *Client) Checkouts() []Checkout {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Checkout, 0, len(c.held))
	for _, h := range c.held {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b Checkout) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Checkout asks for a printer seat on a licence (id or product name) and
// keeps it alive with heartbeats until Release or Close.
func (c *Client) Checkout(ctx context.Context, printer, license string) (*Checkout, error) {
	req := server.CheckoutRequest{Client: c.cfg.ClientID, Printer: printer, License: license}
	var got server.Checkout
	if err := c.do(ctx, http.MethodPost, "/v1/checkouts", req, &got); err != nil {
		return nil, err
	}
	h := &Checkout{Checkout: got, Printer: printer, Requested: license}
	out := *h
	c.mu.Lock()
	c.held[got.ID] = h
	c.mu.Unlock()
	return &out, nil
}

// Release frees a checkout's seat and stops its heartbeats.
func (c *Client) Release(ctx context.Context, id string) error {
	c.mu.Lock()
	delete(c.held, id)
	c.mu.Unlock()
	return c.do(ctx, http.MethodDelete, "/v1/checkouts/"+url.PathEscape(id), nil, nil)
}

// ReportUsage adds printed jobs and labels to a checkout's statistics.
func (c *Client) ReportUsage(ctx context.Context, id string, jobs, labels int64) error {
	return c.do(ctx, http.MethodPost, "/v1/checkouts/"+url.PathEscape(id)+"/usage", server.UsageReport{Jobs: jobs, Labels: labels}, nil)
}

// Status returns the status of the current endpoint.
func (c *Client) Status(ctx context.Context) (*server.Status, error) {
	var st server.Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Heartbeat renews one held checkout now; the background heartbeats call it
// for every checkout. The full checkout body is sent, so a server that does
// not know the checkout (after a failover) re-asserts it.
func (c *Client) Heartbeat(ctx context.Context, id string) error {
	c.mu.Lock()
	h, ok := c.held[id]
	var req server.CheckoutRequest
	if ok {
		req = server.CheckoutRequest{Client: c.cfg.ClientID, Printer: h.Printer, License: h.Requested}
	}
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("checkout %s is not held by this client", id)
	}
	var got server.Checkout
	err := c.do(ctx, http.MethodPut, "/v1/checkouts/"+url.PathEscape(id), req, &got)
	c.renewed(id, got, err)
	return err
}

func (c *Client) heartbeatAll(ctx context.Context) {
	for _, h := range c.Checkouts() {
		if ctx.Err() != nil {
			return
		}
		if err := c.Heartbeat(ctx, h.ID); err != nil {
			c.log.Warn("Heartbeat failed", "checkout", h.ID, "err", err)
		}
	}
}

// renewed records the answer to a heartbeat or re-assertion: a new expiry,
// or the loss of the seat when the server refused it for good.
func (c *Client) renewed(id string, got server.Checkout, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.held[id]
	if !ok {
		return
	}
	switch {
	case err == nil:
		h.Checkout = got
		if got.ID != id { // the server already had this seat under another id
			delete(c.held, id)
			c.held[got.ID] = h
		}
	case server.IsCode(err, server.CodeNoSeat), server.IsCode(err, server.CodeConflict),
		server.IsCode(err, server.CodeForbidden), server.IsCode(err, server.CodeUnknownLicense),
		server.IsCode(err, server.CodeLicenseInvalid):
		delete(c.held, id)
		c.log.Error("Checkout lost", "checkout", id, "printer", h.Printer, "err", err)
	}
}

// do sends a request to the current endpoint, moving to another endpoint on
// connection failures, timeouts and not-active answers, until one answers or
// every endpoint was tried once.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	tried := map[string]bool{}
	var lastErr error
	for {
		c.mu.Lock()
		ep, gen := c.current, c.gen
		c.mu.Unlock()
		if tried[ep] {
			return fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
		}
		tried[ep] = true
		hint, reason, err := c.send(ctx, ep, method, path, body, out)
		c.noteAnswer(ep, reason)
		if reason == "" {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastErr = err
		c.failover(ctx, gen, ep, hint, tried, reason)
	}
}

// send performs one attempt. A non-empty reason means the endpoint cannot
// serve and the client should move; hint is the endpoint of the active
// member when the server named one this client can map.
func (c *Client) send(ctx context.Context, ep, method, path string, body []byte, out any) (hint, reason string, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, ep+path, r)
	if err != nil {
		return "", "", err
	}
	if c.reconnect.Swap(false) {
		// Done here rather than when the answer came: the connection that
		// carried it goes back to the idle pool only once its body is
		// closed.
		c.http.CloseIdleConnections()
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var netErr net.Error
		switch {
		case ctx.Err() != nil:
			return "", "", ctx.Err()
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
			return "", "timeout", err
		}
		return "", "connection failed", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e server.Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			// Not a license server's answer: a proxy or load balancer in
			// front of it that has lost its backend. Try elsewhere, and on a
			// fresh connection, as after a connection failure.
			c.reconnect.Store(true)
			e = server.Error{Code: server.CodeInternal, Message: strings.TrimSpace(string(data))}
			return "", "no license server answered", &server.ResponseError{StatusCode: resp.StatusCode, Body: e}
		}
		err := &server.ResponseError{StatusCode: resp.StatusCode, Body: e}
		if resp.StatusCode == http.StatusServiceUnavailable {
			c.reconnect.Store(true)
			return c.endpointOf(e.Active), "not active", err
		}
		return "", "", err
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return "", "", nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if actx.Err() != nil {
			return "", "timeout", err
		}
		return "", "", fmt.Errorf("decoding the answer of %s: %w", ep, err)
	}
	return "", "", nil
}

func (c *Client) endpointOf(member string) string {
	if member == "" {
		return ""
	}
	if ep, ok := c.cfg.Members[member]; ok {
		return strings.TrimRight(ep, "/")
	}
	if slices.Contains(c.cfg.Endpoints, member) {
		return member
	}
	return ""
}

// unresponsiveFor is how long an endpoint whose attempt timed out is not
// moved to: a frozen server, or a member whose node failed, answers nothing
// and costs a whole RequestTimeout per attempt, while the other members
// still name it the active one until the takeover. Meanwhile the client asks
// them (they answer at once) and finds the new active member as soon as
// there is one, instead of waiting out another timeout first.
const unresponsiveFor = 500 * time.Millisecond

// noteAnswer records whether ep answered: a timeout makes it unresponsive
// for a while (never longer than one RequestTimeout), any answer clears it.
func (c *Client) noteAnswer(ep, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if reason != "timeout" {
		delete(c.unresponsive, ep)
		return
	}
	if c.unresponsive == nil {
		c.unresponsive = map[string]time.Time{}
	}
	c.unresponsive[ep] = time.Now().Add(min(unresponsiveFor, c.cfg.RequestTimeout))
}

// responsive says whether the client may move to ep now.
func (c *Client) responsive(ep string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !time.Now().Before(c.unresponsive[ep])
}

// failover moves away from ep unless another request already moved since
// generation gen. The hint wins when it was not tried yet; otherwise the next
// untried endpoint in the list. Endpoints that just timed out are skipped:
// when only they are left, the request fails at once (ErrUnavailable) and a
// later one tries them again.
func (c *Client) failover(ctx context.Context, gen uint64, ep, hint string, tried map[string]bool, reason string) {
	c.moveMu.Lock()
	defer c.moveMu.Unlock()
	c.mu.Lock()
	moved := c.gen != gen
	c.mu.Unlock()
	if moved {
		return
	}
	next := ""
	if hint != "" && !tried[hint] && c.responsive(hint) {
		next = hint
	} else {
		i := slices.Index(c.cfg.Endpoints, ep)
		for k := 1; k < len(c.cfg.Endpoints); k++ {
			if cand := c.cfg.Endpoints[(i+k)%len(c.cfg.Endpoints)]; !tried[cand] && c.responsive(cand) {
				next = cand
				break
			}
		}
	}
	if next == "" {
		return
	}
	c.moveLocked(ctx, ep, next, reason)
}

// moveLocked switches to endpoint to and re-asserts every held checkout
// there. The caller holds moveMu.
func (c *Client) moveLocked(ctx context.Context, from, to, reason string) {
	c.mu.Lock()
	c.current = to
	c.gen++
	held := make([]Checkout, 0, len(c.held))
	for _, h := range c.held {
		held = append(held, *h)
	}
	c.mu.Unlock()
	c.log.Info("Moved to another license server", "from", from, "to", to, "reason", reason, "checkouts", len(held))
	for _, h := range held {
		req := server.CheckoutRequest{Client: c.cfg.ClientID, Printer: h.Printer, License: h.Requested}
		body, _ := json.Marshal(req)
		var got server.Checkout
		_, why, err := c.send(ctx, to, http.MethodPut, "/v1/checkouts/"+url.PathEscape(h.ID), body, &got)
		c.noteAnswer(to, why)
		if why != "" {
			// The new endpoint does not serve either; the next request or
			// heartbeat moves on and re-asserts there.
			break
		}
		c.renewed(h.ID, got, err)
	}
	if c.cfg.OnMove != nil {
		c.cfg.OnMove(Move{From: from, To: to, Reason: reason, At: time.Now()})
	}
}

// checkHome moves back home when the home server serves again.
func (c *Client) checkHome(ctx context.Context) {
	home := c.cfg.Home
	if c.Endpoint() == home {
		return
	}
	var st server.Status
	if _, why, err := c.send(ctx, home, http.MethodGet, "/v1/status", nil, &st); why != "" || err != nil || st.Role != server.RoleActive {
		return
	}
	c.moveMu.Lock()
	defer c.moveMu.Unlock()
	if from := c.Endpoint(); from != home {
		c.moveLocked(ctx, from, home, "home serves again")
	}
}
