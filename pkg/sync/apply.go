package sync

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"
)

// ApplyOptions say how a change set is applied.
type ApplyOptions struct {
	// Paths are the target's sync paths; every file the change set names
	// must be one of them (after filters), or nothing is applied.
	Paths []Path
	// Strict deletes the target's files that the sync paths select and
	// the source's manifest does not list.
	Strict bool
	// PreserveTimestamps gives written files the source's modification
	// time; otherwise they keep the time they were written.
	PreserveTimestamps bool
}

// Report says what Apply did, each list sorted.
type Report struct {
	// Written lists files written (new content).
	Written []string
	// Touched lists files whose content was already right but whose mode
	// or modification time was corrected.
	Touched []string
	// Removed lists files deleted (strict only).
	Removed []string
	// Stale lists files of the source's manifest the target does not hold
	// and the change set does not carry: the target missed a cycle, or the
	// file was changed on the target. A full cycle repairs them.
	Stale []string
}

// Complete says whether the target now holds the source's manifest.
func (r Report) Complete() bool { return len(r.Stale) == 0 }

func unixNano(n int64) time.Time { return time.Unix(0, n) }

// Apply writes a change set into dataDir. It first checks that every path
// of the set is selected by opts.Paths (refusing the whole set otherwise),
// then writes each carried file whose content differs atomically (a
// temporary file in the same folder, renamed over the old one), corrects
// modes and, with PreserveTimestamps, modification times, and with Strict
// deletes what the manifest no longer lists. Nothing outside the sync paths
// is touched, symbolic links are never followed out of dataDir, and a
// sub-folder that is a symbolic link is refused.
func Apply(dataDir string, cs *ChangeSet, opts ApplyOptions) (Report, error) {
	var rep Report
	sel, err := newSelector(opts.Paths)
	if err != nil {
		return rep, err
	}
	for p := range cs.Manifest {
		if !sel.covers(p) {
			return rep, fmt.Errorf("%w: %q is not in the sync paths", ErrInvalidChangeSet, p)
		}
	}
	for p := range cs.Files {
		if _, ok := cs.Manifest[p]; !ok {
			return rep, fmt.Errorf("%w: %q is not in the manifest", ErrInvalidChangeSet, p)
		}
	}
	root, err := os.OpenRoot(dataDir)
	if err != nil {
		return rep, fmt.Errorf("opening data folder: %w", err)
	}
	defer root.Close()
	local, err := scanRoot(root, sel, nil)
	if err != nil {
		return rep, err
	}
	names := make([]string, 0, len(cs.Manifest))
	for p := range cs.Manifest {
		names = append(names, p)
	}
	sort.Strings(names)
	var errs []error
	for _, p := range names {
		e := cs.Manifest[p]
		l, have := local[p]
		data, carried := cs.Files[p]
		switch {
		case have && l.SHA256 == e.SHA256:
			if l.Mode != e.Mode || (opts.PreserveTimestamps && l.ModTime != e.ModTime) {
				if err := fixMeta(root, p, e, opts.PreserveTimestamps); err != nil {
					errs = append(errs, err)
					continue
				}
				rep.Touched = append(rep.Touched, p)
			}
		case carried:
			if err := writeFile(root, p, data, e, opts.PreserveTimestamps); err != nil {
				errs = append(errs, fmt.Errorf("writing %s: %w", p, err))
				rep.Stale = append(rep.Stale, p)
				continue
			}
			rep.Written = append(rep.Written, p)
		default:
			rep.Stale = append(rep.Stale, p)
		}
	}
	if opts.Strict {
		var extra []string
		for p := range local {
			if _, ok := cs.Manifest[p]; !ok {
				extra = append(extra, p)
			}
		}
		sort.Strings(extra)
		for _, p := range extra {
			if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
				continue
			}
			rep.Removed = append(rep.Removed, p)
			pruneEmptyDirs(root, sel, path.Dir(p))
		}
	}
	return rep, errors.Join(errs...)
}

// checkDirs refuses a file whose folders (inside the data folder) are
// symbolic links or not folders: writing through them could reach files
// outside the sync paths. Missing folders are fine (they are created).
func checkDirs(root *os.Root, dir string) error {
	for d := dir; d != "."; d = path.Dir(d) {
		fi, err := root.Lstat(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a plain folder", ErrInvalidPath, d)
		}
	}
	return nil
}

func writeFile(root *os.Root, p string, data []byte, e Entry, preserve bool) error {
	dir := path.Dir(p)
	if err := checkDirs(root, dir); err != nil {
		return err
	}
	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fixMeta(root, tmp, e, preserve)
	}
	if err == nil {
		err = root.Rename(tmp, p)
	}
	if err != nil {
		_ = root.Remove(tmp)
	}
	return err
}

func fixMeta(root *os.Root, p string, e Entry, preserve bool) error {
	if err := root.Chmod(p, e.Mode.Perm()); err != nil {
		return err
	}
	if preserve {
		t := unixNano(e.ModTime)
		return root.Chtimes(p, t, t)
	}
	return nil
}

// pruneEmptyDirs removes folders left empty by strict deletions, up to
// (not including) the sync path itself.
func pruneEmptyDirs(root *os.Root, sel selector, dir string) {
	for ; dir != "."; dir = path.Dir(dir) {
		for _, sp := range sel {
			if sp.Path == dir {
				return
			}
		}
		if root.Remove(dir) != nil { // not empty, or gone
			return
		}
	}
}
