package main

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

// Secret values planted in the test objects; none may survive a report.
const (
	plantedAdminToken  = "admintoken-9f8e7d6c5b4a3921"
	plantedClientToken = "tok-beta-654321abc"
	plantedShortPIN    = "pin7"
	plantedSignature   = "c2lnbmF0dXJlLWJ5dGVzLW9mLWEtbGljZW5jZS0xMjM0NTY3OA=="
)

// plantedLicence is a licence file as `license issue` writes it: the
// signature is what makes it a licence.
var plantedLicence = `{
  "format": "licenseha.io/license/v1",
  "keyId": "3f2a9c0d11223344",
  "license": {"id": "LIC-0001", "product": "LabelDesigner", "edition": "Enterprise", "printers": 50},
  "signature": "` + plantedSignature + `"
}
`

const plantedPrivateKey = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ5o8Qh2tYl0mZ1uXcTestTestTestTestTestTestTest\n-----END PRIVATE KEY-----\n"

func plantedSecrets() []*corev1.Secret {
	return []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-licenses",
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"lic-0001.json":"` + base64.StdEncoding.EncodeToString([]byte(plantedLicence)) + `"}}`}},
			Data: map[string][]byte{"lic-0001.json": []byte(plantedLicence)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-admin"}, Data: map[string][]byte{"token": []byte(plantedAdminToken)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-client-tokens"},
			Data: map[string][]byte{"tokens": []byte("# client tokens\ntok-alpha-123456xyz\n" + plantedClientToken + "\n"), "pin": []byte(plantedShortPIN)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-state"}, Data: map[string][]byte{"revision": []byte("41")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-client-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.key": []byte(plantedPrivateKey), "tls.crt": []byte("-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n")}},
	}
}

// secretNeedles are the strings no file of a report may contain.
func secretNeedles() []string {
	return []string{plantedAdminToken, plantedClientToken, "tok-alpha-123456xyz", plantedSignature,
		base64.StdEncoding.EncodeToString([]byte(plantedLicence)), base64.StdEncoding.EncodeToString([]byte(plantedAdminToken)),
		"MC4CAQAwBQYDK2VwBCIEIJ5o8Qh2tYl0mZ1uXcTestTestTestTestTestTestTest", "BEGIN PRIVATE KEY"}
}

func unzipReport(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the report is not a zip: %v", err)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		_ = rc.Close()
		_, rest, _ := strings.Cut(f.Name, "/")
		files[rest] = string(b)
	}
	return files
}

func assertNoSecrets(t *testing.T, files map[string]string) {
	t.Helper()
	for path, text := range files {
		for _, n := range secretNeedles() {
			if strings.Contains(text, n) {
				t.Errorf("%s contains the secret value %q:\n%s", path, n, text)
			}
		}
		for _, line := range strings.Split(text, "\n") {
			for _, f := range strings.FieldsFunc(line, func(r rune) bool { return !wordByte(byte(r)) && r < 128 }) {
				if f == plantedShortPIN {
					t.Errorf("%s contains the short secret %q standing alone: %q", path, plantedShortPIN, line)
				}
			}
		}
	}
}

func TestReportBundleRedactsEverySecretValue(t *testing.T) {
	r := newRedactor()
	for _, s := range plantedSecrets() {
		r.addSecret(s, func(secret, key string) bool { return secret == "plant-a-state" && key == "revision" })
	}
	b := &reportBundle{Root: "licenseha-report-printing-plant-a-20261121T120000Z", Kind: "LicenseTriad", Namespace: "printing",
		Name: "plant-a", CreatedAt: testNow, Plugin: "v0.0.0-test"}
	b.add("logs/plant-a-a/server.log", "log", []byte(
		"2026-11-21T10:00:00Z agent: admin token loaded: "+plantedAdminToken+"\n"+
			"2026-11-21T10:00:01Z server: client "+plantedClientToken+" checked out zebra-1\n"+
			"2026-11-21T10:00:02Z server: loaded licence "+plantedLicence+
			"2026-11-21T10:00:03Z server: GET /v1/status Authorization: Bearer eyJhbGciOiJFZERTQSJ9.payload.sig\n"+
			"2026-11-21T10:00:04Z agent: smtp password=hunter2hunter2 rejected\n"+
			"2026-11-21T10:00:05Z agent: pin "+plantedShortPIN+" accepted; spin7x is a printer\n"+
			"2026-11-21T10:00:06Z agent: synced revision 41\n"))
	b.add("configmaps/plant-a-settings.yaml", "cm", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plant-a-settings\n"+
		"  annotations:\n    note: token is "+plantedAdminToken+"\ndata:\n  settings.yaml: |\n    token: "+plantedClientToken+"\n"))
	b.add("pods/plant-a-a.yaml", "pod", []byte("metadata:\n  annotations:\n    debug: "+base64.StdEncoding.EncodeToString([]byte(plantedAdminToken))+"\n"+
		"spec:\n  containers:\n  - env:\n    - name: KEY\n      value: |\n"+strings.ReplaceAll(plantedPrivateKey, "\n", "\n        ")+"\n"))
	var summaries []SecretSummary
	for _, s := range plantedSecrets() {
		summaries = append(summaries, summarizeSecret(s, []string{"test"}))
	}
	sy, _ := yaml.Marshal(map[string]any{"secrets": summaries})
	b.add("secrets.yaml", "secrets", sy)
	b.fail("logs/plant-a-c/server.log", errors.New(`container "server" in pod "plant-a-c" is waiting to start: ContainerCreating`))
	b.skip("logs/plant-a-a/server.previous.log", "container server of pod plant-a-a has not restarted: there is no previous log")

	var out bytes.Buffer
	if err := writeReportZip(&out, b, r); err != nil {
		t.Fatal(err)
	}
	files := unzipReport(t, out.Bytes())
	assertNoSecrets(t, files)

	for _, p := range []string{"logs/plant-a-a/server.log", "configmaps/plant-a-settings.yaml", "pods/plant-a-a.yaml", "secrets.yaml", "README.md", "manifest.json"} {
		if _, ok := files[p]; !ok {
			t.Errorf("the report lacks %s; it has %v", p, keys(files))
		}
	}
	log := files["logs/plant-a-a/server.log"]
	for _, want := range []string{"admin token loaded: [REDACTED]", "client [REDACTED] checked out zebra-1", `"signature": "[REDACTED]"`,
		"Bearer [REDACTED]", "password=[REDACTED]", "pin [REDACTED] accepted; spin7x is a printer", "synced revision 41", "checked out zebra-1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if !strings.Contains(files["configmaps/plant-a-settings.yaml"], "note: token is [REDACTED]") {
		t.Errorf("annotation not redacted:\n%s", files["configmaps/plant-a-settings.yaml"])
	}
	// Secrets appear as names, keys and sizes only.
	sec := files["secrets.yaml"]
	for _, want := range []string{"name: plant-a-admin", "key: token", "bytes: " + itoa(len(plantedAdminToken)), "key: lic-0001.json",
		"bytes: " + itoa(len(plantedLicence)), "key: tls.key", "type: kubernetes.io/tls"} {
		if !strings.Contains(sec, want) {
			t.Errorf("secrets.yaml lacks %q:\n%s", want, sec)
		}
	}
	if strings.Contains(sec, "last-applied-configuration") || strings.Contains(sec, "LabelDesigner") || strings.Contains(sec, "BEGIN CERTIFICATE") {
		t.Errorf("secrets.yaml shows more than names, keys and sizes:\n%s", sec)
	}
	// The failed piece is listed, with its reason, and the rest is written.
	readme := files["README.md"]
	nc := readme[strings.Index(readme, "## Not collected"):]
	if !strings.Contains(nc, "logs/plant-a-c/server.log: container \"server\" in pod \"plant-a-c\" is waiting to start") ||
		!strings.Contains(nc, "logs/plant-a-a/server.previous.log") {
		t.Errorf("README does not list what was not collected:\n%s", readme)
	}
	if !strings.Contains(readme, "| `logs/plant-a-a/server.log` |") {
		t.Errorf("README does not list what was collected:\n%s", readme)
	}
	var m reportManifest
	if err := json.Unmarshal([]byte(files["manifest.json"]), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Failed) != 1 || m.Failed[0].What != "logs/plant-a-c/server.log" || len(m.Files) != 4 {
		t.Errorf("manifest: failed %+v, files %+v", m.Failed, m.Files)
	}
	for _, f := range m.Files {
		if f.Path == "logs/plant-a-a/server.log" && f.Redactions < 6 {
			t.Errorf("manifest counts %d redactions in the log, want at least 6", f.Redactions)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRedactorBounds(t *testing.T) {
	r := newRedactor()
	r.addValue("41")            // too short to tell from text: left alone
	r.addValue("abcd")          // short: only where it stands alone
	r.addValue("longsecret123") // replaced anywhere, even inside words
	got, n := r.redact("rev 41; abcd abcdef xabcd; prefixlongsecret123suffix")
	if want := "rev 41; [REDACTED] abcdef xabcd; prefix[REDACTED]suffix"; got != want || n != 2 {
		t.Fatalf("redact = %q (%d), want %q (2)", got, n, want)
	}
}

func TestConfigMapBinaryDataIsDecompressedOrLeftOut(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plant-a-state"},
		Data:       map[string]string{"revision": "41"},
		BinaryData: map[string][]byte{"settings.json.gz": gz(t, `{"allowedPrinters":["zebra-*"]}`), "blob.bin": {0xff, 0xfe, 0x00}}}
	shown, extra := configMapForReport(cm)
	if shown.BinaryData != nil || cm.BinaryData == nil {
		t.Fatalf("binaryData shown %v, original %v", shown.BinaryData, cm.BinaryData)
	}
	if len(extra.files) != 1 || extra.files[0].Path != "configmaps/plant-a-state/settings.json" || !strings.Contains(string(extra.files[0].Data), "zebra-*") {
		t.Fatalf("decompressed files %+v", extra.files)
	}
	if !strings.Contains(extra.header, "blob.bin: 3 bytes of binary data, left out") {
		t.Fatalf("header %q", extra.header)
	}
}

func TestSecretRefsFindsEveryReference(t *testing.T) {
	spec := map[string]any{
		"licenseSecretRef": map[string]any{"name": "lic"},
		"clientAccess":     map[string]any{"tokenSecretRef": map[string]any{"name": "tokens", "key": "tokens"}, "tls": map[string]any{"secretRef": map[string]any{"name": "tls"}}},
		"notifications":    map[string]any{"email": map[string]any{"credentialsSecretRef": map[string]any{"name": "smtp"}}},
		"server": map[string]any{"imagePullSecrets": []any{map[string]any{"name": "pull"}},
			"env": []any{map[string]any{"valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "env", "key": "k"}}}}},
		"volumes": []any{map[string]any{"secret": map[string]any{"secretName": "vol"}},
			map[string]any{"projected": map[string]any{"sources": []any{map[string]any{"secret": map[string]any{"name": "proj"}}}}}},
	}
	found := map[string]bool{}
	secretRefs(spec, "spec", func(name, _ string) { found[name] = true })
	for _, want := range []string{"lic", "tokens", "tls", "smtp", "pull", "env", "vol", "proj"} {
		if !found[want] {
			t.Errorf("reference to Secret %q not found (found %v)", want, found)
		}
	}
}

func TestLogOptionsMapping(t *testing.T) {
	f := &logFlags{follow: true, previous: true, timestamps: true, tail: 20, since: 90*time.Second + time.Millisecond, limitBytes: 4096}
	o, err := f.podLogOptions("server")
	if err != nil {
		t.Fatal(err)
	}
	if o.Container != "server" || !o.Follow || !o.Previous || !o.Timestamps || *o.TailLines != 20 || *o.SinceSeconds != 91 || *o.LimitBytes != 4096 || o.SinceTime != nil {
		t.Fatalf("options %+v", o)
	}
	o, err = (&logFlags{tail: -1, sinceTime: "2026-11-21T10:00:00Z"}).podLogOptions("")
	if err != nil || o.TailLines != nil || o.SinceSeconds != nil || o.LimitBytes != nil || !o.SinceTime.Equal(&metav1.Time{Time: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}) {
		t.Fatalf("options %+v, %v", o, err)
	}
	if _, err := (&logFlags{since: time.Minute, sinceTime: "2026-11-21T10:00:00Z"}).podLogOptions(""); err == nil {
		t.Fatal("--since with --since-time accepted")
	}
	if _, err := (&logFlags{sinceTime: "yesterday"}).podLogOptions(""); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("bad --since-time: %v", err)
	}
}

func TestCopyLinesPrefixesEveryLine(t *testing.T) {
	var out bytes.Buffer
	w := &lineWriter{w: &out}
	if err := copyLines(w, strings.NewReader("one\ntwo\nthree"), "[a] "); err != nil {
		t.Fatal(err)
	}
	if out.String() != "[a] one\n[a] two\n[a] three\n" {
		t.Fatalf("%q", out.String())
	}
}

func TestReadRetryRetriesTransientErrorsOnly(t *testing.T) {
	defer func(b wait.Backoff) { readBackoff = b }(readBackoff)
	readBackoff = wait.Backoff{Steps: 5, Duration: time.Millisecond, Factor: 1}
	ctx := t.Context()
	calls := 0
	err := readRetry(ctx, func() error {
		calls++
		if calls < 3 {
			return apierrors.NewTooManyRequests("slow down", 0)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("throttled read: %v after %d calls, want success after 3", err, calls)
	}
	calls = 0
	err = readRetry(ctx, func() error {
		calls++
		return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "x")
	})
	if !apierrors.IsNotFound(err) || calls != 1 {
		t.Fatalf("not found: %v after %d calls, want it at once", err, calls)
	}
	calls = 0
	err = readRetry(ctx, func() error {
		calls++
		return apierrors.NewServerTimeout(schema.GroupResource{Resource: "pods"}, "get", 1)
	})
	if !apierrors.IsServerTimeout(err) || calls != 5 {
		t.Fatalf("server timeouts: %v after %d calls, want the error after 5", err, calls)
	}
}
