package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// PodLogDirs are the folders that hold the pods' logs: the kubelets'.
func (e *Env) PodLogDirs() []string {
	dirs, _ := filepath.Glob(fmt.Sprintf("/var/lib/realcluster%d/n*/pod-logs", e.opts.Instance))
	return dirs
}

// TrustedKeysFile is the PEM file with the public key the harness signs
// licences with.
func (e *Env) TrustedKeysFile() string { return e.trusted }

// Helm runs the pinned helm binary (bin/helm, `make helm`) against the
// cluster.
func (e *Env) Helm(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.Root, "bin", "helm"), args...)
	cmd.Env = append(cmd.Environ(), "KUBECONFIG="+e.Kubeconfig, "HELM_CACHE_HOME="+filepath.Join(e.StateDir, "helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(e.StateDir, "helm-config"), "HELM_DATA_HOME="+filepath.Join(e.StateDir, "helm-data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
