package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

func pidFile(p controlplane.Paths) string   { return filepath.Join(p.Dir, "realcluster.pid") }
func readyFile(p controlplane.Paths) string { return filepath.Join(p.Dir, "ready") }

func repoRoot() (string, error) { return controlplane.RepoRoot() }

// defaultStateDir is $REALCLUSTER_STATE_DIR, else the checkout's .local-real/.
func defaultStateDir() string {
	if d := os.Getenv("REALCLUSTER_STATE_DIR"); d != "" {
		return d
	}
	root, err := repoRoot()
	if err != nil {
		return ".local-real"
	}
	return filepath.Join(root, ".local-real")
}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the real-node cluster needs root (containerd, cgroups, bridges, iptables); run it with sudo")
	}
	return nil
}

func readPid(path string) (int, error) { return controlplane.ReadPid(path) }
