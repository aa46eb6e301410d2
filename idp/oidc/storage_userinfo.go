package oidc

import (
	"context"
	"errors"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// SetUserinfoFromScopes implements op.Storage (deprecated by zitadel;
// SetUserinfoFromRequest does the work).
func (s *oidcStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest implements op.CanSetUserinfoFromRequest: the ID
// token carries the claims worked out (and logged) when it was issued.
func (s *oidcStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	var claims map[string]any
	var sid string
	switch r := req.(type) {
	case *authRequest:
		claims = r.claims
		sid = s.p.sid(r.st.SessionRef, r.client.GetID())
	case *refreshRequest:
		claims = r.claims
		sid = s.p.sid(r.tok.SessionRef, r.client.GetID())
	}
	info.Subject = req.GetSubject()
	setClaims(info, claims)
	if sid != "" {
		info.AppendClaims("sid", sid)
	}
	return nil
}

func setClaims(info *oidc.UserInfo, claims map[string]any) {
	for k, v := range claims {
		switch k {
		case release.Name:
			info.Name, _ = v.(string)
		case release.GivenName:
			info.GivenName, _ = v.(string)
		case release.FamilyName:
			info.FamilyName, _ = v.(string)
		default:
			info.AppendClaims(k, v)
		}
	}
}

// SetUserinfoFromToken implements op.Storage (the userinfo endpoint): the
// token must be active and consent must still cover the platform; the
// response is logged in the release log.
func (s *oidcStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	claims, err := s.userinfoClaims(ctx, tokenID, subject)
	switch {
	case errors.Is(err, errInvalidToken):
		return oidc.ErrInvalidRequest().WithDescription("invalid_token")
	case errors.Is(err, errConsent):
		return oidc.ErrAccessDenied().WithDescription("the pupil's consent does not cover this platform")
	case err != nil:
		s.p.log.Error("userinfo failed", "err", err)
		return oidc.ErrServerError()
	}
	info.Subject = subject
	setClaims(info, claims)
	return nil
}

var errInvalidToken = errors.New("invalid token")

// userinfoClaims checks the access token and the pupil's consent and
// gathers the claims, reading the token and the release inputs in one
// statement (the token's grant logged the release). No write transaction
// is held open while the claims are gathered (SQLite has a single
// writer).
func (s *oidcStorage) userinfoClaims(ctx context.Context, tokenID, subject string) (map[string]any, error) {
	tok, profile, cs, err := s.p.opt.Store.TokenReleaseInputs(school.Brief(ctx), tokenID) // one pupil's rows
	switch {
	case errors.Is(err, school.ErrNotFound):
		return nil, errInvalidToken
	case err != nil:
		return nil, err
	case !s.activeAccess(tok, subject):
		return nil, errInvalidToken
	}
	c, err := s.clientByPlatform(ctx, tok.PlatformID)
	if err != nil {
		return nil, err
	}
	rel, err := s.compute(c, profile, cs)
	if release.Refused(err) {
		return nil, errConsent
	}
	if err != nil {
		return nil, err
	}
	// What userinfo gives is never more than the scopes the grant logged,
	// and less when consent narrowed since.
	return Claims(rel, tok.Scopes), nil
}

// releaseFor reads the pupil's profile and consent state through q (one
// query) and computes what the client's platform may receive
// (release.Compute). ErrNotFound when the pupil is gone.
func (s *oidcStorage) releaseFor(ctx context.Context, q school.Queries, c *oidcClient, pupilID string) (release.Release, error) {
	profile, st, err := q.ReleaseInputs(ctx, pupilID, c.pf.ID)
	if err != nil {
		return release.Release{}, err
	}
	return s.compute(c, profile, st)
}

// activeAccess reports whether tok is an access token of subject that is
// neither revoked nor expired.
func (s *oidcStorage) activeAccess(tok school.OIDCToken, subject string) bool {
	return tok.Kind == school.TokenAccess && tok.Subject == subject && tok.ActiveAt(s.now())
}

// compute is release.Compute for the client's platform.
func (s *oidcStorage) compute(c *oidcClient, profile school.PupilProfile, st school.ConsentState) (release.Release, error) {
	return release.Compute(release.Input{Profile: profile, Platform: c.pf, State: st, PairwiseSecret: s.p.opt.PairwiseSecret, Sector: c.sector})
}

// SetIntrospectionFromToken implements op.Storage: only the platform the
// token was issued to learns about it, and no personal claims are given.
func (s *oidcStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	tok, err := s.p.opt.Store.GetOIDCToken(ctx, tokenID)
	if err != nil || !s.activeAccess(tok, subject) {
		return errInvalidToken
	}
	c, err := s.client(ctx, clientID)
	if err != nil || c.pf.ID != tok.PlatformID {
		return errInvalidToken
	}
	resp.Scope = tok.Scopes
	resp.ClientID = clientID
	resp.Subject = tok.Subject
	resp.Audience = []string{clientID}
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(tok.ExpiresAt.Add(-oidcClockSkew))
	resp.IssuedAt = oidc.FromTime(tok.CreatedAt)
	resp.AuthTime = oidc.FromTime(tok.AuthTime)
	resp.Issuer = s.p.opt.Issuer
	return nil
}

// GetPrivateClaimsFromScopes implements op.Storage (JWT access tokens
// only, which ElevID does not issue).
func (s *oidcStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}
