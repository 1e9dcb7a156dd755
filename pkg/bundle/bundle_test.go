package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/licenseha/licenseha/pkg/licensing"
)

const testSettings = `{"access":{"allowUsers":["ops-*"],"denyAddresses":["10.0.0.0/8"]},"partitions":{"hall":{"LIC-1":5}}}`

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func signed(t testing.TB, priv ed25519.PrivateKey, rev uint64) []byte {
	t.Helper()
	b, err := New("printing/plant-b", rev, 3, time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), []byte(testSettings), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(priv); err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRoundTrip(t *testing.T) {
	pub, priv := newKey(t)
	data := signed(t, priv, 41)
	b, err := ParseAndVerify(data, licensing.NewKeyRing(pub))
	if err != nil {
		t.Fatal(err)
	}
	if b.Pair != "printing/plant-b" || b.Revision != 41 || b.Epoch != 3 || b.FormatVersion != FormatVersion {
		t.Fatalf("bundle = %+v", b)
	}
	var got, want any
	_ = json.Unmarshal(b.Settings, &got)
	_ = json.Unmarshal([]byte(testSettings), &want)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("settings = %s, want %s", b.Settings, testSettings)
	}
	if err := b.CheckNewer(40); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckPair("printing/plant-b"); err != nil {
		t.Fatal(err)
	}
}

func TestReformattedBundleStillVerifies(t *testing.T) {
	pub, priv := newKey(t)
	data := signed(t, priv, 7)
	// Compact and reorder keys, the way a JSON tool might rewrite the file.
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(v) // sorted keys, no indentation
	if _, err := ParseAndVerify(compact, licensing.NewKeyRing(pub)); err != nil {
		t.Fatalf("reformatted bundle refused: %v", err)
	}
}

func TestTampered(t *testing.T) {
	pub, priv := newKey(t)
	ring := licensing.NewKeyRing(pub)
	data := signed(t, priv, 41)
	cases := map[string]func(map[string]any){
		"settings":  func(m map[string]any) { m["settings"].(map[string]any)["allowedPrinters"] = []any{"*"} },
		"revision":  func(m map[string]any) { m["revision"] = 99 },
		"pair":      func(m map[string]any) { m["pair"] = "printing/other" },
		"createdAt": func(m map[string]any) { m["createdAt"] = "2030-01-01T00:00:00Z" },
		"signature": func(m map[string]any) {
			m["signature"].(map[string]any)["value"] = strings.Repeat("A", 86) + "=="
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			mutate(m)
			out, _ := json.Marshal(m)
			if _, err := ParseAndVerify(out, ring); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered %s: err = %v, want ErrBadSignature", name, err)
			}
		})
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	m["extra"] = "smuggled"
	out, _ := json.Marshal(m)
	if _, err := ParseAndVerify(out, ring); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown field: err = %v, want ErrMalformed", err)
	}
	delete(m, "extra")
	delete(m, "signature")
	out, _ = json.Marshal(m)
	if _, err := ParseAndVerify(out, ring); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: err = %v, want ErrUnsigned", err)
	}
}

func TestWrongKey(t *testing.T) {
	_, priv := newKey(t)
	other, _ := newKey(t)
	data := signed(t, priv, 41)
	_, err := ParseAndVerify(data, licensing.NewKeyRing(other))
	if !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("err = %v, want ErrUntrustedKey", err)
	}
	// A forged key id naming the trusted key does not help either.
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	m["signature"].(map[string]any)["keyId"] = licensing.KeyID(other)
	out, _ := json.Marshal(m)
	if _, err := ParseAndVerify(out, licensing.NewKeyRing(other)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged key id: err = %v, want ErrBadSignature", err)
	}
}

func TestOlderRevision(t *testing.T) {
	pub, priv := newKey(t)
	b, err := ParseAndVerify(signed(t, priv, 41), licensing.NewKeyRing(pub))
	if err != nil {
		t.Fatal(err)
	}
	for _, applied := range []uint64{41, 42, 1000} {
		if err := b.CheckNewer(applied); !errors.Is(err, ErrNotNewer) {
			t.Fatalf("applied %d: err = %v, want ErrNotNewer", applied, err)
		}
	}
	if err := b.CheckPair("printing/plant-c"); !errors.Is(err, ErrPairMismatch) {
		t.Fatalf("CheckPair = %v, want ErrPairMismatch", err)
	}
}

func TestUnknownFormatVersion(t *testing.T) {
	pub, priv := newKey(t)
	data := signed(t, priv, 41)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	m["formatVersion"] = 2
	m["someFutureField"] = true
	out, _ := json.Marshal(m)
	_, err := ParseAndVerify(out, licensing.NewKeyRing(pub))
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "2") {
		t.Fatalf("err = %v, want ErrUnknownFormat naming version 2", err)
	}
	if _, err := Parse([]byte(`{"kind":"LicenseSettingsBundle"}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no formatVersion: err = %v, want ErrMalformed", err)
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `{"formatVersion":1}`,
		`{"formatVersion":1,"kind":"LicenseSettingsBundle","pair":"x","revision":1,"createdAt":"2026-01-01T00:00:00Z","settings":{}}`,
		`{"formatVersion":1,"kind":"LicenseSettingsBundle","pair":"a/b","revision":0,"createdAt":"2026-01-01T00:00:00Z","settings":{}}`,
		`{"formatVersion":1,"kind":"LicenseSettingsBundle","pair":"a/b","revision":1,"createdAt":"2026-01-01T00:00:00Z","settings":[]}`,
		`{"formatVersion":1,"kind":"LicenseSettingsBundle","pair":"a/b","revision":1,"createdAt":"2026-01-01T00:00:00Z","settings":{}} {}`,
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	pub, priv := newKey(f)
	ring := licensing.NewKeyRing(pub)
	f.Add(signed(f, priv, 41))
	f.Add([]byte(`{"formatVersion":1,"kind":"LicenseSettingsBundle","pair":"a/b","revision":1,"createdAt":"2026-01-01T00:00:00Z","settings":{"x":1e400}}`))
	f.Add([]byte(`{"formatVersion":2}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err != nil {
			return
		}
		verr := b.Verify(ring)
		// What parses must survive a marshal/parse round trip unchanged,
		// with the same verification result.
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed bundle: %v", err)
		}
		b2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		m1, _ := b.signedBytes()
		m2, _ := b2.signedBytes()
		if !bytes.Equal(m1, m2) {
			t.Fatalf("signed bytes changed on round trip:\n%s\n%s", m1, m2)
		}
		if (verr == nil) != (b2.Verify(ring) == nil) {
			t.Fatalf("verification changed on round trip: %v", verr)
		}
	})
}
