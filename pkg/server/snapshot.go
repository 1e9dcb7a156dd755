package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
)

// errStaleSnapshot refuses a snapshot older than the server's state.
var errStaleSnapshot = errors.New("stale snapshot")

// Settings returns the current settings.
func (s *Server) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// SetSettings validates and applies settings, and records them durably.
// Settings larger than SettingsBudgetBytes as JSON are refused: they share
// the synced state's ConfigMap with the usage statistics.
func (s *Server) SetSettings(settings Settings) error {
	r, err := compileChecked(settings)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.applySettingsLocked(settings, r)
	s.changedLocked()
	rev := s.revision
	s.mu.Unlock()
	return s.store.write(write{settings: &settings, revision: &rev})
}

func (s *Server) applySettingsLocked(settings Settings, r *rules) {
	s.settings, s.rules = settings, r
	// Printer and client groups may have changed: recount the partitions
	// and reservations.
	s.partUse, s.resUse = map[string]map[string]int{}, map[string]map[string]int{}
	for _, c := range s.checkouts {
		c.partitions = r.partitionsOf(c.Printer)
		c.group = r.clientGroupOf(c.Client, parseAddress(c.Address))
		for _, g := range c.partitions {
			incr2(s.partUse, g, c.License)
		}
		if c.group != "" {
			incr2(s.resUse, c.group, c.License)
		}
	}
}

// SetAliases replaces the mapping of peer licence ids to local licence ids.
func (s *Server) SetAliases(aliases map[string]string) error {
	for foreign, local := range aliases {
		if foreign == "" || local == "" {
			return fieldErrorf("aliases", "licence ids must not be empty (%q → %q)", foreign, local)
		}
	}
	if aliases == nil {
		aliases = map[string]string{}
	}
	s.mu.Lock()
	s.aliases = aliases
	s.mu.Unlock()
	return s.store.write(write{aliases: aliases})
}

// Export takes a snapshot of settings, usage statistics and checkouts.
func (s *Server) Export() *Snapshot {
	s.mu.Lock()
	snap := &Snapshot{
		FormatVersion: SnapshotFormatVersion,
		Group:         s.opts.Group,
		Member:        s.opts.Member,
		Revision:      s.revision,
		Epoch:         s.epoch,
		TakenAt:       s.now().UTC(),
		Settings:      s.settings,
		Usage:         s.usage.records(),
		Checkouts:     make([]CheckoutRecord, 0, len(s.checkouts)),
	}
	for _, c := range s.checkouts {
		snap.Checkouts = append(snap.Checkouts, c.CheckoutRecord)
	}
	s.mu.Unlock()
	sort.Slice(snap.Checkouts, func(i, j int) bool { return snap.Checkouts[i].ID < snap.Checkouts[j].ID })
	return snap
}

// Import replaces settings, usage statistics and checkouts with a snapshot's.
// A snapshot from an older epoch, or from an older revision of the same
// epoch, is refused; the server takes the snapshot's revision (and its epoch
// when newer).
//
// Usage statistics another server wrote are corrected rather than refused,
// so that one bad counter cannot stop a standby from following the active
// member: negative counts become 0, duplicate rows are added together, and
// the usage limits apply (see usage.go). What was corrected is counted in
// State.Corrections and logged, as counts only.
func (s *Server) Import(snap *Snapshot) error {
	if snap.FormatVersion != SnapshotFormatVersion {
		return fieldErrorf("formatVersion", "is %d, this server reads version %d", snap.FormatVersion, SnapshotFormatVersion)
	}
	if snap.Group != s.opts.Group {
		return fieldErrorf("group", "snapshot is of group %q, this server is in group %q", snap.Group, s.opts.Group)
	}
	r, err := compileSettings(snap.Settings)
	if err != nil {
		return err
	}
	// Build the indices before taking the lock: imports of large snapshots
	// must not stall checkouts.
	checkouts := make(map[string]*checkout, len(snap.Checkouts))
	seats := make(map[seatKey]*checkout, len(snap.Checkouts))
	inUse, perClient, perSource := map[string]int{}, map[string]int{}, map[string]int{}
	records := make([]checkout, len(snap.Checkouts))
	coBytes := 0
	for i := range snap.Checkouts {
		c := &records[i]
		c.CheckoutRecord = snap.Checkouts[i]
		if c.ID == "" || c.Client == "" || c.Printer == "" || c.License == "" {
			return fieldErrorf(fmt.Sprintf("checkouts[%d]", i), "id, client, printer and license must not be empty")
		}
		k := seatKey{c.License, c.Client, c.Printer}
		if checkouts[c.ID] != nil || seats[k] != nil {
			return fieldErrorf(fmt.Sprintf("checkouts[%d]", i), "checkout %s is a duplicate", c.ID)
		}
		checkouts[c.ID], seats[k] = c, c
		inUse[c.License]++
		perClient[c.Client]++
		if c.source = sourceKey(parseAddress(c.Address)); c.source != "" {
			perSource[c.source]++
		}
		c.bytes = checkoutRowBytes(&c.CheckoutRecord)
		coBytes += c.bytes
	}
	var corr Corrections
	s.mu.Lock()
	lim := s.usage.lim
	s.mu.Unlock()
	usage := newUsageTable(lim, &corr, nil)
	fallback := snap.TakenAt
	if fallback.IsZero() {
		fallback = s.now()
	}
	usage.load(snap.Usage, fallback)

	s.mu.Lock()
	if snap.Epoch < s.epoch || (snap.Epoch == s.epoch && snap.Revision < s.revision) {
		epoch, rev := s.epoch, s.revision
		s.mu.Unlock()
		return fmt.Errorf("%w: snapshot is at epoch %d revision %d, the server at epoch %d revision %d",
			errStaleSnapshot, snap.Epoch, snap.Revision, epoch, rev)
	}
	s.checkouts, s.seats, s.inUse, s.perClient, s.perSource = checkouts, seats, inUse, perClient, perSource
	s.coBytes, s.coMeasure = coBytes, measurement{}
	s.coChanges++
	s.coImports++
	// Write synchronously only what changed and matters for safety (the
	// epoch) or is rarely written (settings); usage and the revision follow
	// with the next flush. A steady group's periodic sync then costs no disk
	// write on the standbys.
	var w write
	if !reflect.DeepEqual(s.settings, snap.Settings) {
		w.settings = &snap.Settings
	}
	if snap.Epoch != s.epoch {
		w.epoch = &snap.Epoch
	}
	s.applySettingsLocked(snap.Settings, r)
	usage.corr, usage.log = &s.corr, s.log
	s.usage, s.usageDirty, s.metaDirty = usage, true, true
	before := s.corr
	s.corr.add(corr)
	after := s.corr
	s.epoch, s.revision = snap.Epoch, snap.Revision
	s.mu.Unlock()
	if corr != (Corrections{}) {
		s.logCorrections("Corrected imported usage statistics", before, after)
	}
	if w.settings == nil && w.epoch == nil {
		return nil
	}
	return s.store.write(w)
}

// add adds the counts of o.
func (c *Corrections) add(o Corrections) {
	c.SaturatedCounts += o.SaturatedCounts
	c.ClampedCounts += o.ClampedCounts
	c.MergedUsageRows += o.MergedUsageRows
	c.OverflowUsage += o.OverflowUsage
	c.UncountedUsage += o.UncountedUsage
	c.FoldedUsageRows += o.FoldedUsageRows
	c.DroppedUsageRows += o.DroppedUsageRows
}

// compileChecked validates settings, their size included, and compiles them.
func compileChecked(settings Settings) (*rules, error) {
	r, err := compileSettings(settings)
	if err != nil {
		return nil, err
	}
	if raw, err := json.Marshal(settings); err != nil {
		return nil, err
	} else if len(raw) > SettingsBudgetBytes {
		return nil, fieldErrorf("settings", "take %d bytes as JSON, at most %d are allowed (they are synchronised with the usage statistics in one Kubernetes object)",
			len(raw), SettingsBudgetBytes)
	}
	return r, nil
}

// ValidateSettings checks settings as PUT /admin/v1/settings does. The
// error names the field at fault ("settings.access.allowAddresses: ...");
// FieldOf returns that field.
func ValidateSettings(settings Settings) error {
	_, err := compileChecked(settings)
	return err
}

// FieldOf returns the settings or request field an error of this package
// names, or "".
func FieldOf(err error) string {
	var f *fieldError
	if errors.As(err, &f) {
		return f.field
	}
	return ""
}

// SettingsHash identifies the content of settings: the hex SHA-256 of their
// JSON (map keys sorted, empty lists and maps left out), so equal settings
// hash equally whichever way they were written.
func SettingsHash(settings Settings) string {
	raw, _ := json.Marshal(settings)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
