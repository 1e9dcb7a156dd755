// Package harness runs licenseha for real on the local real-node cluster
// (hack/realcluster: a control plane, three nodes each with a kubelet,
// containerd, runc and a CNI bridge, kube-proxy): every pod runs from the
// licenseha image (make image), the operator included, which the Helm chart
// deploys into the cluster; licences are signed by a key of the harness.
// The end-to-end suites, the failover and API benchmarks build on it. It
// needs root and bin/realcluster, the images and helm (make image
// realcluster helm).
package harness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/test/probe"
)

// Options configure an environment.
type Options struct {
	// Instance is the local cluster instance (0-9), so a test cluster never
	// touches a developer's (instance 0).
	Instance int
	// StateDir holds the cluster's files; a temporary directory when empty.
	StateDir string
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// NoOperator starts no operator (a test installs its own).
	NoOperator bool
	// NoCRDs installs no CRDs either (a test installs them with the chart).
	NoCRDs bool
}

// Image is the licenseha image the real-node cluster imports (make image).
const Image = "ghcr.io/licenseha/licenseha:dev"

// OperatorNode is the real-node cluster's node the operator runs on.
const OperatorNode = "realcluster-node-0"

// IdleImage is the image of an idle pod on the real-node cluster: the pause
// image every node imports (make image), whose entrypoint only sleeps.
const IdleImage = "localhost/licenseha/pause:dev"

// Env is a running local cluster with the operator.
type Env struct {
	Root       string
	StateDir   string
	Kubeconfig string
	K8sBin     string
	Client     client.Client

	opts    Options
	key     ed25519.PrivateKey
	trusted string
}

// RepoRoot finds the checkout from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the licenseha checkout")
		}
		dir = parent
	}
}

func (e *Env) logf(format string, args ...any) {
	if e.opts.Log != nil {
		e.opts.Log(format, args...)
	}
}

// Start brings up the cluster and the operator.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the local cluster needs root (kubelets, containerd, network namespaces)")
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, opts: opts}
	for _, b := range []string{"realcluster", "licenseha-image.tar", "pause-image.tar", "helm"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			return nil, fmt.Errorf("bin/%s is missing: run make image realcluster helm", b)
		}
	}
	for _, set := range [][]string{nil, {"kubelet", "kube-proxy"}} {
		out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "envtest-assets.sh"), set...).Output()
		if err != nil {
			return nil, fmt.Errorf("Kubernetes binaries: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		e.K8sBin = lines[len(lines)-1]
	}
	e.StateDir = opts.StateDir
	if e.StateDir == "" {
		if e.StateDir, err = os.MkdirTemp("", "licenseha-e2e-"); err != nil {
			return nil, err
		}
	}
	e.Kubeconfig = filepath.Join(e.StateDir, "kubeconfig")
	e.logf("Starting the real-node cluster (instance %d) in %s", opts.Instance, e.StateDir)
	if _, err := e.realcluster(ctx, "up", "--detach", "--k8s-bin-dir", e.K8sBin, "--state-dir", e.StateDir); err != nil {
		return nil, err
	}
	// From here on a failure stops the cluster: the caller gets no Env to
	// stop it with.
	started := false
	defer func() {
		if !started {
			e.Stop()
		}
	}()
	if !opts.NoCRDs {
		if err := e.installCRDs(ctx); err != nil {
			return nil, err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = licensehav1.AddToScheme(scheme)
	if e.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		return nil, err
	}
	e.key = priv
	pem, err := licensing.EncodePublicKey(pub)
	if err != nil {
		return nil, err
	}
	e.trusted = filepath.Join(e.StateDir, "trusted-keys.pem")
	if err := os.WriteFile(e.trusted, pem, 0o644); err != nil {
		return nil, err
	}
	if !opts.NoOperator {
		if err := e.deployOperator(ctx); err != nil {
			return nil, err
		}
	}
	started = true
	return e, nil
}

// installCRDs applies the CRDs and waits until they are served: the client
// discovers the API when created.
func (e *Env) installCRDs(ctx context.Context) error {
	if _, err := e.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(e.Root, "config", "crd", "bases")); err != nil {
		return err
	}
	// kubectl wait fails at once, instead of waiting, on a CRD whose status
	// has no conditions yet: ask again until the deadline.
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, err := e.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), ".status.conditions accessor error") {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// deployOperator installs the operator into the real-node cluster with the
// Helm chart, from the imported image (pull policy IfNotPresent), trusting
// the harness's licence key.
func (e *Env) deployOperator(ctx context.Context) error {
	keys, err := os.ReadFile(e.trusted)
	if err != nil {
		return err
	}
	repo, tag, _ := strings.Cut(Image, ":")
	_, err = e.Helm(ctx, "install", "licenseha", filepath.Join(e.Root, "charts", "licenseha"),
		"-n", "licenseha-system", "--create-namespace", "--set", "crds.enabled=false",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=Never",
		"--set-string", "trustedKeys.pem="+string(keys),
		// On node 0, so that a scenario can fail another node and keep the
		// operator (one replica) running.
		"--set-string", `nodeSelector.kubernetes\.io/hostname=`+OperatorNode,
		"--wait", "--timeout", "3m")
	return err
}

// Stop tears the cluster down, the operator with it.
func (e *Env) Stop() {
	if _, err := e.realcluster(context.Background(), "down"); err != nil {
		e.logf("Stopping the real-node cluster: %v", err)
	}
}

// realcluster runs the cluster tool, bin/realcluster.
func (e *Env) realcluster(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.Root, "bin", "realcluster"), args...)
	cmd.Env = append(os.Environ(), "REALCLUSTER_STATE_DIR="+e.StateDir, "REALCLUSTER_INSTANCE="+strconv.Itoa(e.opts.Instance),
		"REALCLUSTER_K8S_BIN_DIR="+e.K8sBin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("realcluster %s: %w: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// CheckClean runs `realcluster check-clean`: an error lists what the
// real-node cluster left on the host.
func (e *Env) CheckClean(ctx context.Context) error {
	_, err := e.realcluster(ctx, "check-clean")
	return err
}

// Fault runs `realcluster fault ARGS...` (kill, pause, resume, partition,
// heal, isolate-apiserver, node-down, node-up).
func (e *Env) Fault(ctx context.Context, args ...string) error {
	_, err := e.realcluster(ctx, append([]string{"fault"}, args...)...)
	return err
}

// Kubectl runs the cluster's kubectl.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.K8sBin, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// LicenceSecret returns a Secret with an Enterprise licence for the group.
func (e *Env) LicenceSecret(ns, name, groupName, id string, printers int) (*corev1.Secret, error) {
	now := time.Now()
	data, err := licensing.Issue(e.key, licensing.License{ID: id, Product: "LabelDesigner", Edition: licensing.EditionEnterprise,
		Printers: printers, Group: ns + "/" + groupName, IssuedAt: now, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data: map[string][]byte{id + licensing.FileSuffix: data}}, nil
}

// Namespace creates a namespace for a test.
func (e *Env) Namespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// CreateTriad creates a triad with members a (Primary), b (Secondary), c
// (Tertiary) and its licence Secret.
func (e *Env) CreateTriad(ctx context.Context, ns, name string, mutate func(*licensehav1.LicenseTriad)) (*licensehav1.LicenseTriad, error) {
	s, err := e.LicenceSecret(ns, name+"-licenses", name, "LIC-"+strings.ToUpper(name), 100)
	if err != nil {
		return nil, err
	}
	if err := e.Client.Create(ctx, s); err != nil {
		return nil, err
	}
	t := &licensehav1.LicenseTriad{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: licensehav1.LicenseTriadSpec{
			LicenseSecretRef: licensehav1.LocalObjectReference{Name: s.Name},
			Members: []licensehav1.TriadMember{
				{Name: "a", Role: licensehav1.RolePrimary},
				{Name: "b", Role: licensehav1.RoleSecondary},
				{Name: "c", Role: licensehav1.RoleTertiary},
			},
		},
	}
	if mutate != nil {
		mutate(t)
	}
	return t, e.Client.Create(ctx, t)
}

// WaitTriad waits until pred holds for the triad and returns it.
func (e *Env) WaitTriad(ctx context.Context, ns, name string, timeout time.Duration, pred func(*licensehav1.LicenseTriad) bool) (*licensehav1.LicenseTriad, error) {
	deadline := time.Now().Add(timeout)
	t := &licensehav1.LicenseTriad{}
	for {
		err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, t)
		if err == nil && pred(t) {
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, fmt.Errorf("triad %s/%s: condition not met within %s (phase %s, active %q, quorum %s)",
				ns, name, timeout, t.Status.Phase, t.Status.ActiveMember, t.Status.Quorum)
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Targets returns the members' license-server URLs (pod IPs), once every
// member has a pod IP.
func (e *Env) Targets(ctx context.Context, ns, groupName string, members ...string) ([]probe.Target, error) {
	var out []probe.Target
	for _, m := range members {
		p := &corev1.Pod{}
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(groupName, m)}, p); err != nil {
			return nil, err
		}
		if p.Status.PodIP == "" {
			return nil, fmt.Errorf("pod %s has no IP yet", p.Name)
		}
		out = append(out, probe.Target{Name: m, URL: "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)})
	}
	return out, nil
}

// PodName is the member's pod, as "namespace/name" for Fault.
func PodName(ns, groupName, member string) string {
	return ns + "/" + group.PodName(groupName, member)
}
