package licensing

import "errors"

// Reasons a licence is refused. Verify wraps them with details; test with
// errors.Is.
var (
	// ErrMalformed: the file is not a licenseha licence file or its terms are incomplete.
	ErrMalformed = errors.New("licence file is malformed")
	// ErrUntrustedKey: the licence was signed by a key this verifier does not trust.
	ErrUntrustedKey = errors.New("licence is signed by an untrusted key")
	// ErrTampered: the signature does not match the terms.
	ErrTampered = errors.New("licence signature does not match its contents")
	// ErrNotYetValid: the validity window has not started.
	ErrNotYetValid = errors.New("licence is not valid yet")
	// ErrExpired: the validity window has ended.
	ErrExpired = errors.New("licence has expired")
	// ErrWrongGroup: the licence is bound to another redundancy group.
	ErrWrongGroup = errors.New("licence is bound to another group")
	// ErrDuplicate: another file already provides a licence with the same id.
	ErrDuplicate = errors.New("licence id is provided twice")
)
