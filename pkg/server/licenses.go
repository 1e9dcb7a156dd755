package server

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/licenseha/licenseha/pkg/licensing"
)

// ReloadLicenses re-reads the licence directory and verifies every file
// against the trusted keys, the group and the current time. Refused files are
// kept in the inventory with their reason; the server keeps running. Checkouts
// of licences that went away stay until they are released or expire, but no
// new seat is granted on them.
func (s *Server) ReloadLicenses() []LicenseStatus {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	now := s.now()
	inv, valid := s.readLicenseDir(now)

	s.mu.Lock()
	prev := s.inventory
	changed := !reflect.DeepEqual(inv, prev)
	s.inventory, s.licenses = inv, valid
	out := s.licenseStatusLocked()
	s.mu.Unlock()

	if changed {
		s.logInventory(prev, inv)
		if err := s.store.write(write{licenses: inv}); err != nil {
			s.log.Error("Failed to record the licence inventory", "err", err)
		}
	}
	return out
}

func (s *Server) readLicenseDir(now time.Time) ([]LicenseStatus, map[string]*licensing.License) {
	inv := []LicenseStatus{}
	valid := map[string]*licensing.License{}
	if s.opts.LicenseDir == "" {
		return inv, valid
	}
	paths, err := filepath.Glob(filepath.Join(s.opts.LicenseDir, "*"+licensing.FileSuffix))
	if err != nil {
		s.log.Error("Failed to list the licence directory", "dir", s.opts.LicenseDir, "err", err)
		return inv, valid
	}
	files := make(map[string][]byte, len(paths))
	unreadable := map[string]string{}
	for _, path := range paths {
		name := filepath.Base(path)
		data, err := readLimited(path, licensing.MaxFileSize+1)
		if err != nil {
			unreadable[name] = fmt.Sprintf("cannot read the file: %v", err)
			continue
		}
		files[name] = data
	}
	for name, reason := range unreadable {
		inv = append(inv, LicenseStatus{File: name, Reason: reason})
	}
	for _, r := range licensing.VerifyFiles(files, s.opts.TrustedKeys, s.opts.Group, now) {
		st := LicenseStatus{File: r.Name, Valid: r.Err == nil}
		if l := r.License; l != nil {
			st.ID, st.Product, st.Edition, st.Printers = l.ID, l.Product, string(l.Edition), l.Printers
			st.NotBefore, st.NotAfter = l.NotBefore, l.NotAfter
		}
		if r.Err != nil {
			st.Reason = r.Err.Error()
		} else {
			valid[r.License.ID] = r.License
		}
		inv = append(inv, st)
	}
	sort.Slice(inv, func(i, j int) bool { return inv[i].File < inv[j].File })
	return inv, valid
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// logInventory logs refused licences whose reason changed and valid
// licences that are gone since the previous inventory (which, on start, is
// the one recorded in the store by the previous run).
func (s *Server) logInventory(prev, inv []LicenseStatus) {
	seen := map[string]string{}
	validIDs := []string{}
	present := map[string]bool{}
	for _, l := range inv {
		if l.Valid {
			present[l.ID] = true
			validIDs = append(validIDs, l.ID)
			continue
		}
		seen[l.File] = l.Reason
		if s.lastLicErrs[l.File] != l.Reason {
			s.log.Warn("Licence refused", "file", l.File, "reason", l.Reason)
		}
	}
	s.lastLicErrs = seen
	for _, l := range prev {
		if l.Valid && !present[l.ID] {
			s.log.Warn("Licence no longer available", "license", l.ID, "file", l.File)
		}
	}
	s.log.Info("Licences loaded", "valid", strings.Join(validIDs, ","), "refused", len(seen))
}

// Licenses returns every licence file found, with validity and seats in use.
func (s *Server) Licenses() []LicenseStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.licenseStatusLocked()
}

func (s *Server) licenseStatusLocked() []LicenseStatus {
	out := make([]LicenseStatus, len(s.inventory))
	copy(out, s.inventory)
	for i := range out {
		if out[i].Valid {
			out[i].InUse = s.inUse[out[i].ID]
		}
	}
	return out
}

// Status returns what GET /v1/status reports.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Role: s.effectiveRoleLocked(), Member: s.opts.Member, Group: s.opts.Group, Active: s.active, Epoch: s.epoch,
		Licenses: s.licenseStatusLocked(), Checkouts: len(s.checkouts),
	}
	if len(s.aliases) > 0 {
		st.Aliases = make(map[string]string, len(s.aliases))
		for k, v := range s.aliases {
			st.Aliases[k] = v
		}
	}
	return st
}
