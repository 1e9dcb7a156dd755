// Package sync copies extra folders of a license server's data folder from
// the main of a backup pair to its backup (spec.sync.paths of a
// LicenseBackupPair). It is pure file work, with no Kubernetes in it:
//
//   - Scan reads the configured paths of a data folder into a Manifest
//     (relative path → size, mode, modification time, SHA-256);
//   - Compare diffs two manifests (added, changed, removed);
//   - Build and Encode turn a diff into a compact change set (tar+gzip: the
//     changed files' contents, the removed paths and the full manifest),
//     refusing one that cannot fit a Kubernetes object;
//   - Decode reads a change set back, refusing anything malformed or
//     pointing outside the sync paths;
//   - Apply writes a change set into a target data folder, each file
//     atomically (temporary file + rename), and reports what it did.
//
// # Paths and filters
//
// A sync path is a folder relative to the data folder ("." is the whole
// folder). Every regular file below it is a candidate; symbolic links,
// devices, sockets and pipes are skipped and never followed, and nothing
// outside the data folder is ever read or written (all file access goes
// through an os.Root).
//
// Include and exclude are shell globs (path.Match syntax: *, ?, [..]). A
// pattern matches a file when it matches either the file's base name or its
// path relative to the sync path, both with forward slashes: "*.xml"
// matches every XML file at any depth, "printers/*.xml" only those directly
// in the printers sub-folder. A file is synced when no exclude pattern
// matches it and, if include is not empty, an include pattern does: exclude
// wins. Exclude patterns also prune directories (base name or relative
// path), so exclude ["cache"] skips the cache folder and all below it.
// Include patterns apply to files only.
//
// Manifest keys are paths relative to the data folder ("settings/a.xml").
package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Path is one synced folder with its filters.
type Path struct {
	// Path is relative to the data folder, with forward slashes.
	Path    string   `json:"path"`
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// Entry describes one file of a manifest.
type Entry struct {
	Size int64 `json:"size"`
	// Mode holds the permission bits only.
	Mode fs.FileMode `json:"mode"`
	// ModTime is the modification time in nanoseconds since the Unix epoch.
	ModTime int64  `json:"mtime"`
	SHA256  string `json:"sha256"`
}

// Manifest maps a path relative to the data folder to its file.
type Manifest map[string]Entry

// tempPrefix names the temporary files Apply writes; Scan skips them.
const tempPrefix = ".lhsync-"

// ErrInvalidPath is returned for a path that is absolute, not clean, or
// climbs out of the data folder.
var ErrInvalidPath = errors.New("invalid sync path")

// validRel checks that p is a clean relative slash path that stays inside
// its root: not empty, not absolute, no "..", no empty or "." elements.
func validRel(p string) error {
	if p == "" || p == "." || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") ||
		path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return fmt.Errorf("%w: %q", ErrInvalidPath, p)
	}
	return nil
}

// cleanSyncPath validates a configured sync path; "." (or "" or "./") is
// the whole data folder. The CRD already refuses absolute paths and "..";
// this defends against a configuration that did not go through it.
func cleanSyncPath(p string) (string, error) {
	c := strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
	if c == "" || c == "." {
		return ".", nil
	}
	if err := validRel(c); err != nil {
		return "", err
	}
	return c, nil
}

// within returns p relative to the sync path sp, or false when p is not
// below sp.
func within(sp, p string) (string, bool) {
	if sp == "." {
		return p, true
	}
	if rest, ok := strings.CutPrefix(p, sp+"/"); ok && rest != "" {
		return rest, true
	}
	return "", false
}

func matchAny(patterns []string, base, rel string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, base); ok {
			return true
		}
		if ok, _ := path.Match(pat, rel); ok {
			return true
		}
	}
	return false
}

// selects says whether the sync path selects the file at rel (relative to
// the sync path).
func (sp Path) selects(rel string) bool {
	base := path.Base(rel)
	if strings.HasPrefix(base, tempPrefix) {
		return false
	}
	// An excluded directory excludes everything below it.
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		if matchAny(sp.Exclude, path.Base(dir), dir) {
			return false
		}
	}
	if matchAny(sp.Exclude, base, rel) {
		return false
	}
	return len(sp.Include) == 0 || matchAny(sp.Include, base, rel)
}

// selector decides which data-folder paths the configured sync paths cover.
type selector []Path

func newSelector(paths []Path) (selector, error) {
	out := make(selector, 0, len(paths))
	for _, p := range paths {
		c, err := cleanSyncPath(p.Path)
		if err != nil {
			return nil, err
		}
		for _, pat := range append(append([]string{}, p.Include...), p.Exclude...) {
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("sync path %q: bad pattern %q: %w", p.Path, pat, err)
			}
		}
		p.Path = c
		out = append(out, p)
	}
	return out, nil
}

// covers says whether a data-folder path p is synced by any sync path.
func (s selector) covers(p string) bool {
	if validRel(p) != nil {
		return false
	}
	for _, sp := range s {
		if rel, ok := within(sp.Path, p); ok && sp.selects(rel) {
			return true
		}
	}
	return false
}

// Scan reads the files the sync paths select in dataDir into a manifest.
// Hashes of files whose size, mode and modification time are unchanged
// since prev (which may be nil) are reused rather than recomputed. A sync
// path that does not exist, or is not a directory, contributes nothing.
func Scan(dataDir string, paths []Path, prev Manifest) (Manifest, error) {
	sel, err := newSelector(paths)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dataDir)
	if err != nil {
		return nil, fmt.Errorf("opening data folder: %w", err)
	}
	defer root.Close()
	return scanRoot(root, sel, prev)
}

func scanRoot(root *os.Root, sel selector, prev Manifest) (Manifest, error) {
	out := Manifest{}
	fsys := root.FS()
	for _, sp := range sel {
		if sp.Path != "." {
			// The sync path and its parents must be plain folders: a
			// symbolic link (even one inside the data folder) is never
			// followed, so nothing outside the sync path is read or, on
			// the backup, deleted.
			if err := checkDirs(root, sp.Path); errors.Is(err, ErrInvalidPath) {
				continue
			} else if err != nil {
				return nil, err
			}
			if _, err := root.Lstat(sp.Path); errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, err
			}
		}
		err := fs.WalkDir(fsys, sp.Path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // removed while walking
					return nil
				}
				return err
			}
			if p == sp.Path {
				return nil
			}
			rel, _ := within(sp.Path, p)
			if d.IsDir() {
				if matchAny(sp.Exclude, d.Name(), rel) {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || !sp.selects(rel) {
				return nil
			}
			if _, dup := out[p]; dup {
				return nil
			}
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			e := Entry{Size: fi.Size(), Mode: fi.Mode().Perm(), ModTime: fi.ModTime().UnixNano()}
			if old, ok := prev[p]; ok && old.Size == e.Size && old.Mode == e.Mode && old.ModTime == e.ModTime && old.SHA256 != "" {
				e.SHA256 = old.SHA256
			} else {
				sum, n, err := hashFile(root, p)
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				if err != nil {
					return err
				}
				e.SHA256, e.Size = sum, n
			}
			out[p] = e
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", sp.Path, err)
		}
	}
	return out, nil
}

// openRegular opens a regular file inside root, refusing anything else.
func openRegular(root *os.Root, p string) (*os.File, error) {
	fi, err := root.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	if fi2, err := f.Stat(); err != nil || !os.SameFile(fi, fi2) {
		f.Close()
		return nil, fmt.Errorf("%s changed while being opened: %w", p, fs.ErrNotExist)
	}
	return f, nil
}

func hashFile(root *os.Root, p string) (string, int64, error) {
	f, err := openRegular(root, p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Diff lists what changed between two manifests, each list sorted.
type Diff struct {
	Added, Changed, Removed []string
}

// Empty says whether nothing changed.
func (d Diff) Empty() bool { return len(d.Added)+len(d.Changed)+len(d.Removed) == 0 }

// Compare diffs old (nil: nothing) against cur. A file changed when its
// content, mode or modification time did.
func Compare(old, cur Manifest) Diff {
	var d Diff
	for p, e := range cur {
		o, ok := old[p]
		switch {
		case !ok:
			d.Added = append(d.Added, p)
		case o != e:
			d.Changed = append(d.Changed, p)
		}
	}
	for p := range old {
		if _, ok := cur[p]; !ok {
			d.Removed = append(d.Removed, p)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Changed)
	sort.Strings(d.Removed)
	return d
}
