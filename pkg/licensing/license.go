package licensing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Format identifies the licence file format and is covered by the signature.
const Format = "licenseha.io/license/v1"

// MaxFileSize bounds the size of a licence file; larger input is malformed.
const MaxFileSize = 64 << 10

// Edition is the commercial edition of a licence.
type Edition string

// Editions a licence may carry. Only Enterprise licences may serve a
// LicenseTriad; a LicenseBackupPair needs one on at least one side.
const (
	EditionEnterprise   Edition = "Enterprise"
	EditionProfessional Edition = "Professional"
	EditionStandard     Edition = "Standard"
)

// Editions lists the known editions.
var Editions = []Edition{EditionEnterprise, EditionProfessional, EditionStandard}

func (e Edition) valid() bool {
	for _, k := range Editions {
		if e == k {
			return true
		}
	}
	return false
}

// License holds the terms of a licence.
type License struct {
	// ID identifies the licence, e.g. "LIC-0001".
	ID string `json:"id"`
	// Product is the licensed product, e.g. "LabelDesigner".
	Product string `json:"product"`
	// Edition is the commercial edition.
	Edition Edition `json:"edition"`
	// Printers is the number of printer seats: how many distinct
	// (client, printer) pairs may hold a checkout at the same time.
	Printers int `json:"printers"`
	// Group is the redundancy group the licence is bound to, as
	// "<namespace>/<name>" of a LicenseTriad or LicenseBackupPair.
	Group string `json:"group"`
	// Licensee names the customer; informational.
	Licensee string `json:"licensee,omitempty"`
	// IssuedAt is when the licence was signed; informational.
	IssuedAt time.Time `json:"issuedAt"`
	// NotBefore is the first instant the licence is valid.
	NotBefore time.Time `json:"notBefore"`
	// NotAfter is the last instant the licence is valid.
	NotAfter time.Time `json:"notAfter"`
}

// Validate checks that the terms are complete and consistent.
func (l *License) Validate() error {
	var errs []error
	if strings.TrimSpace(l.ID) == "" {
		errs = append(errs, errors.New("id is empty"))
	}
	if strings.TrimSpace(l.Product) == "" {
		errs = append(errs, errors.New("product is empty"))
	}
	if !l.Edition.valid() {
		errs = append(errs, fmt.Errorf("edition %q is not one of %v", l.Edition, Editions))
	}
	if l.Printers < 1 {
		errs = append(errs, fmt.Errorf("printers is %d, want at least 1", l.Printers))
	}
	if err := ValidateGroup(l.Group); err != nil {
		errs = append(errs, err)
	}
	if l.NotBefore.IsZero() || l.NotAfter.IsZero() {
		errs = append(errs, errors.New("notBefore and notAfter must both be set"))
	} else if !l.NotAfter.After(l.NotBefore) {
		errs = append(errs, errors.New("notAfter must be later than notBefore"))
	}
	return errors.Join(errs...)
}

// ValidateGroup checks that group has the form "<namespace>/<name>".
func ValidateGroup(group string) error {
	ns, name, ok := strings.Cut(group, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("group %q is not of the form <namespace>/<name>", group)
	}
	return nil
}

// file is the on-disk envelope of a licence.
type file struct {
	Format    string          `json:"format"`
	KeyID     string          `json:"keyId"`
	License   json.RawMessage `json:"license"`
	Signature []byte          `json:"signature"`
}

// signedBytes is the message the signature covers: the format, the key id and
// the canonical (Go struct order, compact) JSON encoding of the terms. Since
// the terms are re-encoded before checking, re-indenting a file does not break
// it, while any change to a value does.
func signedBytes(keyID string, l *License) ([]byte, error) {
	terms, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(Format)+len(keyID)+len(terms)+2)
	msg = append(msg, Format...)
	msg = append(msg, '\n')
	msg = append(msg, keyID...)
	msg = append(msg, '\n')
	return append(msg, terms...), nil
}

// Issue signs a licence with priv and returns the licence file. The terms
// are validated first; times are stored in UTC.
func Issue(priv ed25519.PrivateKey, l License) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("signing key is not an ed25519 private key")
	}
	l.IssuedAt = l.IssuedAt.UTC()
	l.NotBefore = l.NotBefore.UTC()
	l.NotAfter = l.NotAfter.UTC()
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("invalid licence: %w", err)
	}
	keyID := KeyID(priv.Public().(ed25519.PublicKey))
	msg, err := signedBytes(keyID, &l)
	if err != nil {
		return nil, err
	}
	terms, err := json.Marshal(&l)
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(file{
		Format:    Format,
		KeyID:     keyID,
		License:   terms,
		Signature: ed25519.Sign(priv, msg),
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Parse decodes a licence file without checking its signature or validity.
// It returns the terms and the id of the key that claims to have signed them.
// Use Verify to decide whether a licence may be used.
func Parse(data []byte) (*License, string, error) {
	f, l, err := parse(data)
	if err != nil {
		return nil, "", err
	}
	return l, f.KeyID, nil
}

func parse(data []byte) (*file, *License, error) {
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("%w: file is larger than %d bytes", ErrMalformed, MaxFileSize)
	}
	var f file
	if err := strictUnmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if f.Format != Format {
		return nil, nil, fmt.Errorf("%w: format is %q, want %q", ErrMalformed, f.Format, Format)
	}
	if f.KeyID == "" {
		return nil, nil, fmt.Errorf("%w: keyId is missing", ErrMalformed)
	}
	if len(f.License) == 0 {
		return nil, nil, fmt.Errorf("%w: license is missing", ErrMalformed)
	}
	if len(f.Signature) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(f.Signature), ed25519.SignatureSize)
	}
	var l License
	if err := strictUnmarshal(f.License, &l); err != nil {
		return nil, nil, fmt.Errorf("%w: license terms: %v", ErrMalformed, err)
	}
	return &f, &l, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON document")
	}
	return nil
}

// Verify decides whether a licence file may be used by the group at time
// now. It checks, in order: the file is well formed (ErrMalformed), its key
// is trusted (ErrUntrustedKey), the signature matches the terms
// (ErrTampered), the terms are complete (ErrMalformed), the validity window
// contains now (ErrNotYetValid, ErrExpired) and the licence is bound to group
// (ErrWrongGroup).
//
// Once the signature has been checked, the terms are returned even when the
// licence is refused, so callers can report which licence was refused.
func Verify(data []byte, keys KeyRing, group string, now time.Time) (*License, error) {
	f, l, err := parse(data)
	if err != nil {
		return nil, err
	}
	pub, ok := keys[f.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: licence %q is signed by key %s, trusted keys are %v", ErrUntrustedKey, l.ID, f.KeyID, keys.IDs())
	}
	msg, err := signedBytes(f.KeyID, l)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !ed25519.Verify(pub, msg, f.Signature) {
		return nil, fmt.Errorf("%w: the contents of licence %q were changed after it was signed", ErrTampered, l.ID)
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if now.Before(l.NotBefore) {
		return l, fmt.Errorf("%w: licence %q is valid from %s", ErrNotYetValid, l.ID, l.NotBefore.Format(time.RFC3339))
	}
	if now.After(l.NotAfter) {
		return l, fmt.Errorf("%w: licence %q expired at %s", ErrExpired, l.ID, l.NotAfter.Format(time.RFC3339))
	}
	if l.Group != group {
		return l, fmt.Errorf("%w: licence %q is bound to group %q, this is group %q", ErrWrongGroup, l.ID, l.Group, group)
	}
	return l, nil
}

// FileResult is the verdict on one licence file.
type FileResult struct {
	// Name is the file name (or Secret key).
	Name string
	// License holds the terms when the signature could be checked, even if
	// the licence is refused; nil otherwise.
	License *License
	// Err is nil when the licence may be used, otherwise the refusal.
	Err error
}

// FileSuffix ends the name of every licence file: a key of a licence
// Secret, a file in a server's licence folder.
const FileSuffix = ".lic"

// VerifyFiles verifies a set of licence files by name, for example the keys
// ending in FileSuffix of a licence Secret, in name order. A file whose licence
// id was already accepted from an earlier file is refused with ErrDuplicate.
func VerifyFiles(files map[string][]byte, keys KeyRing, group string, now time.Time) []FileResult {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	accepted := map[string]string{}
	out := make([]FileResult, 0, len(names))
	for _, name := range names {
		l, err := Verify(files[name], keys, group, now)
		if err == nil {
			if first, dup := accepted[l.ID]; dup {
				err = fmt.Errorf("%w: licence %q is also in %s", ErrDuplicate, l.ID, first)
			} else {
				accepted[l.ID] = name
			}
		}
		out = append(out, FileResult{Name: name, License: l, Err: err})
	}
	return out
}
