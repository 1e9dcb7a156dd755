package main

import (
	"fmt"
	"net"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/licenseha/licenseha/hack/internal/controlplane"
)

// apiServerPort: the API server listens on its instance's bridge address,
// so every instance can use the standard port.
const apiServerPort = controlplane.APIServerPort

// newControlPlane describes this instance's control plane; the API server
// listens on the bridge's address, reachable from the host and every pod.
func newControlPlane(l layout, binDir string) *controlplane.ControlPlane {
	return &controlplane.ControlPlane{
		Paths:               l.paths(),
		BinDir:              binDir,
		ClusterName:         "localcluster",
		APIHost:             bridgeIP,
		EtcdClientPort:      etcdClientPort,
		EtcdPeerPort:        etcdPeerPort,
		ServiceCIDR:         serviceCIDR,
		KubernetesServiceIP: kubernetesServiceIP,
		Clients: map[string]controlplane.CertRequest{
			"admin": {CommonName: "localcluster-admin", Organization: []string{"system:masters"}},
			// The node agent serves every node of the cluster with one client, so
			// it is an administrator rather than system:node:<name>.
			"node-agent": {CommonName: "localcluster-node-agent", Organization: []string{"system:masters"}},
		},
	}
}

// writePKI writes the control plane's certificates plus the serving
// certificate of the node agent's kubelet API.
func writePKI(cp *controlplane.ControlPlane) error {
	if err := cp.WritePKI(); err != nil {
		return err
	}
	kubelet := controlplane.CertRequest{CommonName: "localcluster-kubelet", Server: true, IPs: []net.IP{net.ParseIP(cp.APIHost)}}
	if err := cp.Issue("kubelet", kubelet); err != nil {
		return fmt.Errorf("kubelet serving certificate: %w", err)
	}
	return nil
}

func clientFromKubeconfig(path string) (*kubernetes.Clientset, *rest.Config, error) {
	return controlplane.ClientFromKubeconfig(path)
}

func resolvConf(namespace string) string { return controlplane.ResolvConf(namespace, bridgeIP) }
