package oidc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/school"
)

// oidcStorage is ElevID's store behind zitadel's op.Storage. Every write of
// one protocol step happens in one transaction. Its methods are grouped by
// job: clients here, authorization requests and codes in
// storage_authrequest.go, tokens and sessions in storage_tokens.go,
// userinfo, introspection and claims in storage_userinfo.go, signing keys
// in storage_keys.go.
type oidcStorage struct{ p *Provider }

var (
	_ op.Storage                        = (*oidcStorage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*oidcStorage)(nil)
	_ op.CanTerminateSessionFromRequest = (*oidcStorage)(nil)
)

// client returns the OIDC platform with that client id, cached for the
// request.
func (s *oidcStorage) client(ctx context.Context, clientID string) (*oidcClient, error) {
	st := stateFrom(ctx)
	if st.client != nil && st.client.GetID() == clientID {
		return st.client, nil
	}
	if c := s.p.clients.get(clientID, false); c != nil {
		st.client = c
		return c, nil
	}
	pf, err := s.p.opt.Store.PlatformByClientID(ctx, clientID)
	if err != nil {
		return nil, err
	}
	c, err := newOIDCClient(pf, HandoffPath)
	if err != nil {
		return nil, err
	}
	st.client = s.p.clients.put(c)
	return st.client, nil
}

// clientByPlatform returns the OIDC platform with that id, using the
// request's cached one when it matches.
func (s *oidcStorage) clientByPlatform(ctx context.Context, platformID string) (*oidcClient, error) {
	return s.clientByPlatformIn(ctx, s.p.opt.Store, platformID)
}

// clientByPlatformIn is clientByPlatform reading through q (inside a
// transaction, q must be the transaction's: a second connection could
// deadlock a full pool).
func (s *oidcStorage) clientByPlatformIn(ctx context.Context, q school.Queries, platformID string) (*oidcClient, error) {
	st := stateFrom(ctx)
	if st.client != nil && st.client.pf.ID == platformID {
		return st.client, nil
	}
	c := s.p.clients.get(platformID, true)
	if c == nil {
		pf, err := q.GetPlatform(ctx, platformID)
		if err != nil {
			return nil, err
		}
		if c, err = newOIDCClient(pf, HandoffPath); err != nil {
			return nil, err
		}
		c = s.p.clients.put(c)
	}
	if st.client == nil {
		st.client = c
	}
	return c, nil
}

func (s *oidcStorage) now() time.Time { return s.p.opt.Now() }

// GetClientByClientID implements op.Storage.
func (s *oidcStorage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	c, err := s.client(ctx, clientID)
	if errors.Is(err, school.ErrNotFound) {
		return nil, fmt.Errorf("unknown client")
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AuthorizeClientIDSecret implements op.Storage.
func (s *oidcStorage) AuthorizeClientIDSecret(ctx context.Context, clientID, secret string) error {
	c, err := s.client(ctx, clientID)
	if err != nil {
		return errors.New("unknown client")
	}
	if !c.s.checkSecret(secret) {
		s.p.log.Warn("client authentication failed", "client_id", clientID)
		return errors.New("wrong client secret")
	}
	return nil
}

// Health implements op.Storage.
func (s *oidcStorage) Health(ctx context.Context) error { return s.p.opt.Store.Ping(ctx) }
