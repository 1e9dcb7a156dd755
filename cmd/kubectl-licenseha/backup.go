package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/bundle"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

// Keys of the synced-state objects <pair>-state, as the members' agents
// write and read them (internal/agent/statesync.go).
const (
	stateKeyRevision  = "revision"
	stateKeyEpoch     = "epoch"
	stateKeyMember    = "member"
	stateKeyTakenAt   = "takenAt"
	stateKeyFormat    = "formatVersion"
	stateKeySettings  = "settings.json.gz"
	stateKeyUsage     = "usage.json.gz"
	stateKeyCheckouts = "checkouts.json.gz"
)

// Annotations `backup import` records on the target pair's <pair>-state
// ConfigMap.
const (
	// AnnotationImportedRevision is the revision of the last imported
	// bundle; an import of a bundle with a revision at or below it is refused.
	AnnotationImportedRevision = group.AnnotationImportedBundleRevision
	// AnnotationImportedFrom is the pair (<namespace>/<name>) the last
	// imported bundle was exported from.
	AnnotationImportedFrom = "licenseha.io/imported-bundle-source"
	// AnnotationImportedCreatedAt is when the last imported bundle was made.
	AnnotationImportedCreatedAt = "licenseha.io/imported-bundle-created-at"
	// AnnotationImportedKeyID names the key the last imported bundle was
	// signed with.
	AnnotationImportedKeyID = "licenseha.io/imported-bundle-key-id"
	// AnnotationImportedAt is when the last bundle was imported.
	AnnotationImportedAt = "licenseha.io/imported-at"
)

// Annotations `backup export` records on the source pair's <pair>-state
// ConfigMap.
const (
	// AnnotationExportedRevision is the settings revision of the last
	// exported bundle: the operator reports a disconnected pair's main as
	// synchronized while the main runs no newer settings.
	AnnotationExportedRevision = group.AnnotationExportedBundleRevision
	// AnnotationExportedAt is when the last bundle was exported.
	AnnotationExportedAt = "licenseha.io/exported-at"
)

const fieldManager = group.FieldManagerPlugin

func newBackupCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Carry a backup pair's settings from the main to a disconnected backup as a signed bundle",
		Long: `For backup pairs whose main and backup run in clusters that cannot reach each other:
"export" writes the main's published settings into a signed, versioned bundle file; "import" verifies
the bundle and applies it to the backup, refusing tampered or outdated bundles; "keygen" creates the
ed25519 key pair that signs and verifies bundles.`,
	}
	cmd.AddCommand(newBackupKeygenCmd(o), newBackupExportCmd(o), newBackupImportCmd(o))
	return cmd
}

func newBackupKeygenCmd(o *Options) *cobra.Command {
	return keygenCmd(o, "Create an ed25519 key pair for signing (export) and verifying (import) settings bundles",
		"bundle-signing", "signing key", "Bundle key %s: signing key in %s (for export, keep it secret), public key in %s (for import)\n")
}

func newBackupExportCmd(o *Options) *cobra.Command {
	var out, keyPath string
	cmd := &cobra.Command{
		Use:   "export PAIR -o FILE --signing-key KEY.pem",
		Short: "Write the main's published settings of a backup pair into a signed bundle",
		Long: `Read the settings the main last published into the pair's ConfigMap <pair>-state, write them into a
bundle signed with the given key, and record the exported revision in the annotation
licenseha.io/exported-bundle-revision of that ConfigMap: the status of a disconnected pair
(spec.disconnected.localSide main) compares it with the main's settings revision. A pair whose
backup runs in this cluster (spec.disconnected.localSide backup) is refused.`,
		Example: `  kubectl licenseha backup export plant-b -o plant-b-settings.json --signing-key bundle-signing.key
  kubectl licenseha backup export plant-b -o - --signing-key bundle-signing.key > bundle.json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, false, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			priv, err := readKeyFlag("--signing-key", keyPath, licensing.ParsePrivateKey)
			if err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			k, err := o.pairKube(ctx, name, licensehav1.SideMain)
			if err != nil {
				return err
			}
			b, err := k.exportBundle(ctx, name, time.Now())
			if err != nil {
				return err
			}
			if err := b.Sign(priv); err != nil {
				return err
			}
			data, err := b.Marshal()
			if err != nil {
				return err
			}
			if out == "-" {
				if _, err = o.Out.Write(data); err != nil {
					return err
				}
			} else {
				if err := os.WriteFile(out, data, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(o.ErrOut, "Exported settings revision %d of %s (signed with key %s) to %s\n", b.Revision, b.Pair, b.Signature.KeyID, out)
			}
			if err := k.recordExport(ctx, name, b.Revision, time.Now()); err != nil {
				// The bundle is good; only the pair's status cannot tell
				// that it was exported.
				fmt.Fprintf(o.ErrOut, "Warning: could not record the export on ConfigMap %s/%s (%v); the bundle is valid, but the pair's status does not count it as exported\n",
					k.ns, group.StateName(name), err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", `bundle file to write ("-" for standard output) (required)`)
	cmd.Flags().StringVar(&keyPath, "signing-key", "", "PEM file with the ed25519 signing key, from backup keygen (required)")
	_ = cmd.MarkFlagRequired("output")
	_ = cmd.MarkFlagRequired("signing-key")
	_ = cmd.MarkFlagFilename("signing-key", "key", "pem")
	return cmd
}

// exportBundle builds an unsigned bundle from the pair's state ConfigMap.
func (k *kube) exportBundle(ctx context.Context, name string, now time.Time) (*bundle.Bundle, error) {
	var cm corev1.ConfigMap
	cmName := group.StateName(name)
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: cmName}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("ConfigMap %s/%s not found: the operator creates it and the main publishes its settings there; is the pair's main running in this cluster?", k.ns, cmName)
		}
		return nil, err
	}
	rev, _ := strconv.ParseUint(cm.Data[stateKeyRevision], 10, 64)
	if rev == 0 {
		return nil, fmt.Errorf("the main of %s/%s has not published its settings yet (ConfigMap %s has no revision); wait until it runs and try again", k.ns, name, cmName)
	}
	if member := cm.Data[stateKeyMember]; member != "" && member != "main" {
		return nil, fmt.Errorf("ConfigMap %s/%s holds settings published by %q, not by the main; export from the main's cluster", k.ns, cmName, member)
	}
	epoch, _ := strconv.ParseUint(cm.Data[stateKeyEpoch], 10, 64)
	takenAt, _ := time.Parse(time.RFC3339Nano, cm.Data[stateKeyTakenAt])
	settings, err := gunzip(cm.BinaryData[stateKeySettings])
	if err != nil {
		return nil, fmt.Errorf("reading %s of ConfigMap %s/%s: %w", stateKeySettings, k.ns, cmName, err)
	}
	return bundle.New(k.ns+"/"+name, rev, epoch, takenAt, settings, now)
}

// recordExport notes the exported revision on the pair's state ConfigMap,
// where the operator reads it for a disconnected pair's status. A newer
// revision already recorded is kept.
func (k *kube) recordExport(ctx context.Context, name string, rev uint64, now time.Time) error {
	return writeRetry(func() error {
		var cm corev1.ConfigMap
		if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: group.StateName(name)}, &cm); err != nil {
			return err
		}
		if prev, _ := strconv.ParseUint(cm.Annotations[AnnotationExportedRevision], 10, 64); prev >= rev {
			return nil
		}
		orig := cm.DeepCopy()
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[AnnotationExportedRevision] = strconv.FormatUint(rev, 10)
		cm.Annotations[AnnotationExportedAt] = now.UTC().Format(time.RFC3339)
		return k.c.Patch(ctx, &cm, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldManager))
	})
}

func newBackupImportCmd(o *Options) *cobra.Command {
	var in, keysPath string
	var anyPair bool
	cmd := &cobra.Command{
		Use:   "import PAIR -f FILE --trusted-key PUB.pem",
		Short: "Verify a signed settings bundle and apply it to a backup pair's backup",
		Long: `Verify the bundle's signature against the trusted public key(s), refuse a tampered bundle, one
exported for another pair, or one not newer than what the backup already applied, then write the
settings into the pair's ConfigMap <pair>-state (and its Secret's revision) the way the main's agent
publishes them, so the backup's agent applies them. The imported revision is recorded in the
annotation licenseha.io/imported-bundle-revision of the ConfigMap. A pair whose main runs in this
cluster (spec.disconnected.localSide main) is refused.`,
		Example:           `  kubectl licenseha backup import plant-b -f plant-b-settings.json --trusted-key bundle-signing.pub`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, false, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if in == "-" {
				data, err = io.ReadAll(io.LimitReader(o.In, bundle.MaxSize+1))
			} else {
				data, err = os.ReadFile(in)
			}
			if err != nil {
				return fmt.Errorf("reading the bundle: %w", err)
			}
			ring, err := readKeyFlag("--trusted-key", keysPath, licensing.ParseTrustedKeys)
			if err != nil {
				return err
			}
			b, err := bundle.ParseAndVerify(data, ring)
			if err != nil {
				return fmt.Errorf("refusing %s: %w", in, err)
			}
			ctx, name := cmd.Context(), args[0]
			k, err := o.pairKube(ctx, name, licensehav1.SideBackup)
			if err != nil {
				return err
			}
			if !anyPair {
				if err := b.CheckPair(k.ns + "/" + name); err != nil {
					return fmt.Errorf("refusing %s: %w (pass --allow-other-pair if that is intended)", in, err)
				}
			}
			prev, err := k.importBundle(ctx, name, b, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "Imported settings revision %d of %s (created %s, key %s) into %s/%s (previous revision %d); the backup's agent applies them\n",
				b.Revision, b.Pair, b.CreatedAt.Format(time.RFC3339), b.Signature.KeyID, k.ns, group.StateName(name), prev)
			return nil
		},
	}
	cmd.Flags().StringVarP(&in, "filename", "f", "", `bundle file to import ("-" for standard input) (required)`)
	cmd.Flags().StringVar(&keysPath, "trusted-key", "", "PEM file with the trusted public key(s), from backup keygen (required)")
	cmd.Flags().BoolVar(&anyPair, "allow-other-pair", false, "accept a bundle exported from a pair of another namespace or name")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("trusted-key")
	_ = cmd.MarkFlagFilename("filename", "json")
	_ = cmd.MarkFlagFilename("trusted-key", "pub", "pem")
	return cmd
}

// appliedRevision is the newest settings revision the backup holds: the
// last imported bundle's or the state ConfigMap's, whichever is higher.
func appliedRevision(cm *corev1.ConfigMap) uint64 {
	imported, _ := strconv.ParseUint(cm.Annotations[AnnotationImportedRevision], 10, 64)
	published, _ := strconv.ParseUint(cm.Data[stateKeyRevision], 10, 64)
	return max(imported, published)
}

// importBundle writes a verified bundle into the pair's state objects, the
// Secret first (the agents decode only when both carry the same revision),
// and returns the revision it replaced.
func (k *kube) importBundle(ctx context.Context, name string, b *bundle.Bundle, now time.Time) (uint64, error) {
	var settings server.Settings
	if err := json.Unmarshal(b.Settings, &settings); err != nil {
		return 0, fmt.Errorf("the bundle's settings are not license server settings: %w", err)
	}
	stateName := group.StateName(name)
	var prev uint64
	var stop error
	err := writeRetry(func() error {
		var err error
		prev, err = k.importOnce(ctx, stateName, b, now)
		if err != nil && !apierrors.IsConflict(err) {
			stop = err
		}
		return err
	})
	if stop != nil {
		return prev, stop
	}
	if err != nil {
		return prev, fmt.Errorf("writing %s/%s: %w", k.ns, stateName, err)
	}
	return prev, nil
}

// importOnce is one attempt of importBundle: read both state objects, check
// the revision, write the Secret then the ConfigMap, each patch carrying the
// resourceVersion read. A conflict is returned as is (the caller retries
// the whole attempt on fresh objects); other errors are final.
func (k *kube) importOnce(ctx context.Context, stateName string, b *bundle.Bundle, now time.Time) (uint64, error) {
	var cm corev1.ConfigMap
	var sec corev1.Secret
	for kind, obj := range map[string]client.Object{"ConfigMap": &cm, "Secret": &sec} {
		if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: stateName}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return 0, fmt.Errorf("%s %s/%s not found: the operator creates it when it reconciles the pair; check kubectl get lbackup -n %s", kind, k.ns, stateName, k.ns)
			}
			return 0, err
		}
	}
	prev := appliedRevision(&cm)
	if err := b.CheckNewer(prev); err != nil {
		return prev, fmt.Errorf("refusing the bundle: %w (imported: %s); export a fresh bundle from the main",
			err, orDash(cm.Annotations[AnnotationImportedCreatedAt]))
	}
	settingsGz, err := gzipBytes(append(append([]byte{}, b.Settings...), '\n'))
	if err != nil {
		return prev, err
	}
	empty, err := gzipBytes([]byte("[]\n"))
	if err != nil {
		return prev, err
	}
	rev := strconv.FormatUint(b.Revision, 10)

	origSec := sec.DeepCopy()
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[stateKeyRevision] = []byte(rev)
	if _, err := gunzip(sec.Data[stateKeyCheckouts]); err != nil {
		sec.Data[stateKeyCheckouts] = empty // a backup keeps its own checkouts
	}
	hookBeforeWrite(&sec)
	if err := k.c.Patch(ctx, &sec, client.MergeFromWithOptions(origSec, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldManager)); err != nil {
		if apierrors.IsConflict(err) {
			return prev, err
		}
		return prev, fmt.Errorf("writing Secret %s/%s: %w", k.ns, stateName, err)
	}

	origCM := cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	if cm.BinaryData == nil {
		cm.BinaryData = map[string][]byte{}
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	takenAt := b.TakenAt
	if takenAt.IsZero() {
		takenAt = b.CreatedAt
	}
	cm.Data[stateKeyRevision] = rev
	cm.Data[stateKeyEpoch] = strconv.FormatUint(b.Epoch, 10)
	cm.Data[stateKeyMember] = "main"
	cm.Data[stateKeyTakenAt] = takenAt.UTC().Format(time.RFC3339Nano)
	cm.Data[stateKeyFormat] = strconv.Itoa(server.SnapshotFormatVersion)
	cm.BinaryData[stateKeySettings] = settingsGz
	if _, err := gunzip(cm.BinaryData[stateKeyUsage]); err != nil {
		cm.BinaryData[stateKeyUsage] = empty // a backup keeps its own usage statistics
	}
	cm.Annotations[AnnotationImportedRevision] = rev
	cm.Annotations[AnnotationImportedFrom] = b.Pair
	cm.Annotations[AnnotationImportedCreatedAt] = b.CreatedAt.UTC().Format(time.RFC3339)
	cm.Annotations[AnnotationImportedKeyID] = b.Signature.KeyID
	cm.Annotations[AnnotationImportedAt] = now.UTC().Format(time.RFC3339)
	hookBeforeWrite(&cm)
	if err := k.c.Patch(ctx, &cm, client.MergeFromWithOptions(origCM, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldManager)); err != nil {
		if apierrors.IsConflict(err) {
			// The Secret already carries the revision; the retry reads
			// both again (the ConfigMap still holds the older revision, so
			// the bundle is still newer) and writes the ConfigMap.
			return prev, err
		}
		return prev, fmt.Errorf("writing ConfigMap %s/%s (its Secret already carries revision %s; run the import again): %w", k.ns, stateName, rev, err)
	}
	return prev, nil
}

func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gunzip(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, errors.New("empty")
	}
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, bundle.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(out) > bundle.MaxSize {
		return nil, fmt.Errorf("larger than %d MiB uncompressed", bundle.MaxSize>>20)
	}
	return out, nil
}

// readKeyFlag reads and parses the key file a flag names; errors name the
// flag and the file.
func readKeyFlag[T any](flag, path string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", flag, err)
	}
	key, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return key, nil
}

// pairKube connects to the cluster and checks that the backup pair exists
// and, when it is disconnected, that the side the command works on (need:
// main for export, backup for import) runs in this cluster.
func (o *Options) pairKube(ctx context.Context, name string, need licensehav1.PairSide) (*kube, error) {
	k, err := o.kube()
	if err != nil {
		return nil, err
	}
	p, err := k.pair(ctx, name)
	if err != nil {
		return nil, err
	}
	if d := p.Spec.Disconnected; d != nil && d.LocalSide != need {
		verb := map[licensehav1.PairSide]string{licensehav1.SideMain: "export", licensehav1.SideBackup: "import"}[need]
		return nil, fmt.Errorf("pair %s/%s runs its %s in this cluster (spec.disconnected.localSide), not its %s: %s in the cluster where the %s runs",
			k.ns, name, d.LocalSide, need, verb, need)
	}
	return k, nil
}
