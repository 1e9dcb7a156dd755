// Package licensing reads, writes, signs and verifies licenseha licence files.
//
// A licence file is a small JSON document: the licence terms in clear text,
// the id of the signing key and an ed25519 signature over a canonical
// encoding of the terms. Licences are bound to a redundancy group
// ("<namespace>/<name>" of a LicenseTriad or LicenseBackupPair), not to
// hardware, so a member can be replaced without relicensing.
//
// Servers and the operator hold only public keys (a KeyRing); whoever issues
// licences holds the private key. Verify reports every refusal with one of
// the sentinel errors (ErrMalformed, ErrUntrustedKey, ErrTampered,
// ErrNotYetValid, ErrExpired, ErrWrongGroup) wrapped with details a person
// can act on; test for them with errors.Is.
package licensing
