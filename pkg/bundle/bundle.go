// Package bundle implements the signed settings bundle that carries a
// backup pair's settings from the main to a disconnected backup (the two
// servers run in clusters that cannot reach each other).
//
// A bundle is a JSON document:
//
//	{
//	  "formatVersion": 1,
//	  "kind": "LicenseSettingsBundle",
//	  "pair": "<namespace>/<name>",
//	  "revision": 41,
//	  "epoch": 3,
//	  "takenAt": "2026-11-21T20:00:00Z",
//	  "createdAt": "2026-11-21T20:05:00Z",
//	  "settings": { ...the main server's settings... },
//	  "signature": {"algorithm": "ed25519", "keyId": "<key id>", "value": "<base64>"}
//	}
//
// The signature is an ed25519 signature over SigningContext followed by the
// canonical encoding of the bundle without its "signature" member: its
// fields as JSON with object keys sorted (also inside settings), no
// insignificant white space, number literals kept as written and times in
// RFC 3339 UTC. Re-indenting the file or reordering its keys therefore keeps
// the signature valid; changing any value does not. Unknown fields are
// refused, so nothing unsigned can ride along.
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/licenseha/licenseha/pkg/licensing"
)

const (
	// FormatVersion is the bundle format this package writes and reads.
	FormatVersion = 1
	// Kind identifies a settings bundle.
	Kind = "LicenseSettingsBundle"
	// Algorithm is the only signature algorithm.
	Algorithm = "ed25519"
	// SigningContext prefixes the signed bytes, so a bundle signature can
	// never be mistaken for the signature of another kind of document
	// signed with the same key (a licence, for example).
	SigningContext = "licenseha settings bundle v1\n"
	// MaxSize bounds the bundles Parse accepts.
	MaxSize = 16 << 20
)

// Errors returned by Parse, Verify and CheckNewer. Test with errors.Is.
var (
	ErrMalformed       = errors.New("malformed bundle")
	ErrUnknownFormat   = errors.New("unknown bundle format version")
	ErrUnsigned        = errors.New("bundle is not signed")
	ErrUntrustedKey    = errors.New("bundle is signed with a key that is not trusted")
	ErrBadSignature    = errors.New("bundle signature does not verify: the bundle was modified after signing or signed with another key")
	ErrNotNewer        = errors.New("bundle is not newer than the settings the backup already applied")
	ErrPairMismatch    = errors.New("bundle was exported for another pair")
	errMissingSettings = errors.New("settings must be a JSON object")
	errMissingPair     = errors.New(`pair must be "<namespace>/<name>"`)
	errMissingRevision = errors.New("revision must be at least 1")
)

// Signature is a bundle's signature.
type Signature struct {
	// Algorithm is always "ed25519".
	Algorithm string `json:"algorithm"`
	// KeyID names the signing key (licensing.KeyID of its public key).
	KeyID string `json:"keyId"`
	// Value is the base64 (standard encoding) signature.
	Value string `json:"value"`
}

// Bundle is a signed snapshot of a backup pair main's settings.
type Bundle struct {
	FormatVersion int    `json:"formatVersion"`
	Kind          string `json:"kind"`
	// Pair is <namespace>/<name> of the pair the settings were exported from.
	Pair string `json:"pair"`
	// Revision is the main's settings revision (the state ConfigMap's).
	Revision uint64 `json:"revision"`
	// Epoch is the fencing epoch the main published under.
	Epoch uint64 `json:"epoch,omitempty"`
	// TakenAt is when the main took the snapshot.
	TakenAt time.Time `json:"takenAt,omitzero"`
	// CreatedAt is when the bundle was exported.
	CreatedAt time.Time `json:"createdAt"`
	// Settings is the main server's settings (server.Settings as JSON).
	Settings json.RawMessage `json:"settings"`
	// Signature is set by Sign and checked by Verify.
	Signature *Signature `json:"signature,omitempty"`
}

// validate checks the fields every bundle must have.
func (b *Bundle) validate() error {
	if b.FormatVersion != FormatVersion {
		return fmt.Errorf("%w %d (this tool reads version %d); use a kubectl-licenseha of the same release as the exporting one", ErrUnknownFormat, b.FormatVersion, FormatVersion)
	}
	if b.Kind != Kind {
		return fmt.Errorf("%w: kind is %q, want %q", ErrMalformed, b.Kind, Kind)
	}
	if !validPair(b.Pair) {
		return fmt.Errorf("%w: %w, got %q", ErrMalformed, errMissingPair, b.Pair)
	}
	if b.Revision == 0 {
		return fmt.Errorf("%w: %w", ErrMalformed, errMissingRevision)
	}
	if t := bytes.TrimSpace(b.Settings); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: %w", ErrMalformed, errMissingSettings)
	}
	return nil
}

func validPair(p string) bool {
	i := bytes.IndexByte([]byte(p), '/')
	return i > 0 && i < len(p)-1 && bytes.Count([]byte(p), []byte("/")) == 1
}

// New returns an unsigned bundle for settings (JSON) of pair at revision.
func New(pair string, revision, epoch uint64, takenAt time.Time, settings []byte, now time.Time) (*Bundle, error) {
	canon, err := Canonical(settings)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	b := &Bundle{FormatVersion: FormatVersion, Kind: Kind, Pair: pair, Revision: revision, Epoch: epoch,
		TakenAt: takenAt.UTC(), CreatedAt: now.UTC().Truncate(time.Second), Settings: canon}
	if err := b.validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// signedBytes returns what the signature covers: SigningContext and the
// canonical encoding of the bundle without its signature.
func (b *Bundle) signedBytes() ([]byte, error) {
	c := *b
	c.Signature = nil
	raw, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	canon, err := Canonical(raw)
	if err != nil {
		return nil, err
	}
	return append([]byte(SigningContext), canon...), nil
}

// Sign signs the bundle with priv, replacing any earlier signature.
func (b *Bundle) Sign(priv ed25519.PrivateKey) error {
	if err := b.validate(); err != nil {
		return err
	}
	msg, err := b.signedBytes()
	if err != nil {
		return err
	}
	pub, ok := priv.Public().(ed25519.PublicKey)
	if !ok {
		return errors.New("not an ed25519 private key")
	}
	b.Signature = &Signature{Algorithm: Algorithm, KeyID: licensing.KeyID(pub),
		Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))}
	return nil
}

// Verify checks the bundle's signature against the trusted keys.
func (b *Bundle) Verify(trusted licensing.KeyRing) error {
	if err := b.validate(); err != nil {
		return err
	}
	if b.Signature == nil || b.Signature.Value == "" {
		return ErrUnsigned
	}
	if b.Signature.Algorithm != Algorithm {
		return fmt.Errorf("%w: signature algorithm %q, want %q", ErrMalformed, b.Signature.Algorithm, Algorithm)
	}
	pub, ok := trusted[b.Signature.KeyID]
	if !ok {
		return fmt.Errorf("%w: key %s (trusted: %v)", ErrUntrustedKey, b.Signature.KeyID, trusted.IDs())
	}
	sig, err := base64.StdEncoding.DecodeString(b.Signature.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	msg, err := b.signedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// CheckNewer refuses a bundle whose revision is not above applied, the
// revision the target backup already holds.
func (b *Bundle) CheckNewer(applied uint64) error {
	if b.Revision <= applied {
		return fmt.Errorf("%w: bundle revision %d, backup already at revision %d", ErrNotNewer, b.Revision, applied)
	}
	return nil
}

// CheckPair refuses a bundle exported for another pair than want
// (<namespace>/<name>).
func (b *Bundle) CheckPair(want string) error {
	if b.Pair != want {
		return fmt.Errorf("%w: bundle is for %s, target is %s", ErrPairMismatch, b.Pair, want)
	}
	return nil
}

// Marshal returns the bundle as indented JSON ending in a newline.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Parse reads a bundle without verifying its signature (call Verify). It
// refuses unknown format versions before anything else, unknown fields,
// trailing data and bundles larger than MaxSize.
func Parse(data []byte) (*Bundle, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d MiB", ErrMalformed, MaxSize>>20)
	}
	var head struct {
		FormatVersion *int `json:"formatVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if head.FormatVersion == nil {
		return nil, fmt.Errorf("%w: no formatVersion; is this a settings bundle?", ErrMalformed)
	}
	if *head.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w %d (this tool reads version %d); use a kubectl-licenseha of the same release as the exporting one", ErrUnknownFormat, *head.FormatVersion, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the bundle", ErrMalformed)
	}
	if err := b.validate(); err != nil {
		return nil, err
	}
	canon, err := Canonical(b.Settings)
	if err != nil {
		return nil, fmt.Errorf("%w: settings: %v", ErrMalformed, err)
	}
	b.Settings = canon
	return &b, nil
}

// ParseAndVerify parses a bundle and verifies its signature.
func ParseAndVerify(data []byte, trusted licensing.KeyRing) (*Bundle, error) {
	b, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := b.Verify(trusted); err != nil {
		return nil, err
	}
	return b, nil
}

// Canonical re-encodes a JSON value with object keys sorted and no
// insignificant white space; number literals are kept as written.
func Canonical(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
