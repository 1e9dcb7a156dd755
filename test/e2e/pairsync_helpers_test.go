package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/podnet"
)

// adminAddr is the license server's admin API inside its pod.
const adminAddr = "127.0.0.1:5161"

// createPairWith creates a pair with its two licence Secrets (main and backup
// licences mapped to each other); mutate may change the spec first.
func createPairWith(ctx context.Context, ns, name string, mode licensehav1.PairMode, mutate func(*licensehav1.LicenseBackupPair)) *licensehav1.LicenseBackupPair {
	GinkgoHelper()
	for side, id := range map[string]string{"main": mainLicence, "backup": backupLicence} {
		s, err := env.LicenceSecret(ns, name+"-"+side+"-licenses", name, id, 50)
		Expect(err).NotTo(HaveOccurred())
		Expect(env.Client.Create(ctx, s)).To(Succeed())
		rememberLicenceSecret(ctx, ns, s.Name)
	}
	p := &licensehav1.LicenseBackupPair{}
	p.Namespace, p.Name = ns, name
	p.Spec.Mode = mode
	p.Spec.Main.LicenseSecretRef.Name = name + "-main-licenses"
	p.Spec.Backup.LicenseSecretRef.Name = name + "-backup-licenses"
	p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: mainLicence, Backup: backupLicence}}
	if mutate != nil {
		mutate(p)
	}
	Expect(env.Client.Create(ctx, p)).To(Succeed())
	return p
}

// editPair changes a pair's spec, retried on conflicts.
func editPair(ctx context.Context, key client.ObjectKey, change func(p *licensehav1.LicenseBackupPair)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &licensehav1.LicenseBackupPair{}
		if err := env.Client.Get(ctx, key, p); err != nil {
			return err
		}
		change(p)
		return env.Client.Update(ctx, p)
	})).To(Succeed())
}

// podSandbox is a running pod's network namespace and volume folders on
// this host (harness.PodSandbox).
type podSandbox struct {
	netns string
	sb    harness.PodSandbox
}

func sandboxOf(ctx context.Context, ns, pod string) (podSandbox, error) {
	sb, err := env.PodSandbox(ctx, ns, pod)
	return podSandbox{netns: sb.Netns, sb: sb}, err
}

// volume is the host folder of the pod's volume.
func (s podSandbox) volume(name string) string { return s.sb.Volume(name) }

// adminClient reaches the pod's admin API at 127.0.0.1:5161 with the
// group's admin token.
func adminClient(ctx context.Context, ns, groupName, member string) *server.AdminClient {
	GinkgoHelper()
	sec := &corev1.Secret{}
	Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.AdminSecretName(groupName)}, sec)
	}).WithTimeout(30 * time.Second).Should(Succeed())
	token := strings.TrimSpace(string(sec.Data["token"]))
	Expect(token).NotTo(BeEmpty(), "secret %s has no token", sec.Name)
	rememberSecret(ns+"/"+sec.Name+"/token", token)
	sb, err := sandboxOf(ctx, ns, group.PodName(groupName, member))
	Expect(err).NotTo(HaveOccurred())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return podnet.Dial(ctx, sb.netns, network, adminAddr)
		},
	}}
	return server.NewAdminClient("http://"+adminAddr, token, hc)
}

// fileInfo is what the spec compares of a synced file.
type fileInfo struct {
	Content string
	ModTime time.Time
}

// readSynced reads a file of a data folder; ok is false when it is missing.
func readSynced(dir, rel string) (fileInfo, bool, error) {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	st, err := os.Stat(p)
	if os.IsNotExist(err) {
		return fileInfo{}, false, nil
	}
	if err != nil {
		return fileInfo{}, false, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fileInfo{}, false, err
	}
	return fileInfo{Content: string(data), ModTime: st.ModTime().UTC()}, true, nil
}

// writeFile writes a file of a data folder (folders created as needed),
// with mtime when it is not zero.
func writeFile(dir, rel, content string, mtime time.Time) {
	GinkgoHelper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	Expect(os.MkdirAll(filepath.Dir(p), 0o755)).To(Succeed())
	Expect(os.WriteFile(p+".e2e-new", []byte(content), 0o644)).To(Succeed())
	if !mtime.IsZero() {
		Expect(os.Chtimes(p+".e2e-new", mtime, mtime)).To(Succeed())
	}
	// Renamed into place, so the main's scan never sees half a file.
	Expect(os.Rename(p+".e2e-new", p)).To(Succeed())
}
