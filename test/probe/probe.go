// Package probe observes a licenseha group from the outside, the way its
// users do: a Watcher asks every member every few milliseconds whether it
// serves, and a Load holds printer seats through the failover client and
// heartbeats them continuously. The end-to-end suite, the demo and the
// failover benchmark measure with them.
package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/pkg/server"
)

// Target is one member: its name and the base URL of its license server.
type Target struct {
	Name, URL string
}

// Change is a moment the set of serving members changed.
type Change struct {
	At      time.Time
	Serving []string
	// Unknown names members that served at their last answer and did not
	// answer this sample in time (a busy machine): counted neither as
	// serving nor as stopped.
	Unknown []string
}

// Watcher samples which members serve.
type Watcher struct {
	targets  []Target
	interval time.Duration
	http     *http.Client

	mu      sync.Mutex
	serving []string
	unknown []string
	history []Change
	// overlap is the time two or more members were seen serving at once.
	overlap time.Duration
	lastAt  time.Time
	// answer is each member's last answer; a member that is slow to
	// answer (a timeout, not a refusal) keeps it for up to staleLimit.
	answer map[string]answer
}

type answer struct {
	serving bool
	at      time.Time
}

// staleLimit bounds how long a member that does not answer in time (a busy
// machine, not a refused connection) is taken to keep its last answer: a
// slow status request is not a change of role (it is "unknown"), but a
// frozen member must not stay unknown for long, and an unknown member never
// counts as serving.
const staleLimit = 500 * time.Millisecond

// NewWatcher watches targets every interval (50 ms in the suite).
func NewWatcher(targets []Target, interval time.Duration) *Watcher {
	return &Watcher{targets: targets, interval: interval, answer: map[string]answer{},
		http: &http.Client{Timeout: interval * 2, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
}

// Run samples until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SetTargets replaces the members to watch (a recreated pod has a new IP).
func (w *Watcher) SetTargets(targets []Target) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.targets = append([]Target(nil), targets...)
}

func (w *Watcher) sample(ctx context.Context) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var serving, unknown []string
	w.mu.Lock()
	targets := w.targets
	w.mu.Unlock()
	for _, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, slow := w.serves(ctx, tg.URL)
			now := time.Now()
			w.mu.Lock()
			last, known := w.answer[tg.Name]
			if !slow {
				w.answer[tg.Name] = answer{serving: ok, at: now}
			}
			w.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ok:
				serving = append(serving, tg.Name)
			case slow && known && last.serving && now.Sub(last.at) < staleLimit:
				// It served and did not answer in time: unknown, neither
				// serving (no overlap) nor stopped.
				unknown = append(unknown, tg.Name)
			}
		}()
	}
	wg.Wait()
	sort.Strings(serving)
	sort.Strings(unknown)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(serving) > 1 && !w.lastAt.IsZero() {
		w.overlap += now.Sub(w.lastAt)
	}
	w.lastAt = now
	if strings.Join(serving, ",") != strings.Join(w.serving, ",") || strings.Join(unknown, ",") != strings.Join(w.unknown, ",") ||
		len(w.history) == 0 {
		w.history = append(w.history, Change{At: now, Serving: serving, Unknown: unknown})
	}
	w.serving, w.unknown = serving, unknown
}

// serves asks one member whether it is the active one; slow is true when
// it did not answer in time (as opposed to refusing or answering).
func (w *Watcher) serves(ctx context.Context, url string) (serving, slow bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/status", nil)
	if err != nil {
		return false, false
	}
	resp, err := w.http.Do(req)
	if err != nil {
		var ne net.Error
		return false, errors.As(err, &ne) && ne.Timeout()
	}
	defer resp.Body.Close()
	var st server.Status
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil && st.Role == server.RoleActive, false
}

// Serving returns the members serving at the last sample.
func (w *Watcher) Serving() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.serving...)
}

// Overlap returns how long two or more members were seen serving at once.
func (w *Watcher) Overlap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overlap
}

// History returns the changes of the serving set.
func (w *Watcher) History() []Change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Change(nil), w.history...)
}

// MaxServing returns the largest number of members seen serving at once.
func (w *Watcher) MaxServing() int {
	most := 0
	for _, c := range w.History() {
		most = max(most, len(c.Serving))
	}
	return most
}

// Outage looks at the changes since t for an outage: the first moment
// nobody served, and the first moment after it exactly one member served
// (who). ok is false while service has not come back; a change with
// nobody serving that never came is reported as an outage of zero length
// (from = back = t) once grace has passed since t.
func (w *Watcher) Outage(t time.Time, grace time.Duration) (from, back time.Time, who string, ok bool) {
	for _, c := range w.History() {
		if c.At.Before(t) {
			continue
		}
		if from.IsZero() && len(c.Serving) == 0 {
			from = c.At
		} else if !from.IsZero() && c.At.After(from) && len(c.Serving) == 1 {
			return from, c.At, c.Serving[0], true
		}
	}
	if from.IsZero() && time.Since(t) > grace {
		return t, t, "", true
	}
	return from, time.Time{}, "", false
}

// WaitFor waits until exactly the given member serves (or, with member
// "", until nobody does) and returns when that was first seen.
func (w *Watcher) WaitFor(ctx context.Context, member string, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		for _, c := range w.History() {
			if (member == "" && len(c.Serving) == 0) || (len(c.Serving) == 1 && c.Serving[0] == member) {
				if s := w.Serving(); (member == "" && len(s) == 0) || (len(s) == 1 && s[0] == member) {
					return w.lastChangeTo(member), nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %q to serve alone: %w (serving now: %v)", member, ctx.Err(), w.Serving())
		case <-time.After(w.interval):
		}
	}
}

func (w *Watcher) lastChangeTo(member string) time.Time {
	h := w.History()
	for i := len(h) - 1; i >= 0; i-- {
		if (member == "" && len(h[i].Serving) == 0) || (len(h[i].Serving) == 1 && h[i].Serving[0] == member) {
			return h[i].At
		}
	}
	return time.Time{}
}

// Load holds printer seats through the failover client and sends a
// heartbeat for one of them every Interval, recording when requests
// succeed: the longest gap between two successes is the unavailability a
// client saw.
type Load struct {
	Client   *client.Client
	Interval time.Duration

	mu       sync.Mutex
	want     int
	lastOK   time.Time
	gaps     []Gap
	failures int
	lastErr  error
}

// Gap is a time no request succeeded.
type Gap struct {
	From, To time.Time
}

// Duration of the gap.
func (g Gap) Duration() time.Duration { return g.To.Sub(g.From) }

// StartLoad checks out seats printers p1..pN and keeps them alive.
func StartLoad(ctx context.Context, cfg client.Config, license string, seats int, interval time.Duration) (*Load, error) {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = -1 // the Load heartbeats itself, continuously
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 500 * time.Millisecond
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	l := &Load{Client: c, Interval: interval, want: seats}
	for i := 1; i <= seats; i++ {
		if _, err := c.Checkout(ctx, fmt.Sprintf("p%d", i), license); err != nil {
			c.Close()
			return nil, fmt.Errorf("checking out seat %d: %w", i, err)
		}
	}
	l.lastOK = time.Now()
	go l.run(ctx)
	return l, nil
}

func (l *Load) run(ctx context.Context) {
	defer l.Client.Close()
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held := l.Client.Checkouts()
		if len(held) == 0 {
			continue
		}
		err := l.Client.Heartbeat(ctx, held[i%len(held)].ID)
		now := time.Now()
		l.mu.Lock()
		if err == nil {
			if gap := now.Sub(l.lastOK); gap > 3*l.Interval {
				l.gaps = append(l.gaps, Gap{From: l.lastOK, To: now})
			}
			l.lastOK = now
		} else if ctx.Err() == nil {
			l.failures++
			l.lastErr = err
		}
		l.mu.Unlock()
	}
}

// Lost is the number of seats the client no longer holds.
func (l *Load) Lost() int {
	return l.want - len(l.Client.Checkouts())
}

// LongestGapSince returns the longest time without a successful request
// that ended after since (including one still open).
func (l *Load) LongestGapSince(since time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var longest time.Duration
	for _, g := range l.gaps {
		if g.To.After(since) {
			longest = max(longest, g.Duration())
		}
	}
	if open := time.Since(l.lastOK); open > 3*l.Interval && l.lastOK.After(since.Add(-time.Minute)) {
		longest = max(longest, open)
	}
	return longest
}

// Failures counts failed requests; LastError is the latest failure.
func (l *Load) Failures() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures, l.lastErr
}

// LastSuccess is when a request last succeeded.
func (l *Load) LastSuccess() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK
}

// ClientConfig is the failover client's configuration for the members at
// targets: every member an endpoint and named (for the servers' active
// hints), home the member named home; it logs nothing.
func ClientConfig(targets []Target, home, clientID string) client.Config {
	cfg := client.Config{Members: map[string]string{}, ClientID: clientID,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, t := range targets {
		cfg.Members[t.Name], cfg.Endpoints = t.URL, append(cfg.Endpoints, t.URL)
	}
	cfg.Home = cfg.Members[home]
	return cfg
}
