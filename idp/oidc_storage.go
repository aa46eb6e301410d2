package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// Lifetimes of the authorization steps.
const (
	authRequestLifetime = 10 * time.Minute // from /authorize to a finished login
	authCodeLifetime    = time.Minute      // from the code to its redemption
)

// oidcStorage is ElevID's store behind zitadel's op.Storage. Every write of
// one protocol step happens in one transaction.
type oidcStorage struct{ p *OIDC }

var (
	_ op.Storage                        = (*oidcStorage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*oidcStorage)(nil)
	_ op.CanTerminateSessionFromRequest = (*oidcStorage)(nil)
)

// authParams are the stored parameters of an authorization request.
type authParams struct {
	ClientID     string            `json:"client_id"`
	RedirectURI  string            `json:"redirect_uri"`
	Scopes       []string          `json:"scopes"`
	State        string            `json:"state,omitempty"`
	Nonce        string            `json:"nonce,omitempty"`
	ResponseType oidc.ResponseType `json:"response_type"`
	ResponseMode oidc.ResponseMode `json:"response_mode,omitempty"`
	Challenge    string            `json:"code_challenge,omitempty"`
	Method       string            `json:"code_challenge_method,omitempty"`
	Prompt       []string          `json:"prompt,omitempty"`
	MaxAge       *uint             `json:"max_age,omitempty"`
	Hint         string            `json:"id_token_hint_sub,omitempty"`
	ACRValues    []string          `json:"acr_values,omitempty"`
}

// authRequest implements op.AuthRequest over a stored request.
type authRequest struct {
	rec     school.OIDCAuthRequest
	params  authParams
	client  *oidcClient
	subject string
	// claims are the released claims, worked out when tokens are issued.
	claims map[string]any
}

func (a *authRequest) GetID() string                      { return a.rec.ID }
func (a *authRequest) GetACR() string                     { return a.rec.ACR }
func (a *authRequest) GetAMR() []string                   { return a.rec.AMR }
func (a *authRequest) GetAudience() []string              { return []string{a.params.ClientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.rec.AuthTime }
func (a *authRequest) GetClientID() string                { return a.params.ClientID }
func (a *authRequest) GetNonce() string                   { return a.params.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.params.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.params.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.params.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.params.Scopes }
func (a *authRequest) GetState() string                   { return a.params.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.rec.Completed() }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.params.Challenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.params.Challenge, Method: oidc.CodeChallengeMethod(a.params.Method)}
}

// refreshRequest implements op.RefreshTokenRequest over a stored refresh
// token.
type refreshRequest struct {
	tok    school.OIDCToken
	client *oidcClient
	scopes []string
	claims map[string]any
}

func (r *refreshRequest) GetAMR() []string            { return r.tok.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.client.GetID()} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.tok.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.client.GetID() }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.tok.Subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

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
	c, err := newOIDCClient(pf, oidcLoginPath)
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
		if c, err = newOIDCClient(pf, oidcLoginPath); err != nil {
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

// CreateAuthRequest implements op.Storage.
func (s *oidcStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSub string) (op.AuthRequest, error) {
	c, err := s.client(ctx, req.ClientID)
	if err != nil {
		return nil, err
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if c.allowsScope(sc) && !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	params := authParams{
		ClientID: req.ClientID, RedirectURI: req.RedirectURI, Scopes: scopes, State: req.State, Nonce: req.Nonce,
		ResponseType: req.ResponseType, ResponseMode: req.ResponseMode, Challenge: req.CodeChallenge,
		Method: string(req.CodeChallengeMethod), Prompt: req.Prompt, MaxAge: req.MaxAge, Hint: hintSub,
		ACRValues: req.ACRValues,
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	rec, err := s.p.opt.Store.CreateOIDCAuthRequest(ctx, school.OIDCAuthRequest{
		PlatformID: c.pf.ID, Params: b, ExpiresAt: s.now().Add(authRequestLifetime),
	})
	if err != nil {
		return nil, err
	}
	// Without a session cookie (and unless prompt=none must answer
	// login_required), the hand-off would only send the browser on to the
	// passkey login: send it there at once, returning to the hand-off. A
	// browser with a cookie goes through the hand-off, which reads the
	// session once.
	if st := stateFrom(ctx); st.r != nil && !s.p.opt.Sessions.HasCookie(st.r) && !slices.Contains(req.Prompt, oidc.PromptNone) {
		c.direct = func(id string) string { return s.p.opt.LoginURL(oidcLoginPath + "?id=" + url.QueryEscape(id)) }
	}
	return &authRequest{rec: rec, params: params, client: c}, nil
}

// wrapAuthRequest loads a stored request's platform and parameters.
func (s *oidcStorage) wrapAuthRequest(ctx context.Context, rec school.OIDCAuthRequest) (*authRequest, error) {
	a := &authRequest{rec: rec}
	if err := json.Unmarshal(rec.Params, &a.params); err != nil {
		return nil, fmt.Errorf("auth request %s: %w", rec.ID, err)
	}
	c, err := s.clientByPlatform(ctx, rec.PlatformID)
	if err != nil {
		return nil, err
	}
	a.client = c
	if rec.PupilID != "" {
		a.subject = c.subject(s.p.opt.PairwiseSecret, rec.PupilID)
	}
	return a, nil
}

// AuthRequestByID implements op.Storage.
func (s *oidcStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	rec, err := s.p.opt.Store.GetOIDCAuthRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.wrapAuthRequest(ctx, rec)
}

// AuthRequestByCode implements op.Storage. A code presented a second time
// is refused, and every token issued from it is revoked (RFC 6749 §4.1.2).
func (s *oidcStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	rec, err := s.p.opt.Store.OIDCAuthRequestByCode(ctx, hashSecret(code))
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case !rec.ConsumedAt.IsZero():
		s.codeReused(ctx, rec.ID)
		return nil, errors.New("authorization code used before")
	case !now.Before(rec.CodeExpiresAt):
		return nil, errors.New("authorization code expired")
	}
	return s.wrapAuthRequest(ctx, rec)
}

// codeReused revokes the tokens issued from a reused code.
func (s *oidcStorage) codeReused(ctx context.Context, authRequestID string) {
	n, err := s.p.opt.Store.RevokeOIDCTokens(context.WithoutCancel(ctx), school.OIDCTokenFilter{AuthRequestID: authRequestID})
	if err != nil {
		s.p.log.Error("revoking tokens of a reused code failed", "auth_request", authRequestID, "err", err)
		return
	}
	s.p.log.Warn("authorization code reused: tokens revoked", "auth_request", authRequestID, "revoked", n)
}

// SaveAuthCode implements op.Storage: it records the login the hand-off
// put in the request state together with the code's hash, in one write.
func (s *oidcStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	c := stateFrom(ctx).completion
	if c == nil {
		return oidc.ErrServerError().WithDescription("no login to complete")
	}
	c.CodeHash = hashSecret(code)
	c.CodeExpiresAt = s.now().Add(authCodeLifetime)
	_, err := s.p.opt.Store.CompleteOIDCAuthRequest(ctx, id, *c)
	if errors.Is(err, school.ErrUsed) || errors.Is(err, school.ErrExpired) {
		return oidc.ErrInvalidRequest().WithDescription("the authorization request was used or has expired")
	}
	return err
}

// DeleteAuthRequest implements op.Storage. The request stays (its code is
// marked redeemed) until PruneOIDC, so that a reused code is recognised.
func (s *oidcStorage) DeleteAuthRequest(context.Context, string) error { return nil }

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
		redeem func(q school.Queries) error
		stash  func(map[string]any)
	)
	switch r := req.(type) {
	case *authRequest:
		c, scopes = r.client, r.params.Scopes
		base = school.OIDCToken{PupilID: r.rec.PupilID, SessionRef: r.rec.SessionRef, AuthRequestID: r.rec.ID, FamilyID: r.rec.ID,
			AuthTime: r.rec.AuthTime, AMR: r.rec.AMR, ACR: r.rec.ACR, Subject: r.subject}
		redeem = func(q school.Queries) error { return q.ConsumeOIDCAuthCode(ctx, r.rec.ID) }
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
	access.Kind = school.TokenAccess
	access.ExpiresAt = now.Add(c.accessTokenLifetime() + oidcClockSkew)
	var refreshTok school.OIDCToken
	if withRefresh {
		refresh = NewClientSecret()
		refreshTok = base
		refreshTok.Kind, refreshTok.Hash = school.TokenRefresh, hashSecret(refresh)
		refreshTok.ExpiresAt = now.Add(c.refreshTokenLifetime())
	}
	// The pupil's facts are read before the transaction so that the write
	// transaction (SQLite has one writer) holds only the redemption, the
	// consent check and the inserts.
	profile, err := LoadPupilProfile(ctx, s.p.opt.Store, base.PupilID)
	if errors.Is(err, school.ErrNotFound) {
		s.p.log.Info("pupil gone: tokens refused", "pupil", base.PupilID, "platform", c.pf.ID)
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the pupil's consent does not cover this platform")
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	var denied, reused bool
	err = s.p.opt.Store.InTx(ctx, func(q school.Queries) error {
		denied, reused = false, false
		if err := redeem(q); err != nil {
			if errors.Is(err, school.ErrUsed) {
				reused = true
			}
			return err
		}
		rel, err := s.releaseFor(ctx, q, c, profile)
		if release.Refused(err) {
			denied = true
			return errConsent
		}
		if err != nil {
			return err
		}
		claims := oidcClaims(rel, scopes)
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
		_, err = q.AddRelease(ctx, school.Release{PupilID: base.PupilID, PlatformID: c.pf.ID, PlatformName: c.pf.Name,
			Protocol: school.ProtocolOIDC, Via: "id_token", Claims: claimNames(claims)})
		return err
	})
	switch {
	case reused:
		// A second redemption of one code or refresh token: revoke what
		// the grant produced.
		if _, ok := req.(*authRequest); ok {
			s.codeReused(ctx, base.AuthRequestID)
		} else {
			n, _ := s.p.opt.Store.RevokeOIDCTokens(context.WithoutCancel(ctx), school.OIDCTokenFilter{FamilyID: base.FamilyID})
			s.p.log.Warn("refresh token reused: grant revoked", "family", base.FamilyID, "revoked", n)
		}
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
		n, _ := s.p.opt.Store.RevokeOIDCTokens(context.WithoutCancel(ctx), school.OIDCTokenFilter{FamilyID: tok.FamilyID})
		s.p.log.Warn("rotated refresh token reused: grant revoked", "family", tok.FamilyID, "revoked", n)
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
		f = school.OIDCTokenFilter{FamilyID: tok.FamilyID}
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
		sid = s.p.sid(r.rec.SessionRef, r.client.GetID())
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
		case ClaimName:
			info.Name, _ = v.(string)
		case ClaimGivenName:
			info.GivenName, _ = v.(string)
		case ClaimFamilyName:
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

// userinfoClaims checks the access token and the pupil's consent, gathers
// the claims and logs their release. Reads come first and the release is
// one insert: no write transaction is held open while the claims are
// gathered (SQLite has a single writer).
func (s *oidcStorage) userinfoClaims(ctx context.Context, tokenID, subject string) (map[string]any, error) {
	st := s.p.opt.Store
	tok, err := st.GetOIDCToken(ctx, tokenID)
	if err != nil || tok.Kind != school.TokenAccess || tok.Subject != subject || !tok.ActiveAt(s.now()) {
		return nil, errInvalidToken
	}
	c, err := s.clientByPlatform(ctx, tok.PlatformID)
	if err != nil {
		return nil, err
	}
	profile, err := LoadPupilProfile(ctx, st, tok.PupilID)
	if errors.Is(err, school.ErrNotFound) {
		return nil, errConsent
	}
	if err != nil {
		return nil, err
	}
	rel, err := s.releaseFor(ctx, st, c, profile)
	if release.Refused(err) {
		return nil, errConsent
	}
	if err != nil {
		return nil, err
	}
	// The token's grant logged the release (one entry per sign-in); what
	// userinfo gives is never more than the scopes the grant logged, and
	// less when consent narrowed since.
	return oidcClaims(rel, tok.Scopes), nil
}

// releaseFor reads the pupil's consent state through q (one query) and
// computes what the client's platform may receive (release.Compute).
func (s *oidcStorage) releaseFor(ctx context.Context, q school.Queries, c *oidcClient, profile school.PupilProfile) (release.Release, error) {
	st, err := q.ConsentState(ctx, profile.Pupil.ID, c.pf.ID)
	if err != nil {
		return release.Release{}, err
	}
	return release.Compute(release.Input{Profile: profile, Platform: c.pf, State: st, PairwiseSecret: s.p.opt.PairwiseSecret, Sector: c.sector})
}

// SetIntrospectionFromToken implements op.Storage: only the platform the
// token was issued to learns about it, and no personal claims are given.
func (s *oidcStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	tok, err := s.p.opt.Store.GetOIDCToken(ctx, tokenID)
	if err != nil || tok.Kind != school.TokenAccess || tok.Subject != subject || !tok.ActiveAt(s.now()) {
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

// Health implements op.Storage.
func (s *oidcStorage) Health(ctx context.Context) error { return s.p.opt.Store.Ping(ctx) }
