package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupFS = "/sys/fs/cgroup"

// hierarchies are the mounted cgroup v1 hierarchies (cpu, memory, freezer,
// pids, ..., name=systemd): the kubelet runs with the cgroupfs driver on
// cgroup v1 here, and runc places containers in each of them.
func hierarchies() []string {
	entries, _ := os.ReadDir(cgroupFS)
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupFS, e.Name())
		if e.Name() == "unified" {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// createCgroup creates cg (e.g. /realcluster0/n1/daemons) in every
// hierarchy; cpuset needs its parents' cpus and mems copied down.
func createCgroup(cg string) error {
	for _, h := range hierarchies() {
		parts := strings.Split(strings.Trim(cg, "/"), "/")
		dir := h
		for _, p := range parts {
			parent := dir
			dir = filepath.Join(dir, p)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if filepath.Base(h) == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if cur, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(cur)) == "" {
						v, err := os.ReadFile(filepath.Join(parent, f))
						if err != nil {
							return err
						}
						if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
							return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
						}
					}
				}
			}
		}
	}
	return nil
}

// moveToCgroup moves a process into cg in every hierarchy.
func moveToCgroup(cg string, pid int) error {
	for _, h := range hierarchies() {
		if err := os.WriteFile(filepath.Join(h, cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("moving pid %d to %s: %w", pid, filepath.Join(h, cg), err)
		}
	}
	return nil
}

// setFreezer freezes (FROZEN) or thaws (THAWED) cg and everything below.
func setFreezer(cg, state string) error {
	f := filepath.Join(cgroupFS, "freezer", cg, "freezer.state")
	if err := os.WriteFile(f, []byte(state), 0o644); err != nil {
		return err
	}
	// Freezing completes asynchronously; wait until it is done.
	for i := 0; i < 100; i++ {
		cur, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == state {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: still not %s after 2s", f, state)
}

// treePids lists the processes of cg and its descendants (freezer
// hierarchy).
func treePids(cg string) []int {
	var pids []int
	root := filepath.Join(cgroupFS, "freezer", cg)
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// killTree thaws cg and SIGKILLs its processes until none is left.
func killTree(cg string, timeout time.Duration) error {
	if _, err := os.Stat(filepath.Join(cgroupFS, "freezer", cg)); err != nil {
		return nil
	}
	_ = setFreezer(cg, "THAWED")
	deadline := time.Now().Add(timeout)
	for {
		pids := treePids(cg)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of cgroup %s survive SIGKILL", pids, cg)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeCgroupTree removes cg and its descendants from every hierarchy,
// deepest first (they must be empty).
func removeCgroupTree(cg string) error {
	var errs []error
	// runc also creates the containers' cgroups in the (controller-less)
	// cgroup v2 hierarchy.
	for _, h := range append(hierarchies(), filepath.Join(cgroupFS, "unified")) {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, cg), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// leftoverCgroups lists the hierarchies that still hold cg.
func leftoverCgroups(cg string) []string {
	var out []string
	for _, h := range append(hierarchies(), filepath.Join(cgroupFS, "unified")) {
		if _, err := os.Stat(filepath.Join(h, cg)); err == nil {
			out = append(out, filepath.Join(h, cg))
		}
	}
	return out
}
