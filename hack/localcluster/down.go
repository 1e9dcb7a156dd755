package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func runDown(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("down takes no arguments (the state directory comes from $LOCALCLUSTER_STATE_DIR)")
	}
	if err := requireRoot(); err != nil {
		return err
	}
	l := layout{dir: defaultStateDir()}
	if pid, err := readPid(l.pidFile()); err == nil && isComponent(pid, "localcluster") {
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			fmt.Printf("stopping the local cluster (pid %d)\n", pid)
			waitExit(pid, 60*time.Second)
		}
	}
	cleanupLeftovers(l)
	_ = os.Remove(l.pidFile())
	_ = os.Remove(l.readyFile())
	return nil
}

func waitExit(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// cleanupLeftovers removes what a cluster that did not stop cleanly left
// behind: its control-plane processes, the pods' processes and network
// namespaces, the veths and the bridge, and the service rules. It also
// stops the processes others started beside the cluster and recorded in
// <state>/pids/<program> (the demo's operator).
func cleanupLeftovers(l layout) {
	pidFiles, _ := filepath.Glob(filepath.Join(l.dir, "pids", "*"))
	for _, f := range pidFiles {
		if pid, err := readPid(f); err == nil && isComponent(pid, filepath.Base(f)) {
			log.Printf("stopping %s (pid %d)", filepath.Base(f), pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(f)
	}
	namespaces, links := leftoverNetworks()
	for _, ns := range namespaces {
		killNetnsProcesses("/run/netns/" + ns)
		_ = runTool("ip", "netns", "del", ns)
	}
	for _, link := range links {
		_ = runTool("ip", "link", "del", link)
	}
	removeServiceRules()
	// "ip netns add" bind-mounts /run/netns onto itself on first use; undo
	// that when no namespace of any instance is left.
	if entries, err := os.ReadDir("/run/netns"); err == nil && len(entries) == 0 {
		_ = unix.Unmount("/run/netns", unix.MNT_DETACH)
	}
}

// isComponent checks that pid still runs the program it was recorded for,
// so that a reused pid is left alone. The binary may have been rebuilt
// since it started ("make local-down" rebuilds bin/localcluster).
func isComponent(pid int, name string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == name
}
