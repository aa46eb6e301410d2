package saml

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/elevid/elevid/school"
)

// KeyPair is a signing key with its certificate.
type KeyPair struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// Keys provides the IdP's SAML signing keys. Signing returns the key
// that signs now; Published returns every certificate the metadata lists,
// the signing one first (during a rotation: the new and the previous one).
type Keys interface {
	Signing(ctx context.Context) (KeyPair, error)
	Published(ctx context.Context) ([]*x509.Certificate, error)
}

// StoreKeys keeps RSA signing keys in the store (school.SAMLStore),
// private keys sealed with a school.Sealer. The first call generates a key
// when there is none. A key made by Rotate is published at once but signs
// only after Activation, so that service providers that refresh metadata
// trust it before they see it; the older key stays published until Retire.
// Keys are cached for Refresh so that several nodes pick up a rotation.
type StoreKeys struct {
	Store  school.Store
	Sealer *school.Sealer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Bits is the RSA key size; 2048 when zero.
	Bits int
	// Activation is how long a new key is published before it signs; 0
	// signs at once.
	Activation time.Duration
	// Refresh is how long keys are cached; one minute when zero.
	Refresh time.Duration

	mu     sync.Mutex
	loaded time.Time
	pairs  []storedPair // newest first
}

type storedPair struct {
	KeyPair
	created time.Time
}

func (k *StoreKeys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Signing implements Keys.
func (k *StoreKeys) Signing(ctx context.Context) (KeyPair, error) {
	pairs, err := k.load(ctx)
	if err != nil {
		return KeyPair{}, err
	}
	now := k.now()
	for _, p := range pairs {
		if !p.created.Add(k.Activation).After(now) {
			return p.KeyPair, nil
		}
	}
	return pairs[len(pairs)-1].KeyPair, nil // none active yet: the oldest
}

// Published implements Keys.
func (k *StoreKeys) Published(ctx context.Context) ([]*x509.Certificate, error) {
	signing, err := k.Signing(ctx)
	if err != nil {
		return nil, err
	}
	pairs, err := k.load(ctx)
	if err != nil {
		return nil, err
	}
	out := []*x509.Certificate{signing.Cert}
	for _, p := range pairs {
		if p.Cert != signing.Cert {
			out = append(out, p.Cert)
		}
	}
	return out, nil
}

// Rotate generates a new key; it is published now and signs after
// Activation.
func (k *StoreKeys) Rotate(ctx context.Context) error {
	if err := k.generate(ctx); err != nil {
		return err
	}
	k.invalidate()
	return nil
}

// Retire stops publishing every key but the signing one.
func (k *StoreKeys) Retire(ctx context.Context) error {
	signing, err := k.Signing(ctx)
	if err != nil {
		return err
	}
	keys, err := k.Store.ListSAMLKeys(ctx)
	if err != nil {
		return err
	}
	for _, sk := range keys {
		if string(sk.CertDER) != string(signing.Cert.Raw) {
			if err := k.Store.RetireSAMLKey(ctx, sk.ID); err != nil && !errors.Is(err, school.ErrNotFound) {
				return err
			}
		}
	}
	k.invalidate()
	return nil
}

func (k *StoreKeys) invalidate() {
	k.mu.Lock()
	k.loaded = time.Time{}
	k.mu.Unlock()
}

func (k *StoreKeys) load(ctx context.Context) ([]storedPair, error) {
	refresh := k.Refresh
	if refresh == 0 {
		refresh = time.Minute
	}
	k.mu.Lock()
	if !k.loaded.IsZero() && time.Since(k.loaded) < refresh && len(k.pairs) > 0 {
		p := k.pairs
		k.mu.Unlock()
		return p, nil
	}
	k.mu.Unlock()

	keys, err := k.Store.ListSAMLKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("saml keys: %w", err)
	}
	if len(keys) == 0 {
		if err := k.generateFirst(ctx); err != nil {
			return nil, err
		}
		if keys, err = k.Store.ListSAMLKeys(ctx); err != nil {
			return nil, fmt.Errorf("saml keys: %w", err)
		}
		if len(keys) == 0 {
			return nil, errors.New("saml keys: none after generation")
		}
	}
	pairs := make([]storedPair, 0, len(keys))
	for _, sk := range keys {
		cert, err := x509.ParseCertificate(sk.CertDER)
		if err != nil {
			return nil, fmt.Errorf("saml key %s: certificate: %w", sk.ID, err)
		}
		der, err := k.Sealer.Open(sk.SealedKey, samlKeyContext(sk.CertDER))
		if err != nil {
			return nil, fmt.Errorf("saml key %s: %w", sk.ID, err)
		}
		key, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("saml key %s: %w", sk.ID, err)
		}
		key.Precompute()
		pairs = append(pairs, storedPair{KeyPair{Key: key, Cert: cert}, sk.CreatedAt})
	}
	k.mu.Lock()
	k.pairs, k.loaded = pairs, time.Now()
	k.mu.Unlock()
	return pairs, nil
}

// generateFirst makes the first key, under a store lock so that nodes
// starting together make one.
func (k *StoreKeys) generateFirst(ctx context.Context) error {
	owner := school.NewID()
	for i := 0; ; i++ {
		err := k.Store.TryLock(ctx, "saml-keygen", owner, time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, school.ErrLocked) || i > 100 {
			return fmt.Errorf("saml keys: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer k.Store.Unlock(context.WithoutCancel(ctx), "saml-keygen", owner)
	keys, err := k.Store.ListSAMLKeys(ctx)
	if err != nil || len(keys) > 0 {
		return err
	}
	return k.generate(ctx)
}

func (k *StoreKeys) generate(ctx context.Context) error {
	bits := k.Bits
	if bits == 0 {
		bits = 2048
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return err
	}
	der, err := selfSignedSAMLCert(key, k.now())
	if err != nil {
		return err
	}
	sealed := k.Sealer.Seal(x509.MarshalPKCS1PrivateKey(key), samlKeyContext(der))
	_, err = k.Store.CreateSAMLKey(ctx, school.SAMLKey{SealedKey: sealed, CertDER: der})
	return err
}

func samlKeyContext(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return "saml-key:" + hex.EncodeToString(sum[:])
}

// selfSignedSAMLCert makes the long-lived self-signed certificate SAML
// metadata carries (its validity is not checked by SPs; the key is what
// counts).
func selfSignedSAMLCert(key *rsa.PrivateKey, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ElevID SAML signing"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
}
