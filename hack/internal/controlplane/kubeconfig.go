package controlplane

import (
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// WriteKubeconfig writes a kubeconfig for server that authenticates with the
// client certificate <pki>/<cert>.crt. With embed, the certificates are
// copied into the file so that it stays usable on its own.
func WriteKubeconfig(p Paths, clusterName, path, server, cert string, embed bool) error {
	cluster := &clientcmdapi.Cluster{Server: server, CertificateAuthority: p.PKI("ca.crt")}
	user := &clientcmdapi.AuthInfo{ClientCertificate: p.PKI(cert + ".crt"), ClientKey: p.PKI(cert + ".key")}
	if embed {
		var err error
		if cluster.CertificateAuthorityData, err = os.ReadFile(cluster.CertificateAuthority); err != nil {
			return err
		}
		if user.ClientCertificateData, err = os.ReadFile(user.ClientCertificate); err != nil {
			return err
		}
		if user.ClientKeyData, err = os.ReadFile(user.ClientKey); err != nil {
			return err
		}
		cluster.CertificateAuthority, user.ClientCertificate, user.ClientKey = "", "", ""
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = cluster
	cfg.AuthInfos[cert] = user
	cfg.Contexts[clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: cert}
	cfg.CurrentContext = clusterName
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// ClientFromKubeconfig builds a clientset with a rate limit that suits a
// node agent serving a handful of pods.
func ClientFromKubeconfig(path string) (*kubernetes.Clientset, *rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	return cs, cfg, err
}
