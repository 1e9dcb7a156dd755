package agent

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/boottime"
	"github.com/licenseha/licenseha/pkg/server"
)

// pairDriver runs a backup pair member. ActiveActive: both servers serve
// their own licences, each also answering for the other's mapped licences
// so failed-over clients keep their seats. ActivePassive: the Lease decides
// which one serves, so two servers started at the same instant never both
// serve; with Fixed roles the backup campaigns only while it cannot reach
// the main, and gives the role back as soon as the main answers again.
type pairDriver struct {
	a *Agent
	// peerUp is true while the other member's agent answers.
	peerUp atomic.Bool
}

func newPairDriver(a *Agent) (roleDriver, error) {
	if a.opts.Member != string(licensehav1.SideMain) && a.opts.Member != string(licensehav1.SideBackup) {
		return nil, fmt.Errorf("a backup pair member is named main or backup, not %q", a.opts.Member)
	}
	return &pairDriver{a: a}, nil
}

func (d *pairDriver) other() string {
	if d.a.opts.Member == string(licensehav1.SideMain) {
		return string(licensehav1.SideBackup)
	}
	return string(licensehav1.SideMain)
}

// aliases maps the other side's licence ids to ours, from the mappings.
func (d *pairDriver) aliases(cfg *group.Config) map[string]string {
	out := map[string]string{}
	for _, m := range cfg.LicenseMappings {
		if d.a.opts.Member == string(licensehav1.SideMain) {
			out[m.Backup] = m.Main
		} else {
			out[m.Main] = m.Backup
		}
	}
	return out
}

func (d *pairDriver) Run(ctx context.Context) error {
	cfg := d.a.config()
	defer d.a.files.start(ctx)() // extra data folders; the main syncs once more on a deliberate stop
	go d.probePeer(ctx)
	if !d.a.opts.StopToFence {
		go d.keepAliases(ctx)
	}
	if cfg.Mode != string(licensehav1.ActivePassive) {
		d.a.setDesired(ctx, d.state(server.RoleActive, 1, d.a.opts.Member))
		<-ctx.Done()
		return nil
	}
	return d.runActivePassive(ctx)
}

func (d *pairDriver) state(role server.Role, epoch uint64, active string) desired {
	st, label := group.StateStandby, licensehav1.RoleLabelStandby
	if role == server.RoleActive {
		st, label = group.StateActive, licensehav1.RoleLabelActive
	}
	return desired{role: role, epoch: epoch, active: active, label: label, state: st, peers: d.peers()}
}

func (d *pairDriver) peers() []string {
	if d.peerUp.Load() {
		return []string{d.other()}
	}
	return nil
}

// probePeer asks the other member's agent whether it is up, every second.
func (d *pairDriver) probePeer(ctx context.Context) {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastOK := time.Time{}
	for {
		cfg := d.a.config()
		ok := false
		if m, found := cfg.Member(d.other()); found && m.Address != "" {
			resp, err := client.Get("http://" + m.Address + ":" + strconv.Itoa(group.AgentHTTPPort) + "/healthz")
			if err == nil {
				resp.Body.Close()
				ok = resp.StatusCode == http.StatusOK
			}
		}
		if ok {
			lastOK = time.Now()
		}
		// Up while heard within the peer timeout.
		d.peerUp.Store(time.Since(lastOK) < time.Duration(cfg.PeerTimeoutMillis)*time.Millisecond)
		d.a.setPeers(d.peers())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepAliases tells the server which of the other side's licences it serves.
func (d *pairDriver) keepAliases(ctx context.Context) {
	var last string
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		aliases := d.aliases(d.a.config())
		key := fmt.Sprint(aliases)
		if key != last {
			if err := d.a.admin.SetAliases(ctx, aliases); err == nil {
				last = key
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runActivePassive campaigns for the Lease when this member may serve.
func (d *pairDriver) runActivePassive(ctx context.Context) error {
	cfg := d.a.config()
	fixed := cfg.Roles != string(licensehav1.RolesSymmetric)
	isMain := d.a.opts.Member == string(licensehav1.SideMain)
	peerTimeout := time.Duration(cfg.PeerTimeoutMillis) * time.Millisecond
	var epoch atomic.Uint64
	d.a.setDesired(ctx, d.state(server.RoleStandby, 0, ""))
	for ctx.Err() == nil {
		// With Fixed roles the backup only campaigns while the main is down.
		if fixed && !isMain && d.peerUp.Load() {
			d.a.setDesired(ctx, d.state(server.RoleStandby, epoch.Load(), d.other()))
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		electCtx, stop := context.WithCancel(ctx)
		lock := &renewClock{Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metaOf(d.a.opts.Namespace, group.LeaseName(d.a.opts.Group)),
			Client:     d.a.cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: d.a.opts.Pod},
		}, beforeRelease: func() {
			// setDesired applies a fence at once, from this goroutine.
			d.a.setDesired(context.WithoutCancel(ctx), d.state(server.RoleStandby, epoch.Load(), ""))
		}}
		// The holder serves only until RenewDeadline after its last
		// successful write of the Lease, never longer: the other side may
		// take the Lease LeaseDuration after it last saw it renewed, so a
		// holder that froze and resumed has stopped serving by then.
		serve := func(e uint64) {
			lock.whileHeld(func() {
				want := d.state(server.RoleActive, e, d.a.opts.Member)
				want.until = lock.last.Load() + int64(peerTimeout*2/3)
				d.a.setDesired(ctx, want)
				d.a.applyRole(ctx)
			})
		}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   peerTimeout,
			RenewDeadline:   peerTimeout * 2 / 3,
			RetryPeriod:     peerTimeout / 6,
			ReleaseOnCancel: true,
			Name:            d.a.opts.Group,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					// Epochs only need to grow for each server; the
					// acquisition time in milliseconds does.
					e := max(epoch.Load()+1, uint64(time.Now().UnixMilli()))
					epoch.Store(e)
					serve(e)
					d.a.log.Info("Took the active role", "epoch", e)
					// The backup hands back as soon as the main answers again.
					for lctx.Err() == nil {
						if fixed && !isMain && d.peerUp.Load() {
							d.a.log.Info("Main is back; handing the role back")
							// Fence before the Lease is released (see beforeRelease).
							stop()
							return
						}
						serve(epoch.Load())
						sleep(lctx, 200*time.Millisecond)
					}
				},
				OnStoppedLeading: func() {
					// Fence first: the server stops serving before anyone else may.
					d.a.setDesired(ctx, d.state(server.RoleStandby, epoch.Load(), ""))
				},
			},
		})
		if err != nil {
			stop()
			return err
		}
		le.Run(electCtx)
		stop()
	}
	d.a.setDesired(context.WithoutCancel(ctx), d.state(server.RoleStandby, epoch.Load(), ""))
	return nil
}

// renewClock records when this member last wrote the Lease successfully,
// on the node's monotonic clock, taking the time before the write is sent.
type renewClock struct {
	resourcelock.Interface
	last atomic.Int64
	// beforeRelease fences the server; it runs before the Lease is given
	// up, so the other side can never serve while this one still does.
	beforeRelease func()
	// released is set once this elector gave the Lease up: nothing may
	// make the server serve again under it. mu makes "check released, then
	// serve" and "set released, then fence" exclusive.
	mu       sync.Mutex
	released bool
}

// whileHeld runs f unless the Lease was released, excluding a concurrent
// release: f may make the server serve.
func (r *renewClock) whileHeld(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.released {
		f()
	}
}

func (r *renewClock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	at := boottime.Now()
	err := r.Interface.Create(ctx, rec)
	if err == nil {
		r.last.Store(at)
	}
	return err
}

func (r *renewClock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if rec.HolderIdentity == "" {
		r.mu.Lock()
		r.released = true
		if r.beforeRelease != nil {
			r.beforeRelease()
		}
		r.mu.Unlock()
		return r.Interface.Update(ctx, rec)
	}
	at := boottime.Now()
	err := r.Interface.Update(ctx, rec)
	if err == nil {
		r.last.Store(at)
	}
	return err
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
