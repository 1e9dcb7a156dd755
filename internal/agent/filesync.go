package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	gosync "sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
	lsync "github.com/licenseha/licenseha/pkg/sync"
)

// Keys of the extra-folder file sync of a backup pair, in the Secret
// <pair>-state next to the server's synced state. Written with merge
// patches, so they never touch the syncer's keys.
const (
	// keyFiles holds the main's latest change set (pkg/sync, tar+gzip).
	keyFiles = "files.tar.gz"
	// keyFilesRevision is the revision of that change set.
	keyFilesRevision = "files-revision"
	// keyFilesResync is written by the backup: the revision it could not
	// complete (it missed a cycle, or its files were changed); the main
	// answers with a full cycle.
	keyFilesResync = "files-resync"

	// secretLimit is what a Secret holds; the change set gets what the
	// other keys leave, less a margin for metadata.
	secretLimit  = 1 << 20
	secretMargin = 64 << 10
	// finalSyncTimeout bounds the cycle on a deliberate stop.
	finalSyncTimeout = 5 * time.Second
)

// fileSync syncs spec.sync.paths of the server's data folder. The
// publisher — the member whose server serves (a triad, an ActivePassive
// pair), or the main of an ActiveActive pair, where both sides serve — scans
// every SyncIntervalSeconds and publishes what changed; the others apply
// each new revision, so nothing is ever written under a serving server but
// an ActiveActive backup's. A member that stops serving publishes once more
// after its processes stopped (final) unless another member has published
// since, and a member taking over applies the newest revision before its
// processes start (catchUp). An ActiveActive main publishes once more on
// SIGTERM. Inert without sync paths.
type fileSync struct {
	log       logr.Logger
	cs        kubernetes.Interface
	namespace string
	secret    string
	// pair, main: which group kind and member; serving says whether this
	// member's server serves now.
	pair    bool
	main    bool
	serving func() bool
	dataDir string
	config  func() *group.Config
	enabled bool
	// stopToFence: the server is fenced by stopping its processes, whose
	// fence publishes once more itself (final).
	stopToFence bool
	// publisher is what the loop last acted as.
	publisher bool

	// cycle serialises the cycles: the loop's, a taker's catch-up and a
	// fenced member's final publication never touch the folder at once.
	cycle gosync.Mutex
	mu    gosync.Mutex
	// Main: the manifest last published (nil: the next cycle sends all),
	// its change set and revision, when the last cycle ran, and resync
	// requests from the backup.
	last      lsync.Manifest
	lastBlob  []byte
	lastRev   int64
	lastCycle time.Time
	resync    int64
	answered  int64
	// Both: what the Secret holds now; its other keys' size.
	secretRev  int64
	otherBytes int
	// Backup: the newest change set seen (latched from the watch, since the
	// syncer's writes drop these keys), the revision last processed, the
	// one that failed, the one fully held, and the last resync request sent.
	pending     []byte
	pendingRev  int64
	seen        int64
	failed      int64
	applied     int64
	requested   int64
	lastAttempt time.Time
}

func newFileSync(a *Agent) *fileSync {
	pair := a.opts.GroupKind == group.KindBackupPair
	return &fileSync{
		log: a.log.WithName("files"), cs: a.cs, namespace: a.opts.Namespace, secret: group.StateName(a.opts.Group),
		pair: pair, main: pair && a.opts.Member == group.SideMain, dataDir: a.opts.DataDir, config: a.config,
		serving: func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.applied.role == server.RoleActive
		},
		enabled:     a.opts.DataDir != "",
		publisher:   pair && a.opts.Member == group.SideMain,
		stopToFence: a.opts.StopToFence,
	}
}

// mainPublishes: an ActiveActive pair (both sides serve) syncs from its
// main; a triad and an ActivePassive pair from whichever member serves.
func (f *fileSync) mainPublishes() bool {
	if !f.pair {
		return false
	}
	cfg := f.config()
	return cfg == nil || cfg.Mode != group.ModeActivePassive
}

// fixedPublisher says whether this member is an ActiveActive pair's main,
// which publishes whether or not anything changes hands.
func (f *fileSync) fixedPublisher() bool { return f.main && f.mainPublishes() }

// publishing says whether this member publishes now.
func (f *fileSync) publishing() bool {
	if f.mainPublishes() {
		return f.main
	}
	return f.serving()
}

// active says whether there is anything to sync under the current config.
func (f *fileSync) active() (*group.Config, bool) {
	if f == nil || !f.enabled {
		return nil, false
	}
	cfg := f.config()
	return cfg, cfg != nil && len(cfg.SyncPaths) > 0
}

// revision is what the member reports: the publisher the revision it last
// published, the others the one whose files they fully hold.
func (f *fileSync) revision() int64 {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.publisher {
		return f.lastRev
	}
	return f.applied
}

// observe is called with every version of the state Secret the watch
// delivers; it latches what this side needs before another write drops it.
func (f *fileSync) observe(sec *corev1.Secret) {
	if f == nil || !f.enabled {
		return
	}
	rev, _ := strconv.ParseInt(string(sec.Data[keyFilesRevision]), 10, 64)
	resync, _ := strconv.ParseInt(string(sec.Data[keyFilesResync]), 10, 64)
	other := 0
	for k, v := range sec.Data {
		if k != keyFiles && k != keyFilesRevision && k != keyFilesResync {
			other += len(k) + len(v)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secretRev, f.otherBytes = rev, other
	if resync > f.answered {
		f.resync = resync
	}
	if rev != 0 && rev != f.pendingRev && len(sec.Data[keyFiles]) > 0 {
		f.pending, f.pendingRev = sec.Data[keyFiles], rev
	}
}

// start runs the sync until ctx ends (the main then syncs once more) and
// returns a function that waits for it to finish.
func (f *fileSync) start(ctx context.Context) (wait func()) {
	done := make(chan struct{})
	if f == nil || !f.enabled {
		close(done)
		return func() { <-done }
	}
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				f.mu.Lock()
				was := f.publisher
				f.mu.Unlock()
				if f.fixedPublisher() {
					fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSyncTimeout)
					f.mainCycle(fctx, true)
					cancel()
				} else if was && !f.stopToFence {
					// Served until now through its admin API: what it
					// wrote last (a stopped server's fence publishes).
					f.final(ctx)
				}
				return
			case <-t.C:
			}
			if f.setPublisher(f.publishing()) {
				f.mainCycle(ctx, false)
			} else {
				f.backupCycle(ctx)
			}
		}
	}()
	return func() { <-done }
}

// mainCycle scans and publishes when the interval has passed, when forced
// (a deliberate stop) or when the backup asked for a full cycle.
func (f *fileSync) mainCycle(ctx context.Context, force bool) {
	f.cycle.Lock()
	defer f.cycle.Unlock()
	cfg, ok := f.active()
	if !ok {
		return
	}
	f.mu.Lock()
	interval := cfg.SyncInterval()
	resync, want := f.resync > f.answered, f.resync
	due := force || resync || time.Since(f.lastCycle) >= interval
	last := f.last
	if resync {
		last = nil
	}
	f.mu.Unlock()
	if !due {
		return
	}
	err := f.publish(ctx, cfg, last, "")
	f.mu.Lock()
	f.lastCycle = time.Now()
	if resync && err == nil {
		f.answered = max(f.answered, want)
	}
	f.mu.Unlock()
	if err != nil {
		f.log.Error(err, "Syncing files to the backup failed")
	}
}

// publish scans the data folder and, when anything changed since last
// (nil: send everything), writes the change set with the full manifest.
// When nothing changed but another write of the Secret dropped the last
// change set (the server state's writer replaces the whole Secret), it
// writes that one again. rv, when set, is the resourceVersion the write
// requires.
func (f *fileSync) publish(ctx context.Context, cfg *group.Config, last lsync.Manifest, rv string) error {
	start := time.Now()
	paths := cfg.SyncPaths
	cur, err := lsync.Scan(f.dataDir, paths, last)
	if err != nil {
		return err
	}
	f.mu.Lock()
	blob, rev, held := f.lastBlob, f.lastRev, f.secretRev == f.lastRev
	budget := min(lsync.MaxObjectBytes, secretLimit-secretMargin-f.otherBytes)
	next := max(f.lastRev+1, f.secretRev+1, time.Now().UnixMilli())
	f.mu.Unlock()
	if last != nil && blob != nil && lsync.Compare(last, cur).Empty() {
		if held {
			return nil
		}
		return f.patch(ctx, map[string][]byte{keyFiles: blob, keyFilesRevision: []byte(strconv.FormatInt(rev, 10))}, rv)
	}
	cs, err := lsync.Build(f.dataDir, last, cur, next)
	if err != nil {
		return err
	}
	blob, err = lsync.Encode(cs, budget)
	if err != nil {
		return err
	}
	if err := f.patch(ctx, map[string][]byte{keyFiles: blob, keyFilesRevision: []byte(strconv.FormatInt(next, 10))}, rv); err != nil {
		return err
	}
	f.mu.Lock()
	f.last, f.lastBlob, f.lastRev, f.secretRev = cs.Manifest, blob, next, next
	f.mu.Unlock()
	f.log.V(1).Info("Published files", "revision", next, "full", cs.Full, "files", len(cs.Manifest),
		"sent", len(cs.Files), "removed", len(cs.Removed), "bytes", len(blob), "took", time.Since(start).String())
	return nil
}

// backupCycle applies the newest change set seen, when it is new; a failed
// one is retried at the sync interval.
func (f *fileSync) backupCycle(ctx context.Context) {
	f.cycle.Lock()
	defer f.cycle.Unlock()
	cfg, ok := f.active()
	if !ok {
		return
	}
	interval := cfg.SyncInterval()
	f.mu.Lock()
	blob, rev := f.pending, f.pendingRev
	if rev == 0 || rev == f.seen || (rev == f.failed && time.Since(f.lastAttempt) < interval) {
		f.mu.Unlock()
		return
	}
	f.lastAttempt = time.Now()
	f.mu.Unlock()
	start := time.Now()
	cs, err := lsync.Decode(blob)
	var rep lsync.Report
	if err == nil {
		rep, err = lsync.Apply(f.dataDir, cs, lsync.ApplyOptions{Paths: cfg.SyncPaths, Strict: cfg.SyncStrict, PreserveTimestamps: cfg.PreserveTimestamps})
	}
	if err != nil {
		f.mu.Lock()
		f.failed = rev // retried at the interval: a config change may fix it
		f.mu.Unlock()
		f.log.Error(err, "Applying synced files failed", "revision", rev)
		return
	}
	f.mu.Lock()
	f.seen = rev
	if rep.Complete() {
		f.applied = rev
	}
	ask := !rep.Complete() && !cs.Full && f.requested != rev
	if ask {
		f.requested = rev
	}
	f.mu.Unlock()
	f.log.V(1).Info("Applied synced files", "revision", rev, "full", cs.Full, "written", len(rep.Written),
		"touched", len(rep.Touched), "removed", len(rep.Removed), "stale", len(rep.Stale), "took", time.Since(start).String())
	if ask {
		// Missed a cycle, or files changed here: ask the main for all.
		if err := f.patch(ctx, map[string][]byte{keyFilesResync: []byte(strconv.FormatInt(rev, 10))}, ""); err != nil {
			f.mu.Lock()
			f.requested = 0
			f.mu.Unlock()
			f.log.Error(err, "Asking the main for a full file sync failed")
		}
	} else if !rep.Complete() {
		f.log.Error(fmt.Errorf("%d files still differ from the main's after a full cycle", len(rep.Stale)), "Synced files incomplete", "first", rep.Stale[0])
	}
}

// patch merges keys into the state Secret without touching the others and,
// unless rv is set, without a resourceVersion precondition, so it never
// conflicts with the server state's writer.
func (f *fileSync) patch(ctx context.Context, data map[string][]byte, rv string) error {
	patch := map[string]any{"data": data}
	if rv != "" {
		patch["metadata"] = map[string]any{"resourceVersion": rv}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	_, err = f.cs.CoreV1().Secrets(f.namespace).Patch(ctx, f.secret, types.MergePatchType, body, metav1.PatchOptions{FieldManager: group.FieldManagerAgent})
	if err != nil {
		return fmt.Errorf("writing synced files to Secret %s: %w", f.secret, err)
	}
	return nil
}

// setPublisher records whether this member publishes now and returns it.
// A member that starts publishing sends everything first; one that stops
// does not apply its own last change set again.
func (f *fileSync) setPublisher(pub bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pub && !f.publisher {
		f.last, f.lastBlob = nil, nil
	}
	if !pub && f.publisher && f.lastRev != 0 {
		f.seen = max(f.seen, f.lastRev)
		f.applied = max(f.applied, f.lastRev)
	}
	f.publisher = pub
	return pub
}

// catchUp applies the newest published revision, read afresh, before this
// member's processes start serving (a triad member taking over; a pair's
// backup). Bounded: with the API out of reach the member serves with what
// it holds.
func (f *fileSync) catchUp(ctx context.Context) {
	if _, ok := f.active(); !ok || f.fixedPublisher() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	sec, err := f.cs.CoreV1().Secrets(f.namespace).Get(ctx, f.secret, metav1.GetOptions{})
	if err != nil {
		f.log.Info("Taking over without reading the newest synced files", "error", err.Error())
		return
	}
	f.observe(sec)
	f.backupCycle(ctx)
}

// final publishes, once more, what a member's server wrote until it
// stopped serving (its processes stopped on a fence, before the fence is
// confirmed), unless another member has published since (then its files
// are no longer the newest). An ActiveActive pair's main publishes on its
// own schedule.
func (f *fileSync) final(ctx context.Context) {
	cfg, ok := f.active()
	if !ok || f.mainPublishes() {
		return
	}
	f.mu.Lock()
	last, rev := f.last, f.lastRev
	f.mu.Unlock()
	if rev == 0 || last == nil {
		return // this member has not published
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSyncTimeout)
	defer cancel()
	f.cycle.Lock()
	defer f.cycle.Unlock()
	for attempt := 0; ; attempt++ {
		sec, err := f.cs.CoreV1().Secrets(f.namespace).Get(ctx, f.secret, metav1.GetOptions{})
		if err != nil {
			f.log.Error(err, "Final file sync skipped: the state Secret cannot be read")
			return
		}
		if cur, _ := strconv.ParseInt(string(sec.Data[keyFilesRevision]), 10, 64); cur != rev {
			f.log.Info("Final file sync skipped: another member has published since", "revision", cur, "own", rev)
			return
		}
		f.observe(sec)
		err = f.publish(ctx, cfg, last, sec.ResourceVersion)
		if err == nil || !apierrors.IsConflict(errors.Unwrap(err)) || attempt == 2 {
			if err != nil {
				f.log.Error(err, "Final file sync failed")
			}
			return
		}
	}
}
