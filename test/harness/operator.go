package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// StopOperator stops the operator the harness runs beside the cluster, so
// that another installation (the Helm chart) can take its place.
func (e *Env) StopOperator() {
	if e.operator != nil && e.operator.Process != nil {
		_ = e.operator.Process.Kill()
		e.operator = nil
	}
}

// PodLogDirs are the folders that hold the pods' logs: the kubelets' on
// real nodes, the process nodes' otherwise.
func (e *Env) PodLogDirs() []string {
	if e.opts.Real {
		dirs, _ := filepath.Glob(fmt.Sprintf("/var/lib/realcluster%d/n*/pod-logs", e.opts.Instance))
		return dirs
	}
	return []string{filepath.Join(e.StateDir, "logs", "pods")}
}

// Real reports whether the cluster has real nodes.
func (e *Env) Real() bool { return e.opts.Real }

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
