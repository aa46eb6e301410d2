package oidc

import (
	"context"
	"errors"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// refreshRequest implements op.RefreshTokenRequest over a stored refresh
// token.
type refreshRequest struct {
	tok    school.OIDCToken
	client *oidcClient
	scopes []string
	claims map[string]any
}

func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

// revokeGrant revokes every token of a grant (a code's tokens and their
// refresh rotations share the family) after a second use of its code or of
// a rotated refresh token; why names that use in the log.
func (s *oidcStorage) revokeGrant(ctx context.Context, pupilID, familyID, why string) {
	n, err := s.p.opt.Store.RevokeOIDCTokens(context.WithoutCancel(ctx), school.OIDCTokenFilter{PupilID: pupilID, FamilyID: familyID})
	if err != nil {
		s.p.log.Error("revoking a reused grant failed", "why", why, "family", familyID, "err", err)
		return
	}
	s.p.log.Warn(why+": grant revoked", "family", familyID, "revoked", n)
}

// CreateAccessToken implements op.Storage.
func (s *oidcStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, _, exp, err := s.issue(ctx, req, false)
	return id, exp, err
}

// CreateAccessAndRefreshTokens implements op.Storage.
func (s *oidcStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, _ string) (string, string, time.Time, error) {
	return s.issue(ctx, req, true)
}

// issue redeems a code or rotates a refresh token, and in the same
// transaction checks consent, works out the released claims, stores the
// new tokens and writes the release log entry of the ID token.
func (s *oidcStorage) issue(ctx context.Context, req op.TokenRequest, withRefresh bool) (accessID, refresh string, exp time.Time, err error) {
	now := s.now()
	var (
		c      *oidcClient
		base   school.OIDCToken
		scopes []string
		redeem func(q school.Queries) error // rotates a refresh token
		codeID string                       // the code the access token redeems
		stash  func(map[string]any)
	)
	switch r := req.(type) {
	case *authRequest:
		c, scopes = r.client, r.st.Params.Scopes
		base = school.OIDCToken{PupilID: r.st.PupilID, SessionRef: r.st.SessionRef, AuthRequestID: r.st.ID, FamilyID: r.st.ID,
			AuthTime: r.st.AuthTime, AMR: r.st.AMR, ACR: r.st.ACR, Subject: r.subject}
		codeID = r.st.ID // the access token redeems the code
		stash = func(m map[string]any) { r.claims = m }
	case *refreshRequest:
		c, scopes = r.client, r.scopes
		base = r.tok
		base.ID, base.Hash = "", nil
		redeem = func(q school.Queries) error { return q.UseOIDCRefreshToken(ctx, r.tok.ID) }
		stash = func(m map[string]any) { r.claims = m }
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	base.PlatformID, base.Scopes = c.pf.ID, scopes
	access := base
	access.Kind, access.CodeID = school.TokenAccess, codeID
	access.ExpiresAt = now.Add(c.accessTokenLifetime() + oidcClockSkew)
	var refreshTok school.OIDCToken
	if withRefresh {
		refresh = NewClientSecret()
		refreshTok = base
		refreshTok.Kind, refreshTok.Hash = school.TokenRefresh, hashSecret(refresh)
		refreshTok.ExpiresAt = now.Add(c.refreshTokenLifetime())
	}
	var denied bool
	err = s.p.opt.Store.InTx(school.Brief(ctx), func(q school.Queries) error {
		denied = false
		if redeem != nil {
			if err := redeem(q); err != nil {
				return err
			}
		}
		rel, err := s.releaseFor(ctx, q, c, base.PupilID)
		if release.Refused(err) || errors.Is(err, school.ErrNotFound) {
			denied = true // consent does not cover the platform, or the pupil is gone
			return errConsent
		}
		if err != nil {
			return err
		}
		claims := Claims(rel, scopes)
		stash(claims)
		if access, err = q.CreateOIDCToken(ctx, access); err != nil {
			return err
		}
		if withRefresh {
			if _, err := q.CreateOIDCToken(ctx, refreshTok); err != nil {
				return err
			}
		}
		// One entry per sign-in: the ID token and userinfo carry the same
		// claims (those the granted scopes ask for), so userinfo does not
		// log a second entry for this grant.
		return release.Log{}.Record(ctx, q, base.PupilID, c.pf, claimNames(claims))
	})
	// ErrUsed: the code was redeemed before (from the token's insert,
	// which on PostgreSQL goes out with the COMMIT), or the refresh token.
	switch reused := errors.Is(err, school.ErrUsed); {
	case reused:
		// A second redemption of one code or refresh token: revoke what
		// the grant produced.
		why := "refresh token reused"
		if _, ok := req.(*authRequest); ok {
			why = "authorization code reused"
		}
		s.revokeGrant(ctx, base.PupilID, base.FamilyID, why)
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the grant was used before")
	case denied:
		s.p.log.Info("no consent: tokens refused", "pupil", base.PupilID, "platform", c.pf.ID)
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the pupil's consent does not cover this platform")
	case errors.Is(err, school.ErrExpired):
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the grant has expired")
	case err != nil:
		return "", "", time.Time{}, err
	}
	return access.ID, refresh, access.ExpiresAt.Add(-oidcClockSkew), nil
}

var errConsent = errors.New("consent does not cover the platform")

// TokenRequestByRefreshToken implements op.Storage.
func (s *oidcStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	tok, err := s.p.opt.Store.OIDCTokenByHash(ctx, hashSecret(token))
	if err != nil || tok.Kind != school.TokenRefresh {
		return nil, errors.New("unknown refresh token")
	}
	c, err := s.clientByPlatform(ctx, tok.PlatformID)
	if err != nil {
		return nil, err
	}
	if cur := stateFrom(ctx).client; cur == nil || cur.pf.ID != tok.PlatformID {
		return nil, errors.New("refresh token of another client")
	}
	now := s.now()
	switch {
	case !tok.UsedAt.IsZero():
		s.revokeGrant(ctx, tok.PupilID, tok.FamilyID, "rotated refresh token reused")
		return nil, errors.New("refresh token used before")
	case !tok.RevokedAt.IsZero():
		return nil, errors.New("refresh token revoked")
	case !now.Before(tok.ExpiresAt):
		return nil, errors.New("refresh token expired")
	}
	return &refreshRequest{tok: tok, client: c, scopes: tok.Scopes}, nil
}

// TerminateSession implements op.Storage (unused: see
// TerminateSessionFromRequest).
func (s *oidcStorage) TerminateSession(ctx context.Context, sub, clientID string) error {
	_, err := s.TerminateSessionFromRequest(ctx, &op.EndSessionRequest{UserID: sub, ClientID: clientID})
	return err
}

// TerminateSessionFromRequest implements op.CanTerminateSessionFromRequest
// (RP-initiated logout): the pupil named by the id_token_hint loses the
// platform's tokens and, through the access service, the login session
// the tokens came from; the other platforms of that session (OIDC and
// SAML) get logout notices.
func (s *oidcStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	redirect := req.RedirectURI
	if req.UserID == "" || req.ClientID == "" {
		return redirect, nil
	}
	c, err := s.client(ctx, req.ClientID)
	if err != nil {
		return redirect, nil
	}
	// The hint names the pupil (sub) and, through sid, the login session;
	// tokens issued to the platform, active or not, map them back.
	toks, err := s.p.opt.Store.ListOIDCTokens(ctx, school.OIDCTokenFilter{PlatformID: c.pf.ID, Subject: req.UserID, Inactive: true})
	if err != nil {
		return "", err
	}
	var sid string
	if req.IDTokenHintClaims != nil {
		sid, _ = req.IDTokenHintClaims.Claims["sid"].(string)
	}
	sessions := map[[2]string]bool{}
	for _, t := range toks {
		if sid == "" || s.p.sid(t.SessionRef, c.GetID()) == sid {
			sessions[[2]string{t.PupilID, t.SessionRef}] = true
		}
	}
	for k := range sessions {
		pupilID, ref := k[0], k[1]
		err := s.p.opt.Store.InTx(ctx, func(q school.Queries) error {
			if ref != "" {
				sc := access.Session(pupilID, ref)
				sc.Initiator = c.pf.ID
				if _, err := s.p.opt.Access.End(ctx, q, sc, "rp-logout"); err != nil {
					return err
				}
			}
			_, err := q.RevokeOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: pupilID, PlatformID: c.pf.ID})
			return err
		})
		if err != nil {
			return "", err
		}
	}
	return redirect, nil
}

// RevokeToken implements op.Storage (RFC 7009). Revoking a refresh token
// revokes its whole grant.
func (s *oidcStorage) RevokeToken(ctx context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	c, err := s.client(ctx, clientID)
	if err != nil {
		return oidc.ErrInvalidClient()
	}
	tok, err := s.p.opt.Store.GetOIDCToken(ctx, tokenOrID)
	if errors.Is(err, school.ErrNotFound) {
		return nil // unknown tokens are "revoked" (RFC 7009 §2.2)
	}
	if err != nil {
		return oidc.ErrServerError()
	}
	if tok.PlatformID != c.pf.ID {
		// RFC 7009 §2.2: answer as for an unknown token, so that a
		// platform learns nothing about another's tokens; revoke nothing.
		s.p.log.Warn("revocation of another platform's token ignored", "platform", c.pf.ID)
		return nil
	}
	f := school.OIDCTokenFilter{ID: tok.ID}
	if tok.Kind == school.TokenRefresh {
		f = school.OIDCTokenFilter{PupilID: tok.PupilID, FamilyID: tok.FamilyID}
	}
	if _, err := s.p.opt.Store.RevokeOIDCTokens(ctx, f); err != nil {
		return oidc.ErrServerError()
	}
	return nil
}

// GetRefreshTokenInfo implements op.Storage.
func (s *oidcStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	tok, err := s.p.opt.Store.OIDCTokenByHash(ctx, hashSecret(token))
	if err != nil || tok.Kind != school.TokenRefresh {
		return "", "", op.ErrInvalidRefreshToken
	}
	c, err := s.client(ctx, clientID)
	if err != nil || c.pf.ID != tok.PlatformID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return tok.Subject, tok.ID, nil
}
