package school

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer encrypts secrets kept at rest in the store (directory bind
// passwords, signing keys, TOTP secrets) with AES-256-GCM under a key from
// configuration. Several keys may be given: the first seals, all open, so
// a key can be rotated by putting the new one first.
type Sealer struct {
	aeads []cipher.AEAD
	ids   [][]byte
}

// NewSealer returns a Sealer for keys of at least 32 bytes each (longer
// keys are hashed down to 32).
func NewSealer(keys ...[]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealer: no key")
	}
	s := &Sealer{}
	for i, k := range keys {
		if len(k) < 32 {
			return nil, fmt.Errorf("sealer: key %d is %d bytes, want at least 32", i+1, len(k))
		}
		sum := sha256.Sum256(k)
		block, err := aes.NewCipher(sum[:])
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := sha256.Sum256(append([]byte("elevid key id:"), sum[:]...))
		s.aeads = append(s.aeads, aead)
		s.ids = append(s.ids, id[:4])
	}
	return s, nil
}

// Seal encrypts plaintext, binding it to context (e.g. "ldap:"+schoolID) so
// that a sealed value cannot be moved to another record.
func (s *Sealer) Seal(plaintext []byte, context string) []byte {
	a := s.aeads[0]
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("sealer: crypto/rand failed: %v", err))
	}
	out := append([]byte{}, s.ids[0]...)
	out = append(out, nonce...)
	return a.Seal(out, nonce, plaintext, []byte(context))
}

// ErrUnseal is returned by Open for a value that no key opens.
var ErrUnseal = errors.New("sealer: cannot decrypt (wrong key or context, or tampered)")

// Open decrypts a value made by Seal with the same context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	for i, a := range s.aeads {
		n := len(s.ids[i]) + a.NonceSize()
		if len(sealed) < n+a.Overhead() || string(sealed[:4]) != string(s.ids[i]) {
			continue
		}
		pt, err := a.Open(nil, sealed[4:n], sealed[n:], []byte(context))
		if err == nil {
			return pt, nil
		}
	}
	return nil, ErrUnseal
}
