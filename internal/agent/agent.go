// Package agent is the member agent: it runs as the first process of a
// member pod, supervises the license server, takes part in choosing the
// active member, reports its state on its pod, and syncs the server's state
// through the group's ConfigMap and Secret.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// Defaults matching the member pods the operator builds.
var (
	DefaultConfigFile     = group.ConfigDir + "/" + group.ConfigKey
	DefaultAdminTokenFile = group.AdminTokenFile
	DefaultAdminURL       = "http://127.0.0.1:" + strconv.Itoa(group.ServerAdminPort)
	DefaultHTTPAddr       = ":" + strconv.Itoa(group.AgentHTTPPort)
	DefaultPeerAddr       = ":" + strconv.Itoa(group.AgentPeerPort)
)

// Options configure an agent.
type Options struct {
	GroupKind, Group, Member, Namespace, Pod string
	ConfigFile, AdminTokenFile, AdminURL     string
	HTTPAddr, PeerAddr                       string
	ServerCommand                            []string
	// Services are more processes to supervise (spec.server.services; a
	// vendor server only, fenced with it unless Always).
	Services []group.Service
	Log      logr.Logger

	// DataDir is the server's data folder (a pair's synced extra folders).
	DataDir string
	// StopToFence fences a vendor server that has no licenseha admin API by
	// running it only while the member serves.
	StopToFence bool
	// ExposeToken starts the server without hiding the service-account
	// token from it (see SandboxExec); by default it is hidden where the
	// node allows.
	ExposeToken bool
}

// desired is what the role protocol wants of the server.
type desired struct {
	role  server.Role
	epoch uint64
	// active is the member that serves, when known (a hint for clients).
	active string
	label  string
	// state and peers are reported on the pod.
	state string
	peers []string
	// until bounds an active role, on the node's CLOCK_BOOTTIME in
	// nanoseconds: the server fences itself then unless renewed (zero: no
	// bound, e.g. an ActiveActive pair member).
	until int64
	// joining: a triad member still in its quiet period (not ready, not
	// counted in the quorum).
	joining bool
}

// Agent is one running member agent.
type Agent struct {
	opts Options
	log  logr.Logger
	cs   kubernetes.Interface
	// watchRC serves the watches (no per-request timeout; see newClientset).
	watchRC rest.Interface
	admin   *server.AdminClient
	procs   *processes
	sync    *syncer
	pod     *podReporter
	files   *fileSync
	// peerKey authenticates heartbeats between the members (the admin token).
	peerKey []byte
	// elected is set while the election (a triad, an ActivePassive pair)
	// drives the server through control; otherwise the loop applies want.
	elected atomic.Bool
	metrics *agentMetrics
	// control is the only way the server's role is changed.
	control *serverControl

	mu    sync.Mutex
	cfg   *group.Config
	cfgCh chan *group.Config
	want  desired
	// activeAt is the last time the protocol's wish for this member's
	// server was "active" (see drainAfterHandover).
	activeAt time.Time
	applied  desired
	srvOK    bool
	// srvOKAt is when the server last answered a state poll.
	srvOKAt time.Time
	// srvEpoch is the epoch the server reported at srvOKAt.
	srvEpoch uint64
	srvRev   uint64
	srvVer   string
	// tokenHidden is whether the running server was kept from the
	// service-account token; nil before the first start.
	tokenHidden *bool

	// settings and usage are used by the loop's goroutine only.
	settings settingsState
	usage    usageState
}

// Run runs the agent until ctx ends (SIGTERM), then hands over and stops
// the server.
func Run(ctx context.Context, opts Options) error {
	log := opts.Log
	cfg, err := readConfigFile(opts.ConfigFile)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(opts.AdminTokenFile)
	if err != nil {
		return fmt.Errorf("reading the admin token: %w", err)
	}
	cs, watchRC, err := newClientset()
	if err != nil {
		return err
	}
	if opts.Pod == "" {
		opts.Pod = group.PodName(opts.Group, opts.Member)
	}
	admin := server.NewAdminClient(opts.AdminURL, strings.TrimSpace(string(token)), &http.Client{Timeout: time.Second})
	a := &Agent{
		opts:    opts,
		log:     log,
		cs:      cs,
		watchRC: watchRC,
		admin:   admin,
		procs:   newProcesses(log, opts.ServerCommand, opts.Services),
		sync: &syncer{log: log.WithName("sync"), cs: cs, namespace: opts.Namespace, group: opts.Group, admin: admin,
			debounce: time.Second, settingsOnly: opts.GroupKind == group.KindBackupPair},
		pod:     &podReporter{cs: cs, namespace: opts.Namespace, pod: opts.Pod},
		cfg:     cfg,
		cfgCh:   make(chan *group.Config, 1),
		peerKey: []byte(strings.TrimSpace(string(token))),
		metrics: newAgentMetrics(),
	}
	if opts.ExposeToken {
		log.Info("The license server can read the service-account token: hiding it is switched off (--hide-token=false)")
		a.metrics.tokenHidden.Set(0)
	} else {
		a.procs.hide(TokenDir, a.reportSandbox)
	}
	a.files = newFileSync(a)
	a.control = &serverControl{a: a}

	// The server runs for the whole life of the agent; it outlives ctx so
	// that the handover on SIGTERM completes before it stops.
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan struct{})
	if opts.StopToFence {
		// Not running until this member serves.
		a.procs.hold(0)
	}
	go reapOrphans(srvCtx, a.procs.waitsFor, a.log.WithName("reaper"))
	go func() {
		defer close(srvDone)
		a.procs.run(srvCtx, 5*time.Second)
	}()
	defer func() { stopServer(); <-srvDone }()

	a.watch(ctx)
	go a.serveHTTP(ctx)
	if opts.StopToFence {
		go a.control.watchdog(ctx)
	} else {
		go a.collectLicences(ctx)
	}

	driver, err := a.newDriver()
	if err != nil {
		return err
	}
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	go a.loop(loopCtx)
	log.Info("Agent started", "kind", opts.GroupKind)
	// spec.sync.paths of both kinds; a pair's main syncs once more on a
	// deliberate stop before the agent exits.
	filesDone := a.files.start(ctx)
	err = driver.Run(ctx)
	filesDone()
	a.drain(ctx)
	return err
}

// drainAfterHandover is how long a member that served until SIGTERM keeps
// its fenced server answering after the handover. Clients on a keep-alive
// connection, or with this member's address, then get "not active" and the
// new active's name at once instead of waiting out a timeout on an address
// that is gone; a Service's endpoints are updated well within it. The pod's
// termination grace period (30 s) covers it and the handover.
const drainAfterHandover = 2 * time.Second

// drain waits drainAfterHandover after a deliberate stop (ctx ended) when
// this member's server was active shortly before. A vendor server fenced by
// stopping it has nothing to answer with.
func (a *Agent) drain(ctx context.Context) {
	a.mu.Lock()
	activeAt := a.activeAt
	a.mu.Unlock()
	if ctx.Err() == nil || a.opts.StopToFence || activeAt.IsZero() || time.Since(activeAt) > shutdownLimit+time.Second {
		return
	}
	a.log.Info("Handed over; the fenced server keeps answering so that clients move at once", "for", drainAfterHandover.String())
	time.Sleep(drainAfterHandover)
}

// roleDriver runs a group kind's active-role protocol and tells the agent
// what the server must do through setDesired. Run returns after ctx ends
// and the member has handed over.
type roleDriver interface {
	Run(ctx context.Context) error
}

func (a *Agent) newDriver() (roleDriver, error) {
	switch a.opts.GroupKind {
	case group.KindTriad:
		return newTriadDriver(a)
	case group.KindBackupPair:
		return newPairDriver(a)
	}
	return nil, fmt.Errorf("unknown --group-kind %q", a.opts.GroupKind)
}

// setDesired records what a backup pair's protocol wants and applies it at
// once, from the caller's goroutine: a fence must reach the server before
// anything else leaves the member.
func (a *Agent) setDesired(ctx context.Context, d desired) {
	a.setWant(d)
	if d.role != server.RoleActive {
		a.applyRole(ctx)
	}
}

// setWant records what the protocol wants, for reports, probes and sync.
func (a *Agent) setWant(d desired) {
	a.mu.Lock()
	if d.role == server.RoleActive || a.want.role == server.RoleActive {
		a.activeAt = time.Now()
	}
	a.want = d
	a.mu.Unlock()
}

// setPeers updates the peers reported on the pod.
func (a *Agent) setPeers(peers []string) {
	a.mu.Lock()
	a.want.peers = peers
	a.mu.Unlock()
}

// applyRole brings a backup pair member's server in line with the desired
// role (a triad's election applies its own through serverControl).
func (a *Agent) applyRole(ctx context.Context) {
	a.mu.Lock()
	want := a.want
	a.mu.Unlock()
	a.control.applyDesired(ctx, want)
}

// serverHealthy says whether the license server can serve: it answered a
// state poll within the last two seconds. A vendor server fenced by not
// running cannot be asked; it counts as healthy.
func (a *Agent) serverHealthy() bool {
	if a.opts.StopToFence {
		return true
	}
	ok, _ := a.serverPoll(2 * time.Second)
	return ok
}

// serverPoll returns the loop's latest state poll of the server: whether it
// answered within maxAge, and the epoch it reported.
func (a *Agent) serverPoll(maxAge time.Duration) (ok bool, epoch uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.srvOKAt.IsZero() && time.Since(a.srvOKAt) < maxAge, a.srvEpoch
}

// ticked waits for t's next tick: false if ctx ends first.
func ticked(ctx context.Context, t *time.Ticker) bool {
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// every runs f at once and then every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f()
		if !ticked(ctx, t) {
			return
		}
	}
}

// loop applies the desired role, syncs state and reports on the pod.
func (a *Agent) loop(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for ticked(ctx, t) {
		if !a.elected.Load() {
			// An ActiveActive pair member; the election applies its own.
			a.applyRole(ctx)
		}
		if a.opts.StopToFence {
			// A vendor server has no admin API: no state to sync beyond the
			// pair's file sync; the report carries the role only.
			a.mu.Lock()
			a.srvOK = true
			want := a.want
			a.mu.Unlock()
			if want.label != "" {
				a.metrics.setRole(want.label)
				_ = a.pod.Report(ctx, want.label, group.MemberState{State: want.state, Epoch: int64(want.epoch), Peers: want.peers})
			}
			continue
		}
		st, err := a.admin.State(ctx)
		a.mu.Lock()
		a.srvOK = err == nil
		if err == nil {
			a.srvOKAt, a.srvEpoch = time.Now(), st.Epoch
		}
		want := a.want
		if st != nil {
			a.srvRev, a.srvVer = st.Revision, st.Version
		}
		a.mu.Unlock()
		if err != nil {
			continue
		}
		if a.publishes(want, st) {
			if err := a.sync.publish(ctx, st, want.epoch); err != nil {
				a.log.Error(err, "Publishing state failed")
			}
		} else if err := a.sync.apply(ctx, st); err != nil {
			a.log.Error(err, "Applying synced state failed")
		}
		settingsHash := a.syncSettings(ctx, a.config(), want, st, time.Now())
		a.syncUsage(ctx, want, st, time.Now())
		// The revision reported is the synced state this member holds: for
		// a triad its server's (imports carry it), for a pair the main's
		// published settings revision.
		rev := a.sync.Revision()
		if a.opts.GroupKind == group.KindTriad {
			rev = max(st.Revision, rev)
		}
		report := group.MemberState{State: want.state, Epoch: int64(want.epoch), Peers: want.peers,
			Revision: int64(rev), ServerVersion: st.Version, FilesRevision: a.files.revision(), Joining: want.joining,
			SettingsHash: settingsHash}
		pub, app := a.sync.revisions()
		a.metrics.revision.WithLabelValues("published").Set(float64(pub))
		a.metrics.revision.WithLabelValues("applied").Set(float64(app))
		if at := a.sync.lastChange(); !at.IsZero() {
			a.metrics.syncAge.Set(time.Since(at).Seconds())
		}
		if want.label != "" {
			a.metrics.setRole(want.label)
			if err := a.pod.Report(ctx, want.label, report); err != nil {
				a.log.V(1).Info("Reporting on the pod failed; will retry", "error", err.Error())
			}
		}
	}
}

// publishes says whether this member writes the synced state: the serving
// member of a triad, the main of a backup pair (whose backup takes only the
// settings, keeping its own usage statistics and checkouts).
func (a *Agent) publishes(want desired, st *server.State) bool {
	if a.opts.GroupKind == group.KindBackupPair {
		return a.opts.Member == "main"
	}
	return want.role == server.RoleActive && st.Role == server.RoleActive
}

// watch follows the group configuration and the synced state.
func (a *Agent) watch(ctx context.Context) {
	rc := a.watchRC
	watchNamed(ctx, rc, "configmaps", a.opts.Namespace, group.ConfigName(a.opts.Group), &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) {
		cfg, err := configFromConfigMap(cm)
		if err != nil {
			a.log.Error(err, "Ignoring an unreadable group configuration")
			return
		}
		a.mu.Lock()
		a.cfg = cfg
		a.mu.Unlock()
		select {
		case a.cfgCh <- cfg:
		default:
			select {
			case <-a.cfgCh:
			default:
			}
			a.cfgCh <- cfg
		}
	})
	watchNamed(ctx, rc, "configmaps", a.opts.Namespace, group.StateName(a.opts.Group), &corev1.ConfigMap{}, a.sync.observeConfigMap)
	watchNamed(ctx, rc, "pods", a.opts.Namespace, a.opts.Pod, &corev1.Pod{}, a.pod.observe)
	watchNamed(ctx, rc, "secrets", a.opts.Namespace, group.StateName(a.opts.Group), &corev1.Secret{}, func(s *corev1.Secret) { a.sync.observeSecret(s); a.files.observe(s) })
}

// config returns the latest group configuration.
func (a *Agent) config() *group.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// serveHTTP serves the probes: /healthz is the agent itself (the kubelet
// restarts a stuck agent), /readyz needs the server answering and, for a
// triad member, the member able to vote.
func (a *Agent) serveHTTP(ctx context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", a.metrics.handler())
	mux.Handle("/v1/peer", a.peerStatusHandler())
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		ok, joining := a.srvOK, a.want.joining
		a.mu.Unlock()
		if !ok {
			http.Error(w, "license server not answering", http.StatusServiceUnavailable)
			return
		}
		if joining {
			// Ready means able to vote: a rolling update or a member
			// replacement waits for this before taking the next member.
			http.Error(w, "joining the quorum", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Addr: a.opts.HTTPAddr, Handler: mux, ReadHeaderTimeout: 2 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error(err, "Probe endpoint failed")
	}
}

func readConfigFile(path string) (*group.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the group configuration: %w", err)
	}
	return configFromConfigMap(&corev1.ConfigMap{Data: map[string]string{group.ConfigKey: string(data)}})
}
