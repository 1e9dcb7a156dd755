package licensing

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testLicense() License {
	return License{
		ID: "LIC-0001", Product: "LabelDesigner", Edition: EditionEnterprise, Printers: 5,
		Group: "printing/plant-a", Licensee: "ACME", IssuedAt: t0,
		NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0),
	}
}

func mustKey(t testing.TB) (KeyRing, []byte, func(License) []byte) {
	t.Helper()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	issue := func(l License) []byte {
		data, err := Issue(priv, l)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	pem, err := EncodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return NewKeyRing(pub), pem, issue
}

func TestVerify(t *testing.T) {
	ring, _, issue := mustKey(t)
	otherRing, _, _ := mustKey(t)
	good := issue(testLicense())

	tampered := bytes.Replace(good, []byte(`"printers": 5,`), []byte(`"printers": 500,`), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("test setup: printers field not found in licence file")
	}

	cases := []struct {
		name    string
		data    []byte
		keys    KeyRing
		group   string
		now     time.Time
		wantErr error
		wantMsg string
	}{
		{"valid", good, ring, "printing/plant-a", t0.Add(time.Hour), nil, ""},
		{"tampered", tampered, ring, "printing/plant-a", t0.Add(time.Hour), ErrTampered, "changed after it was signed"},
		{"untrusted key", good, otherRing, "printing/plant-a", t0.Add(time.Hour), ErrUntrustedKey, "signed by key"},
		{"expired", good, ring, "printing/plant-a", t0.AddDate(2, 0, 0), ErrExpired, "expired at 2027-01-01T00:00:00Z"},
		{"not yet valid", good, ring, "printing/plant-a", t0.Add(-time.Hour), ErrNotYetValid, "valid from 2026-01-01T00:00:00Z"},
		{"wrong group", good, ring, "printing/plant-b", t0.Add(time.Hour), ErrWrongGroup, `bound to group "printing/plant-a"`},
		{"not json", []byte("hello"), ring, "printing/plant-a", t0, ErrMalformed, "malformed"},
		{"unknown field", bytes.Replace(good, []byte(`"format"`), []byte(`"extra":1,"format"`), 1), ring, "printing/plant-a", t0, ErrMalformed, "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Verify(tc.data, tc.keys, tc.group, tc.now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil {
				if l.ID != "LIC-0001" || l.Printers != 5 || l.Edition != EditionEnterprise {
					t.Fatalf("Verify() = %+v, want the issued terms", l)
				}
				return
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Verify() error %q does not explain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestReindentedFileStillVerifies(t *testing.T) {
	ring, _, issue := mustKey(t)
	var compact bytes.Buffer
	if err := json.Compact(&compact, issue(testLicense())); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(compact.Bytes(), ring, "printing/plant-a", t0.Add(time.Hour)); err != nil {
		t.Fatalf("compacted licence refused: %v", err)
	}
}

func TestIssueRefusesIncompleteTerms(t *testing.T) {
	_, key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	l := testLicense()
	l.Edition = "Gold"
	l.Printers = 0
	l.Group = "plant-a"
	_, err = Issue(key, l)
	for _, want := range []string{"edition \"Gold\"", "printers is 0", "<namespace>/<name>"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Issue() error = %v, want it to mention %q", err, want)
		}
	}
}

func TestKeysRoundTripThroughPEM(t *testing.T) {
	pub1, priv1, _ := GenerateKey()
	pub2, _, _ := GenerateKey()
	p1, _ := EncodePublicKey(pub1)
	p2, _ := EncodePublicKey(pub2)
	ring, err := ParseTrustedKeys(append(p1, p2...))
	if err != nil {
		t.Fatal(err)
	}
	if len(ring) != 2 || !ring[KeyID(pub1)].Equal(pub1) || !ring[KeyID(pub2)].Equal(pub2) {
		t.Fatalf("ParseTrustedKeys() = %v, want both keys", ring.IDs())
	}
	privPEM, _ := EncodePrivateKey(priv1)
	back, err := ParsePrivateKey(privPEM)
	if err != nil || !back.Equal(priv1) {
		t.Fatalf("ParsePrivateKey() = %v, want the original key", err)
	}
	if _, err := ParseTrustedKeys(privPEM); err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("ParseTrustedKeys(private key) error = %v, want a refusal naming the block type", err)
	}
}

func FuzzVerify(f *testing.F) {
	ring, _, issue := mustKey(f)
	good := issue(testLicense())
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"printers": 5,`), []byte(`"printers": 6,`), 1))
	f.Add([]byte(`{"format":"licenseha.io/license/v1","keyId":"x","license":{},"signature":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Verify(data, ring, "printing/plant-a", t0.Add(time.Hour))
		if err == nil {
			if l == nil {
				t.Fatal("Verify() accepted a licence but returned no terms")
			}
			// Whatever was accepted must be the issued licence: the fuzzer
			// cannot forge a signature, only re-encode the signed terms.
			want := testLicense()
			if l.ID != want.ID || l.Printers != want.Printers || l.Group != want.Group || !l.NotAfter.Equal(want.NotAfter) {
				t.Fatalf("Verify() accepted altered terms %+v", l)
			}
		}
	})
}

func TestVerifyFiles(t *testing.T) {
	ring, _, issue := mustKey(t)
	good := issue(testLicense())
	other := testLicense()
	other.ID = "LIC-0002"
	other.Group = "printing/plant-b"
	got := VerifyFiles(map[string][]byte{
		"b-copy.lic": good, "a.lic": good, "c.lic": issue(other), "d.lic": []byte("{"),
	}, ring, "printing/plant-a", t0.Add(time.Hour))
	want := []struct {
		name string
		err  error
	}{{"a.lic", nil}, {"b-copy.lic", ErrDuplicate}, {"c.lic", ErrWrongGroup}, {"d.lic", ErrMalformed}}
	if len(got) != len(want) {
		t.Fatalf("VerifyFiles() returned %d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || !errors.Is(got[i].Err, w.err) {
			t.Errorf("result %d = %s %v, want %s %v", i, got[i].Name, got[i].Err, w.name, w.err)
		}
	}
	if got[2].License == nil || got[2].License.ID != "LIC-0002" {
		t.Errorf("a refused licence with a good signature lost its terms: %+v", got[2].License)
	}
	if !strings.Contains(got[1].Err.Error(), "also in a.lic") {
		t.Errorf("duplicate refusal %q does not name the first file", got[1].Err)
	}
}
