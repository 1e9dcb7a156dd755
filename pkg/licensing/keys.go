package licensing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
)

const (
	pemPrivateKey = "PRIVATE KEY"
	pemPublicKey  = "PUBLIC KEY"
)

// GenerateKey creates a new ed25519 signing key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// KeyID returns the identifier of a public key: the first 8 bytes of its
// SHA-256 digest in hex. Licence files name their signing key by this id so
// that several trusted keys can coexist (for example during a key rotation).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// EncodePrivateKey returns the PKCS #8 PEM encoding of a private key.
func EncodePrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// EncodePublicKey returns the PKIX PEM encoding of a public key.
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParsePrivateKey reads a PEM "PRIVATE KEY" block holding an ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemPrivateKey {
		return nil, errors.New("no PEM \"PRIVATE KEY\" block found")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is a %T, want an ed25519 key", key)
	}
	return priv, nil
}

// KeyRing is the set of public keys a verifier trusts, by key id.
type KeyRing map[string]ed25519.PublicKey

// NewKeyRing returns a KeyRing trusting the given keys.
func NewKeyRing(keys ...ed25519.PublicKey) KeyRing {
	ring := make(KeyRing, len(keys))
	for _, k := range keys {
		ring[KeyID(k)] = k
	}
	return ring
}

// IDs returns the key ids of the ring, sorted.
func (r KeyRing) IDs() []string {
	ids := make([]string, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ParseTrustedKeys reads one or more PEM "PUBLIC KEY" blocks holding ed25519
// keys. Blocks of other types are refused so that a private key pasted into
// a trust file by mistake is noticed.
func ParseTrustedKeys(data []byte) (KeyRing, error) {
	ring := KeyRing{}
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemPublicKey {
			return nil, fmt.Errorf("PEM block %d is a %q, want \"PUBLIC KEY\"", n, block.Type)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PEM block %d is a %T key, want ed25519", n, key)
		}
		ring[KeyID(pub)] = pub
	}
	if len(ring) == 0 {
		return nil, errors.New("no PEM \"PUBLIC KEY\" block found")
	}
	return ring, nil
}
