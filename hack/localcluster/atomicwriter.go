package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// payload is the content of a configMap, secret, downwardAPI or projected
// volume: relative path -> file.
type payload map[string]fileContent

type fileContent struct {
	data []byte
	mode os.FileMode
}

const dataDirLink = "..data"

// writeAtomic publishes a payload into dir the way the kubelet's
// AtomicWriter does: the files live in a timestamped directory, "..data"
// points at it, and every top-level entry is a symlink through "..data". An
// update writes a new directory and swaps "..data" with a rename, so readers
// see either the old or the new set of files, never a mix. It reports
// whether anything changed. With a gid (the pod's fsGroup; -1 for none)
// the files belong to that group, as the kubelet arranges for non-root
// containers.
func writeAtomic(dir string, p payload, gid int) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	oldTS, _ := os.Readlink(filepath.Join(dir, dataDirLink))
	if oldTS != "" && payloadMatches(filepath.Join(dir, oldTS), p) {
		return false, nil
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	for rel, f := range p {
		path := filepath.Join(ts, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return false, err
		}
		if err := os.Chmod(path, f.mode); err != nil { // WriteFile honours the umask
			return false, err
		}
		if err := os.Lchown(path, -1, gid); err != nil {
			return false, err
		}
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return false, err
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirLink)); err != nil {
		return false, err
	}
	if err := syncUserLinks(dir, p); err != nil {
		return false, err
	}
	if oldTS != "" {
		_ = os.RemoveAll(filepath.Join(dir, oldTS))
	}
	return true, nil
}

// syncUserLinks makes the top-level names of the payload symlinks into
// ..data and removes the links of names that are gone.
func syncUserLinks(dir string, p payload) error {
	want := map[string]bool{}
	for rel := range p {
		want[strings.Split(rel, "/")[0]] = true
	}
	for name := range want {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDirLink, name), link); err != nil {
			return fmt.Errorf("linking %s: %w", name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !want[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

func payloadMatches(dir string, p payload) bool {
	n := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		f, ok := p[rel]
		if !ok || info.Mode().Perm() != f.mode.Perm() {
			return fmt.Errorf("differs")
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.data) {
			return fmt.Errorf("differs")
		}
		n++
		return nil
	})
	return err == nil && n == len(p)
}
