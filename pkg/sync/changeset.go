package sync

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// ChangeSet is one sync cycle: the files added or changed since the last
// cycle with their contents, the paths removed since, and the full
// manifest of the source so the target can check it holds everything.
type ChangeSet struct {
	// Revision identifies the cycle; it only grows for one source.
	Revision int64 `json:"revision"`
	// Full is true when the set carries every file (a first cycle).
	Full     bool     `json:"full,omitempty"`
	Manifest Manifest `json:"manifest"`
	Removed  []string `json:"removed,omitempty"`
	// Files holds the contents of added and changed files.
	Files map[string][]byte `json:"-"`
}

// Limits of the encoding.
const (
	// MaxObjectBytes is the most an encoded change set may take: a
	// Kubernetes object holds at most 1 MiB, and metadata and the object's
	// other keys need the rest.
	MaxObjectBytes = 900 * 1024
	// maxDecodedBytes bounds what Decode inflates (a gzip bomb guard).
	maxDecodedBytes = 64 << 20
	// maxEntries bounds the files of one change set.
	maxEntries = 100_000
	// FormatVersion is written in every change set.
	FormatVersion = 1

	headerName = "manifest.json"
	filePrefix = "files/"
)

// ErrTooLarge is returned when a change set cannot fit the limit.
var ErrTooLarge = errors.New("sync change set too large")

// ErrInvalidChangeSet is returned by Decode and Apply for malformed or
// unsafe input.
var ErrInvalidChangeSet = errors.New("invalid sync change set")

// Build reads the contents of the files added or changed between prev (nil:
// a first cycle, everything is sent) and cur from dataDir. A file that
// changed again since cur was scanned is sent as read, with its manifest
// entry updated to match; one that vanished is dropped from the manifest.
func Build(dataDir string, prev, cur Manifest, revision int64) (*ChangeSet, error) {
	root, err := os.OpenRoot(dataDir)
	if err != nil {
		return nil, fmt.Errorf("opening data folder: %w", err)
	}
	defer root.Close()
	d := Compare(prev, cur)
	cs := &ChangeSet{Revision: revision, Full: prev == nil, Manifest: make(Manifest, len(cur)),
		Removed: d.Removed, Files: map[string][]byte{}}
	for p, e := range cur {
		cs.Manifest[p] = e
	}
	for _, p := range append(d.Added, d.Changed...) {
		if validRel(p) != nil {
			return nil, fmt.Errorf("%w: %q", ErrInvalidPath, p)
		}
		data, err := readRegular(root, p)
		if errors.Is(err, os.ErrNotExist) {
			delete(cs.Manifest, p)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		e := cs.Manifest[p]
		sum := sha256.Sum256(data)
		e.SHA256, e.Size = hex.EncodeToString(sum[:]), int64(len(data))
		cs.Manifest[p] = e
		cs.Files[p] = data
	}
	return cs, nil
}

func readRegular(root *os.Root, p string) ([]byte, error) {
	f, err := openRegular(root, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// header is the first tar entry of an encoded change set.
type header struct {
	Format   int      `json:"format"`
	Revision int64    `json:"revision"`
	Full     bool     `json:"full,omitempty"`
	Manifest Manifest `json:"manifest"`
	Removed  []string `json:"removed,omitempty"`
}

// limitedBuffer fails writes past its limit, so Encode stops compressing
// as soon as the result cannot fit.
type limitedBuffer struct {
	bytes.Buffer
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		return 0, ErrTooLarge
	}
	return b.Buffer.Write(p)
}

// Encode writes a change set as tar+gzip: a manifest.json entry first,
// then one files/<path> entry per changed file, sorted. limit (<= 0:
// MaxObjectBytes) bounds the compressed size; past it Encode returns an
// error wrapping ErrTooLarge that says how much was to be sent.
func Encode(cs *ChangeSet, limit int) ([]byte, error) {
	if limit <= 0 {
		limit = MaxObjectBytes
	}
	out := &limitedBuffer{limit: limit}
	gz, _ := gzip.NewWriterLevel(out, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	hdr, err := json.Marshal(header{Format: FormatVersion, Revision: cs.Revision, Full: cs.Full, Manifest: cs.Manifest, Removed: cs.Removed})
	if err != nil {
		return nil, err
	}
	var raw int64
	write := func(name string, data []byte, mode int64, mtime int64) error {
		raw += int64(len(data))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg,
			ModTime: unixNano(mtime), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err = write(headerName, hdr, 0o600, 0)
	names := make([]string, 0, len(cs.Files))
	for p := range cs.Files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if err != nil {
			break
		}
		if validRel(p) != nil {
			return nil, fmt.Errorf("%w: %q", ErrInvalidPath, p)
		}
		e := cs.Manifest[p]
		err = write(filePrefix+p, cs.Files[p], int64(e.Mode), e.ModTime)
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if errors.Is(err, ErrTooLarge) {
		var total int64
		for _, d := range cs.Files {
			total += int64(len(d))
		}
		return nil, fmt.Errorf("%w: %d files (%d KiB uncompressed) do not compress below %d KiB, what a Kubernetes object can carry; "+
			"narrow spec.sync.paths with include/exclude filters", ErrTooLarge, len(cs.Files), total/1024, limit/1024)
	}
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Decode reads an encoded change set. It refuses, with an error wrapping
// ErrInvalidChangeSet: a first entry that is not the manifest, an entry
// name that is absolute, not clean or climbs with "..", a file not in the
// manifest or whose content does not match its manifest entry, duplicate
// entries, and anything inflating past 64 MiB.
func Decode(data []byte) (*ChangeSet, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidChangeSet, fmt.Sprintf(format, args...))
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, bad("%v", err)
	}
	defer gz.Close()
	budget := &io.LimitedReader{R: gz, N: maxDecodedBytes + 1}
	tr := tar.NewReader(budget)
	read := func(h *tar.Header) ([]byte, error) {
		if h.Size < 0 || h.Size > maxDecodedBytes {
			return nil, bad("entry %q of %d bytes", h.Name, h.Size)
		}
		b, err := io.ReadAll(io.LimitReader(tr, h.Size+1))
		if err != nil {
			return nil, bad("entry %q: %v", h.Name, err)
		}
		if int64(len(b)) != h.Size {
			return nil, bad("entry %q is truncated", h.Name)
		}
		return b, nil
	}
	h, err := tr.Next()
	if err != nil || h.Name != headerName || h.Typeflag != tar.TypeReg {
		return nil, bad("no manifest first")
	}
	raw, err := read(h)
	if err != nil {
		return nil, err
	}
	var hd header
	if err := json.Unmarshal(raw, &hd); err != nil {
		return nil, bad("manifest: %v", err)
	}
	if hd.Format != FormatVersion {
		return nil, bad("format %d, this agent reads %d", hd.Format, FormatVersion)
	}
	if len(hd.Manifest) > maxEntries || len(hd.Removed) > maxEntries {
		return nil, bad("more than %d entries", maxEntries)
	}
	for p, e := range hd.Manifest {
		if err := validRel(p); err != nil {
			return nil, bad("%v", err)
		}
		if e.Size < 0 || e.Mode&^0o777 != 0 || len(e.SHA256) != 64 {
			return nil, bad("manifest entry %q", p)
		}
	}
	for _, p := range hd.Removed {
		if err := validRel(p); err != nil {
			return nil, bad("%v", err)
		}
		if _, ok := hd.Manifest[p]; ok {
			return nil, bad("%q is both removed and present", p)
		}
	}
	cs := &ChangeSet{Revision: hd.Revision, Full: hd.Full, Manifest: hd.Manifest, Removed: hd.Removed, Files: map[string][]byte{}}
	if cs.Manifest == nil {
		cs.Manifest = Manifest{}
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bad("%v", err)
		}
		if budget.N <= 0 {
			return nil, bad("more than %d MiB inflated", maxDecodedBytes>>20)
		}
		p, ok := strings.CutPrefix(h.Name, filePrefix)
		if !ok || h.Typeflag != tar.TypeReg {
			return nil, bad("unexpected entry %q", h.Name)
		}
		if err := validRel(p); err != nil {
			return nil, bad("%v", err)
		}
		e, ok := cs.Manifest[p]
		if !ok {
			return nil, bad("%q is not in the manifest", p)
		}
		if _, dup := cs.Files[p]; dup {
			return nil, bad("%q twice", p)
		}
		if len(cs.Files) >= maxEntries {
			return nil, bad("more than %d files", maxEntries)
		}
		b, err := read(h)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
			return nil, bad("%q does not match its manifest entry", p)
		}
		cs.Files[p] = b
	}
	if budget.N <= 0 {
		return nil, bad("more than %d MiB inflated", maxDecodedBytes>>20)
	}
	return cs, nil
}
