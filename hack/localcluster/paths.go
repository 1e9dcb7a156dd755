package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

// layout names the files of one cluster under its state directory.
type layout struct {
	dir string
}

func (l layout) paths() controlplane.Paths { return controlplane.Paths{Dir: l.dir} }
func (l layout) kubeconfig() string        { return l.paths().Kubeconfig() }

// componentKubeconfig is the kubeconfig a control-plane component or the
// node agent uses, each with its own client certificate.
func (l layout) componentKubeconfig(name string) string { return l.paths().ComponentKubeconfig(name) }
func (l layout) logFile(name string) string             { return l.paths().LogFile(name) }
func (l layout) pidFile() string                        { return filepath.Join(l.dir, "localcluster.pid") }
func (l layout) readyFile() string                      { return filepath.Join(l.dir, "ready") }
func (l layout) podsDir() string                        { return filepath.Join(l.dir, "pods") }
func (l layout) volumesDir() string                     { return filepath.Join(l.dir, "persistent-volumes") }

// podDir holds a pod's record (pod.json), volumes and container specs. The
// UID keeps apart a pod that is still stopping and its replacement.
func (l layout) podDir(namespace, name, uid string) string {
	return filepath.Join(l.podsDir(), namespace+"_"+name+"_"+uid)
}

// podLogDir keeps the container logs of a pod name across its incarnations.
func (l layout) podLogDir(namespace, name string) string {
	return filepath.Join(l.dir, "logs", "pods", namespace+"_"+name)
}

// repoRoot is the checkout the running binary belongs to: bin/localcluster
// lives in <repo>/bin.
func repoRoot() (string, error) { return controlplane.RepoRoot() }

// defaultStateDir is $LOCALCLUSTER_STATE_DIR, else the checkout's .local/.
func defaultStateDir() string {
	if d := os.Getenv("LOCALCLUSTER_STATE_DIR"); d != "" {
		return d
	}
	root, err := repoRoot()
	if err != nil {
		return ".local"
	}
	return filepath.Join(root, ".local")
}

// defaultBinDir is where the licenseha image's /usr/local/bin comes from:
// $LOCALCLUSTER_BIN_DIR, else the directory holding this binary (bin/).
func defaultBinDir() string {
	if d := os.Getenv("LOCALCLUSTER_BIN_DIR"); d != "" {
		return d
	}
	exe, err := os.Executable()
	if err != nil {
		return "bin"
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}

var errNotRoot = errors.New("the local cluster needs root (network and mount namespaces, veth pairs, iptables); run it with sudo")

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	return nil
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return nil
}
