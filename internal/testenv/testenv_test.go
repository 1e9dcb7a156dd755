package testenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/licenseha/licenseha/internal/testenv"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// TestRepoRoot finds this module's go.mod and the CRDs the harness installs.
func TestRepoRoot(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/licenseha/licenseha\n") {
		t.Fatalf("%s/go.mod is not the licenseha module's (%v)", root, err)
	}
	crds, err := testenv.CRDDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"licenseha.io_licensetriads.yaml", "licenseha.io_licensebackuppairs.yaml"} {
		if _, err := os.Stat(filepath.Join(crds, f)); err != nil {
			t.Errorf("CRD directory %s: %v", crds, err)
		}
	}
}

// TestStart starts the API server: the fixtures' triad and pair are accepted
// (the CRDs are installed, the scheme knows the types), and a kubeconfig of
// an admin user reaches the same server.
func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("envtest: skipped with -short")
	}
	env := testenv.ForTest(t, testenv.Options{})
	ctx := context.Background()
	if err := env.Client.Create(ctx, testfixtures.Triad("default", "plant")); err != nil {
		t.Fatalf("creating a triad: %v", err)
	}
	if err := env.Client.Create(ctx, testfixtures.Pair("default", "plant")); err != nil {
		t.Fatalf("creating a pair: %v", err)
	}
	file, err := env.Kubeconfig(envtest.User{Name: "admin", Groups: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := testfixtures.Triad("", "")
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "plant"}, tr); err != nil {
		t.Fatalf("reading the triad with the kubeconfig's user: %v", err)
	}
	if len(tr.Spec.Members) != 3 {
		t.Errorf("triad read back with %d members, want 3", len(tr.Spec.Members))
	}
}
