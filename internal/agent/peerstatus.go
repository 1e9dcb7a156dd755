package agent

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/server"
)

// peerStatusPath is where an ActiveActive pair member tells its peer how it
// is (ActivePassive members learn it from the election's heartbeats).
const peerStatusPath = "/v1/peer"

// peerStatus is a pair member's own view of itself, served to its peer at
// peerStatusPath. The agent answering proves only that the agent runs:
// whether the member can serve is ServerHealthy.
type peerStatus struct {
	Member string `json:"member"`
	// ServerHealthy: the member's license server process runs, has not
	// restarted within the peer timeout, and answered the agent's state
	// polls within the peer timeout (a vendor server without an admin API:
	// it runs, or is held on purpose while the member does not serve).
	ServerHealthy bool `json:"serverHealthy"`
	// Serving: its server holds the active role and its serve bound has
	// not passed.
	Serving bool `json:"serving"`
	// Epoch is the fencing epoch of the member's last term.
	Epoch uint64 `json:"epoch,omitempty"`
}

// memberHealthOf holds the health of each running pair member's agent
// (*Agent → *memberHealth), registered by the pair driver while it runs,
// for peerStatusHandler.
var memberHealthOf sync.Map

// peerStatusHandler serves this member's peerStatus as JSON to the other
// member of a backup pair; 404 when the agent runs no pair member.
func (a *Agent) peerStatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		v, ok := memberHealthOf.Load(a)
		if !ok {
			http.Error(w, "no backup pair member runs here", http.StatusNotFound)
			return
		}
		st := a.peerStatusNow(v.(*memberHealth))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(st)
	})
}

// peerStatusNow assembles the member's status.
func (a *Agent) peerStatusNow(h *memberHealth) peerStatus {
	now := boottime.Now()
	timeout := a.config().PeerTimeout()
	a.mu.Lock()
	applied := a.applied
	a.mu.Unlock()
	return peerStatus{
		Member:        a.opts.Member,
		ServerHealthy: h.serverHealthy(now, timeout),
		Serving:       applied.role == server.RoleActive && (applied.until == 0 || applied.until > now),
		Epoch:         applied.epoch,
	}
}

// serverSample is one look at the local license server.
type serverSample struct {
	// StopToFence: a vendor server without an admin API; only the
	// process is known.
	StopToFence bool
	// Polled: the server answered a state poll; Epoch is the epoch it
	// reported.
	Polled bool
	Epoch  uint64
	// Running, Restarts and Held come from the supervisor.
	Running  bool
	Restarts int
	Held     bool
}

// memberHealth is what a pair member knows about its license server's
// health. Times are CLOCK_BOOTTIME nanoseconds.
type memberHealth struct {
	mu sync.Mutex
	// polled is when the server last answered a state poll (a vendor
	// server: last ran or was held); broken is when its process was last
	// seen down or restarted, after it had first run.
	polled, broken int64
	ran            bool
	restarts       int
	// epoch is the epoch the server last reported.
	epoch uint64
}

// observeServer records a sample taken at now.
func (h *memberHealth) observeServer(s serverSample, now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.StopToFence {
		// Held (stopped on purpose) while the member does not serve; a
		// released server that does not run is down.
		if s.Held || s.Running {
			h.polled = now
		}
		return
	}
	if h.ran && (!s.Running || s.Restarts != h.restarts) {
		h.broken = now
	}
	if s.Running {
		h.ran, h.restarts = true, s.Restarts
	}
	if s.Polled && s.Running {
		h.polled, h.epoch = now, s.Epoch
	}
}

// serverHealthy: the server answered within timeout and its process has
// not been down or restarted within timeout.
func (h *memberHealth) serverHealthy(now int64, timeout time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := int64(timeout)
	return h.polled != 0 && now-h.polled < t && (h.broken == 0 || now-h.broken >= t)
}

// serverEpoch is the epoch the local server last reported.
func (h *memberHealth) serverEpoch() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

// peerTracker keeps what the other member last said about itself.
type peerTracker struct {
	mu sync.Mutex
	// status is the last status received, at.
	status *peerStatus
	at     int64
	// heard is when the peer's agent last answered at all.
	heard int64
}

// observe records one probe at now: st is nil when the probe got no
// status; answered says whether the peer's agent answered at all.
func (p *peerTracker) observe(st *peerStatus, answered bool, now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if answered {
		p.heard = now
	}
	if st != nil {
		p.status, p.at = st, now
	}
}

// heardWithin says whether the peer's agent answered within d.
func (p *peerTracker) heardWithin(now int64, d time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heard != 0 && now-p.heard < int64(d)
}
