package oidc

import (
	"context"
	"errors"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// SigningKey implements op.Storage: the key of the request's platform's
// algorithm.
func (s *oidcStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	alg := AlgES256
	if c := stateFrom(ctx).client; c != nil {
		alg = c.s.Alg()
	}
	return s.p.keys.Signing(ctx, alg)
}

// SignatureAlgorithms implements op.Storage.
func (s *oidcStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256, jose.RS256}, nil
}

// KeySet implements op.Storage.
func (s *oidcStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := s.p.keys.Published(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// GetKeyByIDAndClientID implements op.Storage: ElevID accepts no JWT
// client assertions.
func (s *oidcStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not supported")
}

// ValidateJWTProfileScopes implements op.Storage (JWT profile grant, not
// supported).
func (s *oidcStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}
