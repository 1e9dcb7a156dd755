// Package testenv is the one envtest harness of the tests: it finds the
// control-plane binaries, starts a real kube-apiserver and etcd
// (sigs.k8s.io/controller-runtime/pkg/envtest) with the licenseha CRDs of
// config/crd/bases, and hands out a scheme, a client and kubeconfig files
// for it. The controllers suite, the kubectl plugin's tests and the manifest
// tests all start their API server here; what only one suite needs (the
// operator under test, its RBAC, the informer log) stays in that suite.
//
// Only tests import it (it is not part of any binary).
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// RepoRoot is the checkout: the nearest directory holding go.mod, walking up
// from the working directory (a test runs in its package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// CRDDir is the directory of the licenseha CRDs, config/crd/bases.
func CRDDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "crd", "bases"), nil
}

var (
	assetsOnce sync.Once
	assets     string
	assetsErr  error
)

// AssetsDir finds the control-plane binaries (etcd, kube-apiserver, kubectl):
// KUBEBUILDER_ASSETS when set, otherwise the last line <repo
// root>/hack/envtest-assets.sh prints (it builds them when missing). The
// answer is looked up once per test binary.
func AssetsDir() (string, error) {
	assetsOnce.Do(func() {
		if assets = os.Getenv("KUBEBUILDER_ASSETS"); assets != "" {
			return
		}
		root, err := RepoRoot()
		if err != nil {
			assetsErr = err
			return
		}
		out, err := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh")).Output()
		if err != nil {
			assetsErr = fmt.Errorf("building the control-plane binaries: %w", err)
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		assets = lines[len(lines)-1]
	})
	return assets, assetsErr
}

// NewScheme holds client-go's types and the licenseha API.
func NewScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := licensehav1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

// Options change the API server Start runs.
type Options struct {
	// NoCRDs installs no CRD: the test applies the licenseha CRDs itself
	// (the Helm chart's, for instance).
	NoCRDs bool
	// APIServerArgs are kube-apiserver flags set on top of envtest's,
	// name (without dashes) to value.
	APIServerArgs map[string]string
}

// Env is a running API server.
type Env struct {
	Environment *envtest.Environment
	// Config is the admin's REST config.
	Config *rest.Config
	// Scheme is NewScheme's.
	Scheme *runtime.Scheme
	// Client is an admin client with Scheme.
	Client client.Client

	dir string // the kubeconfig files Kubeconfig writes
}

// Start starts an API server with the licenseha CRDs (unless opts.NoCRDs;
// a CRD directory that is missing is an error) and an admin client for it.
// Stop ends it.
func Start(opts Options) (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	e := &Env{Environment: &envtest.Environment{BinaryAssetsDirectory: dir}}
	if !opts.NoCRDs {
		crds, err := CRDDir()
		if err != nil {
			return nil, err
		}
		e.Environment.CRDDirectoryPaths = []string{crds}
		e.Environment.ErrorIfCRDPathMissing = true
	}
	for name, value := range opts.APIServerArgs {
		e.Environment.ControlPlane.GetAPIServer().Configure().Set(name, value)
	}
	if e.Scheme, err = NewScheme(); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "licenseha-envtest-*"); err != nil {
		return nil, err
	}
	if e.Config, err = e.Environment.Start(); err != nil {
		_ = os.RemoveAll(e.dir)
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	if e.Client, err = e.NewClient(e.Config); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// ForTest starts an API server as Start does for one test, which fails at
// once when it cannot start; it is stopped when the test ends (a failure
// to stop is logged, not failed).
func ForTest(t testing.TB, opts Options) *Env {
	t.Helper()
	e, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Logf("stopping envtest: %v", err)
		}
	})
	return e
}

// NewClient is a client with Scheme for cfg, a REST config of this API
// server (Config or a copy with, say, a warning handler or impersonation).
func (e *Env) NewClient(cfg *rest.Config) (client.Client, error) {
	return client.New(cfg, client.Options{Scheme: e.Scheme})
}

// Kubeconfig adds user to the API server and writes a kubeconfig file of
// theirs, named after them, to a directory Stop removes; it returns the
// file's path. A user with no groups may do nothing until RBAC allows it;
// envtest.User{Name: "admin", Groups: []string{"system:masters"}} may do
// everything.
func (e *Env) Kubeconfig(user envtest.User) (string, error) {
	u, err := e.Environment.AddUser(user, nil)
	if err != nil {
		return "", err
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	file := filepath.Join(e.dir, user.Name+".kubeconfig")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return "", err
	}
	return file, nil
}

// Stop stops the API server and removes the kubeconfig files.
func (e *Env) Stop() error {
	err := e.Environment.Stop()
	if e.dir != "" {
		err = errors.Join(err, os.RemoveAll(e.dir))
	}
	return err
}
