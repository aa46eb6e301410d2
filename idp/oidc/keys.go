package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/elevid/elevid/school"
)

// Signing algorithms of the OpenID provider.
const (
	AlgES256 = "ES256" // the default
	AlgRS256 = "RS256" // for platforms that cannot verify ECDSA
)

// oidcAlgorithms lists every algorithm the provider keeps a key for.
var oidcAlgorithms = []string{AlgES256, AlgRS256}

// KeyPolicy says how often the OpenID provider's signing keys rotate.
type KeyPolicy struct {
	// RotateEvery is the age at which a key is replaced; 30 days when zero.
	RotateEvery time.Duration
	// PublishAhead is how long a new key is published in the JWKS before
	// it signs, so that platforms (and other nodes) see it before any
	// token does; 10 minutes when zero.
	PublishAhead time.Duration
	// Overlap is how long a replaced key stays in the JWKS, so tokens it
	// signed still verify; it must exceed the longest ID token lifetime.
	// 48 hours when zero.
	Overlap time.Duration
	// Refresh is how long keys are cached in memory before the store is
	// read again (and a due rotation happens); one minute when zero.
	Refresh time.Duration
}

func (p *KeyPolicy) defaults() {
	if p.RotateEvery <= 0 {
		p.RotateEvery = 30 * 24 * time.Hour
	}
	if p.PublishAhead <= 0 {
		p.PublishAhead = 10 * time.Minute
	}
	if p.Overlap <= 0 {
		p.Overlap = 48 * time.Hour
	}
	if p.Refresh <= 0 {
		p.Refresh = time.Minute
	}
}

// Keys keeps the OpenID provider's signing keys in the store, private
// keys sealed with a school.Sealer (context "signing-key:"+kid). The first
// use generates a key per algorithm; a key older than RotateEvery gets a
// successor, published PublishAhead before it signs. Generations are
// unique per algorithm in the store, so when several nodes rotate at once
// one key wins and every node uses it. Safe for concurrent use.
type Keys struct {
	st     school.OIDCStore
	sealer *school.Sealer
	now    func() time.Time
	policy KeyPolicy

	mu     sync.Mutex
	loaded time.Time
	keys   []SigningKey // by algorithm, newest generation first
}

// SigningKey is a loaded signing key; it implements op.SigningKey and op.Key.
type SigningKey struct {
	rec  school.OIDCSigningKey
	priv crypto.Signer
	// retiresAt is when the key leaves the JWKS (zero while it signs or
	// is pending).
	retiresAt time.Time
}

func (k SigningKey) SignatureAlgorithm() jose.SignatureAlgorithm {
	return jose.SignatureAlgorithm(k.rec.Algorithm)
}
func (k SigningKey) Algorithm() jose.SignatureAlgorithm { return k.SignatureAlgorithm() }
func (k SigningKey) Key() any                           { return k.priv }
func (k SigningKey) ID() string                         { return k.rec.ID }
func (k SigningKey) Use() string                        { return "sig" }

// publicKey implements op.Key for the JWKS: the public half only.
type publicKey struct{ SigningKey }

func (k publicKey) Key() any { return k.priv.Public() }

// NewKeys returns the key manager; now is the clock (time.Now when nil).
func NewKeys(st school.OIDCStore, sealer *school.Sealer, now func() time.Time, policy KeyPolicy) *Keys {
	if now == nil {
		now = time.Now
	}
	policy.defaults()
	return &Keys{st: st, sealer: sealer, now: now, policy: policy}
}

// Signing returns the key that signs now for algorithm alg.
func (m *Keys) Signing(ctx context.Context, alg string) (SigningKey, error) {
	keys, err := m.current(ctx)
	if err != nil {
		return SigningKey{}, err
	}
	now := m.now()
	for _, k := range keys {
		if k.rec.Algorithm == alg && !now.Before(k.rec.NotBefore) {
			return k, nil
		}
	}
	return SigningKey{}, fmt.Errorf("oidc keys: no %s key active", alg)
}

// Published returns every key the JWKS lists now: pending, signing, and
// replaced ones within the overlap.
func (m *Keys) Published(ctx context.Context) ([]SigningKey, error) {
	keys, err := m.current(ctx)
	if err != nil {
		return nil, err
	}
	now := m.now()
	var out []SigningKey
	for _, k := range keys {
		if k.retiresAt.IsZero() || now.Before(k.retiresAt) {
			out = append(out, k)
		}
	}
	return out, nil
}

// Rotate makes a successor for every algorithm now, whatever the age of
// the current keys (an operator's emergency rotation). The successor signs
// after PublishAhead.
func (m *Keys) Rotate(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys, err := m.load(ctx)
	if err != nil {
		return err
	}
	for _, alg := range oidcAlgorithms {
		var gen int64
		for _, k := range keys {
			if k.rec.Algorithm == alg && k.rec.Generation > gen {
				gen = k.rec.Generation
			}
		}
		if err := m.generate(ctx, alg, gen+1, m.now().Add(m.policy.PublishAhead)); err != nil {
			return err
		}
	}
	m.loaded = time.Time{}
	return nil
}

// current returns the cached keys, reloading (and rotating when due)
// after Refresh.
func (m *Keys) current(ctx context.Context) ([]SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.keys != nil && now.Sub(m.loaded) < m.policy.Refresh && !now.Before(m.loaded) {
		return m.keys, nil
	}
	keys, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	changed, err := m.ensure(ctx, keys, now)
	if err != nil {
		return nil, err
	}
	if changed {
		if keys, err = m.load(ctx); err != nil {
			return nil, err
		}
	}
	m.keys, m.loaded = keys, now
	return keys, nil
}

// ensure generates a first key or a due successor for each algorithm and
// deletes keys past their overlap. It reports whether the store changed.
func (m *Keys) ensure(ctx context.Context, keys []SigningKey, now time.Time) (bool, error) {
	changed := false
	for _, alg := range oidcAlgorithms {
		var newest *SigningKey
		for i := range keys {
			if keys[i].rec.Algorithm == alg {
				newest = &keys[i]
				break
			}
		}
		switch {
		case newest == nil:
			if err := m.generate(ctx, alg, 1, now); err != nil {
				return false, err
			}
			changed = true
		case !now.Before(newest.rec.NotBefore.Add(m.policy.RotateEvery - m.policy.PublishAhead)):
			nb := newest.rec.NotBefore.Add(m.policy.RotateEvery)
			if nb.Before(now.Add(m.policy.PublishAhead)) {
				nb = now.Add(m.policy.PublishAhead)
			}
			if err := m.generate(ctx, alg, newest.rec.Generation+1, nb); err != nil {
				return false, err
			}
			changed = true
		}
	}
	for _, k := range keys {
		if !k.retiresAt.IsZero() && now.After(k.retiresAt.Add(m.policy.Overlap)) {
			if err := m.st.DeleteOIDCSigningKey(ctx, k.rec.ID); err != nil && !errors.Is(err, school.ErrNotFound) {
				return false, err
			}
			changed = true
		}
	}
	return changed, nil
}

// generate stores a new key of generation gen; losing the race to another
// node (ErrConflict) is success.
func (m *Keys) generate(ctx context.Context, alg string, gen int64, notBefore time.Time) error {
	var priv crypto.Signer
	var err error
	switch alg {
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return fmt.Errorf("oidc keys: unsupported algorithm %q", alg)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return err
	}
	sum := sha256.Sum256(pub)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])
	_, err = m.st.AddOIDCSigningKey(ctx, school.OIDCSigningKey{
		ID: kid, Algorithm: alg, Generation: gen, NotBefore: notBefore,
		SealedKey: m.sealer.Seal(der, "signing-key:"+kid), PublicKey: pub,
	})
	if errors.Is(err, school.ErrConflict) {
		return nil
	}
	return err
}

// load reads and unseals every stored key and works out when each
// replaced key leaves the JWKS.
func (m *Keys) load(ctx context.Context) ([]SigningKey, error) {
	recs, err := m.st.ListOIDCSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: %w", err)
	}
	now := m.now()
	out := make([]SigningKey, 0, len(recs))
	for _, rec := range recs {
		der, err := m.sealer.Open(rec.SealedKey, "signing-key:"+rec.ID)
		if err != nil {
			return nil, fmt.Errorf("oidc keys: key %s: %w", rec.ID, err)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("oidc keys: key %s: %w", rec.ID, err)
		}
		signer, ok := parsed.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("oidc keys: key %s is not a signing key", rec.ID)
		}
		out = append(out, SigningKey{rec: rec, priv: signer})
	}
	// A key retires when a newer key of its algorithm has started signing;
	// it then stays published for Overlap.
	for i := range out {
		for j := range out {
			o := out[j].rec
			if o.Algorithm == out[i].rec.Algorithm && o.Generation > out[i].rec.Generation && !now.Before(o.NotBefore) {
				if out[i].retiresAt.IsZero() || o.NotBefore.Before(out[i].retiresAt) {
					out[i].retiresAt = o.NotBefore
				}
			}
		}
		if !out[i].retiresAt.IsZero() {
			out[i].retiresAt = out[i].retiresAt.Add(m.policy.Overlap)
		}
	}
	slices.SortStableFunc(out, func(a, b SigningKey) int {
		if a.rec.Algorithm != b.rec.Algorithm {
			if a.rec.Algorithm < b.rec.Algorithm {
				return -1
			}
			return 1
		}
		return int(b.rec.Generation - a.rec.Generation)
	})
	return out, nil
}
