package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/server"
)

// pairDriver runs a backup pair member. Both modes serve, besides their
// own licences, the other side's mapped ones (aliases), so failed-over
// clients keep their seats. ActiveActive: both servers serve; each probes
// the other's agent for the report. ActivePassive: the election decides
// which one serves (electionDriver, the triad's protocol with two members:
// heartbeats and grants between the agents, the Lease as the tie-breaker
// when they cannot hear each other).
type pairDriver struct {
	a *Agent
	// health is this member's own fitness, served to the peer.
	health *memberHealth
	// peer is what the other member last reported about itself.
	peer peerTracker
}

// peerProbeInterval is how often a member asks the other for its status.
const peerProbeInterval = time.Second

func newPairDriver(a *Agent) (roleDriver, error) {
	if a.opts.Member != group.SideMain && a.opts.Member != group.SideBackup {
		return nil, fmt.Errorf("a backup pair member is named main or backup, not %q", a.opts.Member)
	}
	return &pairDriver{a: a, health: &memberHealth{}}, nil
}

func (d *pairDriver) other() string {
	if d.a.opts.Member == group.SideMain {
		return group.SideBackup
	}
	return group.SideMain
}

// aliases maps the other side's licence ids to ours, from the mappings.
func (d *pairDriver) aliases(cfg *group.Config) map[string]string {
	out := map[string]string{}
	for _, m := range cfg.LicenseMappings {
		if d.a.opts.Member == group.SideMain {
			out[m.Backup] = m.Main
		} else {
			out[m.Main] = m.Backup
		}
	}
	return out
}

func (d *pairDriver) Run(ctx context.Context) error {
	cfg := d.a.config()
	memberHealthOf.Store(d.a, d.health)
	defer memberHealthOf.Delete(d.a)
	if !d.a.opts.StopToFence {
		go d.keepAliases(ctx)
	}
	if cfg.Mode == group.ModeActivePassive {
		return (&electionDriver{a: d.a}).Run(ctx)
	}
	go d.probePeer(ctx)
	go d.watchServer(ctx)
	d.a.setDesired(ctx, d.state(server.RoleActive, 1, d.a.opts.Member))
	<-ctx.Done()
	return nil
}

func (d *pairDriver) state(role server.Role, epoch uint64, active string) desired {
	st, label := group.StateStandby, group.RoleLabelStandby
	if role == server.RoleActive {
		st, label = group.StateActive, group.RoleLabelActive
	}
	return desired{role: role, epoch: epoch, active: active, label: label, state: st, peers: d.peers()}
}

// peers lists the other member while its agent answers.
func (d *pairDriver) peers() []string {
	if d.peer.heardWithin(boottime.Now(), d.a.config().PeerTimeout()) {
		return []string{d.other()}
	}
	return nil
}

// probePeer asks the other member's agent for its status, every second.
func (d *pairDriver) probePeer(ctx context.Context) {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	every(ctx, peerProbeInterval, func() {
		cfg := d.a.config()
		var st *peerStatus
		answered := false
		if m, found := cfg.Member(d.other()); found && m.Address != "" {
			st, answered = fetchPeerStatus(ctx, client, "http://"+net.JoinHostPort(m.Address, strconv.Itoa(group.AgentHTTPPort))+peerStatusPath)
		}
		d.peer.observe(st, answered, boottime.Now())
		d.a.setPeers(d.peers())
	})
}

// fetchPeerStatus asks one agent for its status: st is nil unless it
// answered with one; answered says whether the agent answered at all (an
// agent of an older release answers 404).
func fetchPeerStatus(ctx context.Context, client *http.Client, url string) (st *peerStatus, answered bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, true
	}
	var s peerStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&s); err != nil {
		return nil, true
	}
	return &s, true
}

// watchServer samples the local license server's health every 250 ms: the
// agent loop's latest state poll (no request of its own) and the
// supervisor's view of the process.
func (d *pairDriver) watchServer(ctx context.Context) {
	was := false
	every(ctx, 250*time.Millisecond, func() {
		ps := d.a.procs.server.Status()
		s := serverSample{StopToFence: d.a.opts.StopToFence, Running: ps.Running, Restarts: ps.Restarts}
		if s.StopToFence {
			s.Held = d.a.procs.held()
		} else {
			s.Polled, s.Epoch = d.a.serverPoll(500 * time.Millisecond)
		}
		now := boottime.Now()
		d.health.observeServer(s, now)
		if ok := d.health.serverHealthy(now, d.a.config().PeerTimeout()); ok != was {
			was = ok
			if ok {
				d.a.log.Info("License server healthy")
			} else {
				d.a.log.Info("License server cannot serve", "running", ps.Running, "restarts", ps.Restarts)
			}
		}
	})
}

// keepAliases tells the server which of the other side's licences it serves.
func (d *pairDriver) keepAliases(ctx context.Context) {
	var last string
	every(ctx, 2*time.Second, func() {
		aliases := d.aliases(d.a.config())
		key := fmt.Sprint(aliases)
		if key != last {
			if err := d.a.admin.SetAliases(ctx, aliases); err == nil {
				last = key
			}
		}
	})
}

func metaOf(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
