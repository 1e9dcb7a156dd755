package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// Usage statistics leave a member two ways, both in aggregate or bounded:
//
//   - Metrics: the members whose statistics are authoritative (a triad's
//     active member, both servers of a pair) export the current month's
//     totals per licence — never per printer or client, so the series stay
//     as few as the licences.
//   - A pair's backup keeps its own statistics (its server counts its own
//     checkouts); it publishes them to the state ConfigMap under the keys
//     backupUsage*, so that they can be read without entering the pod. The
//     rows are the server's, already within its bounds (row cap per month,
//     months kept, size budget).
//
// A triad's statistics are in the synced state the active member publishes.

// usageEvery is the least time between two reads of the server's usage
// statistics (and publications of a backup's).
const usageEvery = 30 * time.Second

// Keys of a pair backup's usage statistics in the state ConfigMap. The
// main's publications keep every key starting with "backup".
const (
	KeyBackupUsage         = "backup-usage.json.gz"
	KeyBackupUsageRevision = "backupUsageRevision"
	KeyBackupUsageTakenAt  = "backupUsageTakenAt"
)

// usageState is what the loop knows of its server's usage statistics.
type usageState struct {
	rev       uint64
	at        time.Time
	exporting bool
	// published is the backup server's revision last published, valid
	// with havePublished.
	published     uint64
	havePublished bool
}

// usageTotals sums the rows of period per licence: checkouts, jobs, labels.
func usageTotals(rows []server.UsageRecord, period string) map[string][3]int64 {
	out := map[string][3]int64{}
	for _, u := range rows {
		if u.Period != period {
			continue
		}
		t := out[u.License]
		t[0] = satAdd(t[0], int64(u.Checkouts))
		t[1] = satAdd(t[1], int64(u.Jobs))
		t[2] = satAdd(t[2], int64(u.Labels))
		out[u.License] = t
	}
	return out
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

// exportsUsage says whether this member's statistics are authoritative.
func (a *Agent) exportsUsage(want desired, st *server.State) bool {
	return a.opts.GroupKind == group.KindBackupPair || a.publishes(want, st)
}

// syncUsage refreshes the usage metrics and, on a pair's backup, publishes
// the statistics, at most every usageEvery and only when the server's
// revision moved.
func (a *Agent) syncUsage(ctx context.Context, want desired, st *server.State, now time.Time) {
	us := &a.usage
	if !a.exportsUsage(want, st) {
		if us.exporting {
			a.metrics.resetUsage()
			us.exporting, us.rev = false, 0
		}
		return
	}
	if (us.exporting && st.Revision == us.rev) || now.Sub(us.at) < usageEvery {
		return
	}
	rows, err := a.admin.Usage(ctx)
	if err != nil {
		a.log.V(1).Info("Reading usage statistics failed; will retry", "error", err.Error())
		return
	}
	us.at, us.rev, us.exporting = now, st.Revision, true
	a.metrics.setUsage(usageTotals(rows, now.UTC().Format("2006-01")))
	if a.opts.GroupKind == group.KindBackupPair && a.opts.Member == "backup" && (!us.havePublished || st.Revision != us.published) {
		if err := a.sync.publishBackupUsage(ctx, rows, st.Revision, now); err != nil {
			a.log.V(1).Info("Publishing the backup's usage statistics failed; will retry", "error", err.Error())
			us.at = time.Time{}
			return
		}
		us.published, us.havePublished = st.Revision, true
	}
}

// publishBackupUsage writes a pair backup's usage statistics into the state
// ConfigMap, keeping the main's keys.
func (s *syncer) publishBackupUsage(ctx context.Context, rows []server.UsageRecord, rev uint64, now time.Time) error {
	s.mu.Lock()
	cm := s.cm
	s.mu.Unlock()
	if cm == nil {
		return fmt.Errorf("state ConfigMap not seen yet")
	}
	data, err := gz(rows)
	if err != nil {
		return err
	}
	// The main's state has priority: the backup's statistics go in only
	// where they fit beside it.
	main := binarySize(cm.BinaryData) - binarySize(backupBinary(cm.BinaryData))
	if main+len(data) > maxStateBytes {
		return ErrStateTooLarge
	}
	upd := cm.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string]string{}
	}
	if upd.BinaryData == nil {
		upd.BinaryData = map[string][]byte{}
	}
	upd.Data[KeyBackupUsageRevision] = strconv.FormatUint(rev, 10)
	upd.Data[KeyBackupUsageTakenAt] = now.UTC().Format(time.RFC3339)
	upd.BinaryData[KeyBackupUsage] = data
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	out, err := s.cs.CoreV1().ConfigMaps(s.namespace).Update(ctx, upd, metav1.UpdateOptions{FieldManager: group.FieldManagerAgent})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cm = out
	s.mu.Unlock()
	return nil
}

// binarySize is the bytes of binary data.
func binarySize(m map[string][]byte) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// backupBinary is the binary data a pair's backup wrote (backup*).
func backupBinary(m map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	keepBackupKeys(m, out)
	return out
}

// keepBackupKeys copies the keys a pair's backup writes (backup*) from the
// current ConfigMap data into the main's new data.
func keepBackupKeys[V any](from, into map[string]V) {
	for k, v := range from {
		if strings.HasPrefix(k, "backup") {
			into[k] = v
		}
	}
}
