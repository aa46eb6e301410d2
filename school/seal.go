package school

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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
	keys  [][]byte // the 32-byte key material of each key, for MAC
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
		s.keys = append(s.keys, sum[:])
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

// MAC returns HMAC-SHA256 of data under a key derived (HKDF-SHA256) from
// the first encryption key for purpose (e.g. "enrolment-code"): the stored
// form of short bearer secrets (enrolment and recovery codes), which a
// leaked database alone cannot brute-force. Keys for different purposes
// are independent.
func (s *Sealer) MAC(purpose string, data []byte) []byte {
	return macWith(s.keys[0], purpose, data)
}

// MACs returns MAC of data under every key, the first key's first: a
// value stored under a key that is still listed (a rotation) matches one
// of them.
func (s *Sealer) MACs(purpose string, data []byte) [][]byte {
	out := make([][]byte, len(s.keys))
	for i, k := range s.keys {
		out[i] = macWith(k, purpose, data)
	}
	return out
}

// DerivedKey returns a 32-byte key derived (HKDF-SHA256) from encryption
// key i (0 is the current one) for purpose, with a short id naming it; ok
// is false past the last key.
func (s *Sealer) DerivedKey(i int, purpose string) (key []byte, id string, ok bool) {
	if i < 0 || i >= len(s.keys) {
		return nil, "", false
	}
	k := deriveKey(s.keys[i], purpose)
	return k, hex.EncodeToString(s.ids[i]), true
}

func deriveKey(key []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, key, nil, "elevid:"+purpose, 32)
	if err != nil {
		panic(fmt.Sprintf("sealer: hkdf: %v", err)) // cannot fail for 32 bytes
	}
	return k
}

func macWith(key []byte, purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, deriveKey(key, purpose))
	m.Write(data)
	return m.Sum(nil)
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

// SealJSON returns v as JSON, sealed for context and URL-safe (base64url
// without padding): state that travels in a URL or a form instead of a
// row (an OIDC authorization request or code, a SAML AuthnRequest waiting
// for a login).
func (s *Sealer) SealJSON(v any, context string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.Seal(b, context)), nil
}

// OpenJSON decodes into v the JSON sealed in sealed by SealJSON for
// context. It returns ErrUnseal when sealed is longer than max bytes, not
// base64url or not opened by any key under context, and the JSON decoder's
// error when what it opened does not decode into v.
func (s *Sealer) OpenJSON(sealed, context string, max int, v any) error {
	if len(sealed) > max {
		return ErrUnseal
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return ErrUnseal
	}
	b, err := s.Open(raw, context)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
