package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/internal/testpki"
	"github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/pkg/licensing"
	"github.com/licenseha/licenseha/pkg/server"
)

// run executes the CLI with args and returns its standard output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestLicenceWorkflow(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "dev.key"), filepath.Join(dir, "dev.pub")
	lic := filepath.Join(dir, "LIC-0001.lic")
	if _, err := run(t, "license", "keygen", "--private-key", priv, "--public-key", pub); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(priv); st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode = %v, want 0600", st.Mode().Perm())
	}
	if _, err := run(t, "license", "keygen", "--private-key", priv, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("keygen over existing files = %v, want a refusal mentioning --force", err)
	}
	if _, err := run(t, "license", "issue", "--private-key", priv, "--id", "LIC-0001", "--product", "LabelDesigner",
		"--edition", "Professional", "--printers", "25", "--group", "printing/plant-a",
		"--not-before", "2026-01-01", "--not-after", "2027-01-01", "-o", lic); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "license", "verify", "--trusted-keys", pub, "--group", "printing/plant-a", "--at", "2026-06-01", lic)
	if err != nil || !strings.Contains(out, "LIC-0001") || !strings.Contains(out, "Professional") || !strings.Contains(out, "valid") {
		t.Fatalf("verify = %v\n%s", err, out)
	}
	out, err = run(t, "license", "verify", "--trusted-keys", pub, "--at", "2027-06-01", lic)
	if err == nil || !strings.Contains(out, "expired") {
		t.Fatalf("verify after expiry = %v\n%s; want a failure saying expired", err, out)
	}
	if _, err := run(t, "license", "verify", "--trusted-keys", pub, "--group", "printing/plant-b", "--at", "2026-06-01", lic); err == nil {
		t.Fatal("verify against another group succeeded")
	}

	manifest, err := run(t, "license", "secret", "--group", "printing/plant-a", lic)
	if err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := yaml.Unmarshal([]byte(manifest), &secret); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(lic)
	if secret.Kind != "Secret" || secret.Namespace != "printing" || secret.Name != "plant-a-licenses" || !bytes.Equal(secret.Data["LIC-0001.lic"], want) {
		t.Fatalf("secret = %s/%s kind %s keys %v; want printing/plant-a-licenses holding LIC-0001.lic", secret.Namespace, secret.Name, secret.Kind, len(secret.Data))
	}
	if _, err := run(t, "license", "secret", "--group", "printing/plant-b", lic); err == nil || !strings.Contains(err.Error(), "bound to group printing/plant-a") {
		t.Fatalf("secret for another group = %v, want a refusal", err)
	}
	if _, err := run(t, "-n", "other", "license", "secret", "--group", "printing/plant-a", lic); err == nil {
		t.Fatal("secret with a --namespace different from the group's was accepted")
	}
}

// licenceServer is a license server of member a of printing/plant-a
// serving one licence, LIC-1 (3 printers), until the test ends.
func licenceServer(t *testing.T) *server.Server {
	t.Helper()
	pubKey, privKey, _ := licensing.GenerateKey()
	dir := t.TempDir()
	now := time.Now()
	data, err := licensing.Issue(privKey, licensing.License{ID: "LIC-1", Product: "LabelDesigner", Edition: licensing.EditionStandard,
		Printers: 3, Group: "printing/plant-a", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lic-1.lic"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Group: "printing/plant-a", Member: "a", DataDir: t.TempDir(), LicenseDir: dir,
		TrustedKeys: licensing.NewKeyRing(pubKey), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestClientCommands(t *testing.T) {
	srv := licenceServer(t)
	hs := httptest.NewServer(srv.ClientHandler(0))
	defer hs.Close()

	out, err := run(t, "client", "--endpoint", hs.URL, "--client-id", "cli", "checkout", "--printer", "zebra-1", "--license", "LabelDesigner", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var co client.Checkout
	if err := json.Unmarshal([]byte(out), &co); err != nil || co.License != "LIC-1" || co.ID == "" {
		t.Fatalf("checkout output %q (%v), want JSON with the checkout on LIC-1", out, err)
	}
	out, err = run(t, "client", "--endpoint", hs.URL, "status")
	if err != nil || !strings.Contains(out, "1/3") || !strings.Contains(out, "active") {
		t.Fatalf("status = %v\n%s; want one of three seats in use", err, out)
	}
	if _, err := run(t, "client", "--endpoint", hs.URL, "release", co.ID); err != nil {
		t.Fatal(err)
	}
	if got := srv.Status().Checkouts; got != 0 {
		t.Fatalf("checkouts after release = %d, want 0", got)
	}
	if _, err := run(t, "client", "--endpoint", hs.URL, "release", co.ID); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("second release = %v, want not_found", err)
	}
}

func TestClientCommandsWithTokenAndTLS(t *testing.T) {
	srv := licenceServer(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t)
	crt, key := ca.Issue(t, "127.0.0.1")
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	var tokens server.ClientTokens
	tokens.Set([]string{"station-token"})
	hs := httptest.NewUnstartedServer(server.RequireClientToken(&tokens, srv.ClientHandler(0)))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	hs.StartTLS()
	defer hs.Close()
	caFile, tokenFile, wrongFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tokens"), filepath.Join(dir, "wrong")
	for f, content := range map[string][]byte{caFile: ca.CertPEM, tokenFile: []byte("# the plant's token\nstation-token\n"), wrongFile: []byte("other\n")} {
		if err := os.WriteFile(f, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	out, err := run(t, "client", "--endpoint", hs.URL, "--token-file", tokenFile, "--ca-file", caFile, "status")
	if err != nil || !strings.Contains(out, "active") {
		t.Fatalf("status with token and CA = %v\n%s", err, out)
	}
	if _, err := run(t, "client", "--endpoint", hs.URL, "--token-file", wrongFile, "--ca-file", caFile, "status"); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("status with a wrong token = %v, want unauthorized", err)
	}
	if _, err := run(t, "client", "--endpoint", hs.URL, "--token-file", tokenFile, "status"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("status without the CA = %v, want a certificate error", err)
	}
}
