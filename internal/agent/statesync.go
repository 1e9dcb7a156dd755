package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/licenseha/licenseha/pkg/server"
)

// Keys of the synced-state objects <group>-state. Settings and usage go to
// the ConfigMap; checkouts name users and printers, so they go to the Secret.
// Everything is gzip-compressed: Kubernetes objects hold at most 1 MiB.
const (
	keyRevision  = "revision"
	keyEpoch     = "epoch"
	keyMember    = "member"
	keyTakenAt   = "takenAt"
	keyFormat    = "formatVersion"
	keySettings  = "settings.json.gz"
	keyUsage     = "usage.json.gz"
	keyCheckouts = "checkouts.json.gz"

	// maxStateBytes leaves room below the 1 MiB object limit for metadata.
	maxStateBytes = 900 * 1024
)

// ErrStateTooLarge is returned when a snapshot does not fit the objects.
var ErrStateTooLarge = fmt.Errorf("synced state exceeds %d KiB after compression", maxStateBytes/1024)

// encodedState is a snapshot split into the two objects' data.
type encodedState struct {
	Data       map[string]string
	BinaryData map[string][]byte
	SecretData map[string][]byte
}

func gz(v any) ([]byte, error) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gunzipJSON(data []byte, v any) error {
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// encodeState splits a snapshot into ConfigMap and Secret data.
func encodeState(s *server.Snapshot) (*encodedState, error) {
	settings, err := gz(s.Settings)
	if err != nil {
		return nil, err
	}
	usage, err := gz(s.Usage)
	if err != nil {
		return nil, err
	}
	checkouts, err := gz(s.Checkouts)
	if err != nil {
		return nil, err
	}
	if len(settings)+len(usage) > maxStateBytes || len(checkouts) > maxStateBytes {
		return nil, ErrStateTooLarge
	}
	return &encodedState{
		Data: map[string]string{
			keyRevision: strconv.FormatUint(s.Revision, 10),
			keyEpoch:    strconv.FormatUint(s.Epoch, 10),
			keyMember:   s.Member,
			keyTakenAt:  s.TakenAt.UTC().Format(time.RFC3339Nano),
			keyFormat:   strconv.Itoa(s.FormatVersion),
		},
		BinaryData: map[string][]byte{keySettings: settings, keyUsage: usage},
		SecretData: map[string][]byte{
			keyRevision:  []byte(strconv.FormatUint(s.Revision, 10)),
			keyCheckouts: checkouts,
		},
	}, nil
}

// stateRevision returns the revision and epoch recorded in the state
// ConfigMap; zero when nothing was published yet.
func stateRevision(cm *corev1.ConfigMap) (revision, epoch uint64) {
	if cm == nil {
		return 0, 0
	}
	revision, _ = strconv.ParseUint(cm.Data[keyRevision], 10, 64)
	epoch, _ = strconv.ParseUint(cm.Data[keyEpoch], 10, 64)
	return revision, epoch
}

// decodeState rebuilds a snapshot from the two objects. It refuses a pair
// whose halves were written for different revisions (a reader between the
// two writes): the next watch event brings the consistent pair.
func decodeState(group string, cm *corev1.ConfigMap, sec *corev1.Secret) (*server.Snapshot, error) {
	rev, epoch := stateRevision(cm)
	if rev == 0 {
		return nil, nil
	}
	if string(sec.Data[keyRevision]) != cm.Data[keyRevision] {
		return nil, fmt.Errorf("state ConfigMap (revision %s) and Secret (revision %s) differ; waiting for both", cm.Data[keyRevision], sec.Data[keyRevision])
	}
	format, _ := strconv.Atoi(cm.Data[keyFormat])
	taken, _ := time.Parse(time.RFC3339Nano, cm.Data[keyTakenAt])
	s := &server.Snapshot{
		FormatVersion: format,
		Group:         group,
		Member:        cm.Data[keyMember],
		Revision:      rev,
		Epoch:         epoch,
		TakenAt:       taken,
	}
	if err := gunzipJSON(cm.BinaryData[keySettings], &s.Settings); err != nil {
		return nil, fmt.Errorf("reading synced settings: %w", err)
	}
	if err := gunzipJSON(cm.BinaryData[keyUsage], &s.Usage); err != nil {
		return nil, fmt.Errorf("reading synced usage: %w", err)
	}
	if err := gunzipJSON(sec.Data[keyCheckouts], &s.Checkouts); err != nil {
		return nil, fmt.Errorf("reading synced checkouts: %w", err)
	}
	return s, nil
}
