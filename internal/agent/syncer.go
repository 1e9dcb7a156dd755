package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
)

// syncer moves the license server's state between members through the
// ConfigMap and Secret <group>-state: the active member publishes, the
// others apply. Writes carry the writer's fencing epoch, and a member never
// overwrites state published under a newer epoch, so a deposed active
// cannot roll the group back.
type syncer struct {
	log       logr.Logger
	cs        kubernetes.Interface
	namespace string
	group     string
	admin     *server.AdminClient
	// debounce is the least time between two publications.
	debounce time.Duration
	// settingsOnly applies only the settings of the published state (backup
	// pairs: usage statistics and checkouts stay per server).
	settingsOnly bool

	mu        sync.Mutex
	cm        *corev1.ConfigMap
	secret    *corev1.Secret
	published uint64
	lastPub   time.Time
	applied   uint64
	lastApply time.Time
	// appliedTakenAt is the takenAt of the publication last applied: a
	// pair's backup applies the main's settings again when the main
	// publishes anew (a returning main publishes at start), even at the
	// same revision, so that a change made on the backup meanwhile (during
	// a failover) is overwritten by the main's settings.
	appliedTakenAt string
	// applies counts the publications applied to the local server.
	applies uint64
}

// appliedCount is how many publications this member applied so far.
func (s *syncer) appliedCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

// revisions returns the revisions last published and applied.
func (s *syncer) revisions() (published, applied uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published, s.applied
}

// lastChange is when state was last published or applied.
func (s *syncer) lastChange() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastApply.After(s.lastPub) {
		return s.lastApply
	}
	return s.lastPub
}

// observe records the latest state objects from the watches.
func (s *syncer) observeConfigMap(cm *corev1.ConfigMap) {
	s.mu.Lock()
	s.cm = cm.DeepCopy()
	s.mu.Unlock()
}

func (s *syncer) observeSecret(sec *corev1.Secret) {
	s.mu.Lock()
	s.secret = sec.DeepCopy()
	s.mu.Unlock()
}

// Revision returns the newest revision this member published or applied.
func (s *syncer) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.published, s.applied)
}

// publish exports the server's state and writes it when it changed since the
// last publication and the debounce time has passed. epoch is the member's
// serving epoch.
func (s *syncer) publish(ctx context.Context, st *server.State, epoch uint64) error {
	s.mu.Lock()
	cm, sec := s.cm, s.secret
	due := st.Revision > s.published && time.Since(s.lastPub) >= s.debounce
	s.mu.Unlock()
	if !due || cm == nil || sec == nil {
		return nil
	}
	if _, stored := stateRevision(cm); stored > epoch {
		return fmt.Errorf("state was published under epoch %d, newer than ours (%d); not overwriting", stored, epoch)
	}
	snap, err := s.admin.Export(ctx)
	if err != nil {
		return fmt.Errorf("exporting state: %w", err)
	}
	snap.Epoch = max(snap.Epoch, epoch)
	enc, err := encodeState(snap)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	// Secret first: a reader decodes only when both halves carry the same
	// revision, so it never applies settings without their checkouts.
	newSec := sec.DeepCopy()
	// The pair's file sync keeps its own keys (files*) in the same Secret.
	for k, v := range sec.Data {
		if strings.HasPrefix(k, "files") {
			enc.SecretData[k] = v
		}
	}
	newSec.Data = enc.SecretData
	updSec, err := s.cs.CoreV1().Secrets(s.namespace).Update(ctx, newSec, metav1.UpdateOptions{FieldManager: group.FieldManagerAgent})
	if err != nil {
		return fmt.Errorf("writing synced state Secret: %w", err)
	}
	newCM := cm.DeepCopy()
	// A pair's backup publishes its own usage statistics (backup*); they
	// are kept while everything fits the object, the main's state first.
	if binarySize(enc.BinaryData)+binarySize(backupBinary(cm.BinaryData)) <= maxStateBytes {
		keepBackupKeys(cm.Data, enc.Data)
		keepBackupKeys(cm.BinaryData, enc.BinaryData)
	} else {
		s.log.V(1).Info("Dropping the backup's usage statistics from the state ConfigMap: they no longer fit beside the main's state")
	}
	newCM.Data, newCM.BinaryData = enc.Data, enc.BinaryData
	updCM, err := s.cs.CoreV1().ConfigMaps(s.namespace).Update(ctx, newCM, metav1.UpdateOptions{FieldManager: group.FieldManagerAgent})
	if err != nil {
		return fmt.Errorf("writing synced state ConfigMap: %w", err)
	}
	s.mu.Lock()
	s.cm, s.secret = updCM, updSec
	s.published, s.lastPub = snap.Revision, time.Now()
	s.mu.Unlock()
	s.log.V(1).Info("Published state", "revision", snap.Revision, "epoch", snap.Epoch)
	return nil
}

// apply imports the published state into the local server when it is newer
// than what the server holds.
func (s *syncer) apply(ctx context.Context, st *server.State) error {
	s.mu.Lock()
	cm, sec := s.cm, s.secret
	s.mu.Unlock()
	if cm == nil || sec == nil {
		return nil
	}
	rev, _ := stateRevision(cm)
	takenAt := cm.Data[keyTakenAt]
	s.mu.Lock()
	applied, appliedTakenAt := s.applied, s.appliedTakenAt
	s.mu.Unlock()
	// A triad member compares with its server's revision (imports carry
	// it); a pair's backup only with what it applied, its own revisions
	// counting its own usage, and with the publication's time.
	if rev == 0 || (!s.settingsOnly && rev <= st.Revision) || (s.settingsOnly && rev <= applied && takenAt == appliedTakenAt) {
		return nil
	}
	snap, err := decodeState(s.namespace+"/"+s.group, cm, sec)
	if err != nil || snap == nil {
		return err
	}
	if s.settingsOnly {
		if err := s.admin.SetSettings(ctx, snap.Settings); err != nil {
			return fmt.Errorf("applying synced settings revision %d: %w", rev, err)
		}
	} else if _, err := s.admin.Import(ctx, snap); err != nil {
		if server.IsCode(err, server.CodeStaleSnapshot) {
			return nil
		}
		return fmt.Errorf("applying synced state revision %d: %w", rev, err)
	}
	s.mu.Lock()
	s.applied, s.lastApply, s.appliedTakenAt = max(rev, s.applied), time.Now(), takenAt
	s.applies++
	s.mu.Unlock()
	s.log.V(1).Info("Applied state", "revision", rev)
	return nil
}
