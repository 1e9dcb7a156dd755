package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	corev1 "k8s.io/api/core/v1"
)

// ImportImage imports an image tarball (ctr and docker load format) into
// every node's containerd: the cluster itself imports only the licenseha
// and pause images, and a test or bench brings its own (e.g. a stand-in
// vendor server) with pull policy Never.
func (e *Env) ImportImage(ctx context.Context, tar string) error {
	if _, err := os.Stat(tar); err != nil {
		return fmt.Errorf("%s: %w", tar, err)
	}
	nodes := &corev1.NodeList{}
	if err := e.Client.List(ctx, nodes); err != nil {
		return err
	}
	for k := range nodes.Items {
		sock := fmt.Sprintf("/run/realcluster%d/n%d/containerd.sock", e.opts.Instance, k)
		if out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "-n", "k8s.io", "images", "import", tar).CombinedOutput(); err != nil {
			return fmt.Errorf("importing %s into node %d: %v: %s", tar, k, err, out)
		}
	}
	return nil
}
