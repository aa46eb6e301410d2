package idp

import (
	"context"
	"encoding/base64"
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

// authState is an authorization request as ElevID seals it (AES-GCM
// under the encryption keys, school.Sealer): sealed for the request it is
// the request's id in the login URLs; with the login's result added and a
// short expiry it is the authorization code. Nothing is stored for either:
// a code's single use is the unique CodeID of the one access token issued
// from it (school.OIDCStore.CreateOIDCToken).
type authState struct {
	ID         string     `json:"i"` // the grant's id: tokens' AuthRequestID, FamilyID and CodeID
	PlatformID string     `json:"p"`
	Params     authParams `json:"a"`
	CreatedAt  time.Time  `json:"c"`
	ExpiresAt  time.Time  `json:"e"` // of the request, or of the code
	// Set when the login hand-off completes the request (codes only).
	PupilID    string    `json:"u,omitempty"`
	SessionRef string    `json:"s,omitempty"`
	AuthTime   time.Time `json:"t,omitzero"`
	AMR        []string  `json:"m,omitempty"`
	ACR        string    `json:"r,omitempty"`
}

// Sealing contexts: a request id cannot be presented as a code.
const (
	sealAuthRequest = "oidc-auth-request"
	sealAuthCode    = "oidc-auth-code"
)

// seal returns st sealed for purpose, URL-safe.
func (s *oidcStorage) seal(st authState, purpose string) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.p.opt.Sealer.Seal(b, purpose)), nil
}

// open returns the state sealed in v for purpose: ErrNotFound when v is
// not one (forged, altered, or sealed under a key no longer configured),
// ErrExpired when past its expiry.
func (s *oidcStorage) open(v, purpose string) (authState, error) {
	var st authState
	if len(v) > maxSealedLen {
		return st, fmt.Errorf("%s: %w", purpose, school.ErrNotFound)
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return st, fmt.Errorf("%s: %w", purpose, school.ErrNotFound)
	}
	b, err := s.p.opt.Sealer.Open(raw, purpose)
	if err != nil {
		return st, fmt.Errorf("%s: %w", purpose, school.ErrNotFound)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", purpose, err)
	}
	if !s.now().Before(st.ExpiresAt) {
		return st, fmt.Errorf("%s: %w", purpose, school.ErrExpired)
	}
	return st, nil
}

// maxSealedLen bounds what open decrypts (a request with the longest
// parameters ElevID accepts is far shorter).
const maxSealedLen = 16 << 10

// authRequest implements op.AuthRequest over a sealed request or code.
type authRequest struct {
	// handle is the sealed request, its id in URLs (GetID); empty for a
	// request read from a code.
	handle  string
	st      authState
	client  *oidcClient
	subject string
	// code is the sealed code, once the login hand-off completed the
	// request (codeAuthorizer hands it to zitadel).
	code string
	// claims are the released claims, worked out when tokens are issued.
	claims map[string]any
}

func (a *authRequest) GetID() string {
	if a.handle != "" {
		return a.handle
	}
	return a.st.ID
}
func (a *authRequest) GetACR() string                     { return a.st.ACR }
func (a *authRequest) GetAMR() []string                   { return a.st.AMR }
func (a *authRequest) GetAudience() []string              { return []string{a.st.Params.ClientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.st.AuthTime }
func (a *authRequest) GetClientID() string                { return a.st.Params.ClientID }
func (a *authRequest) GetNonce() string                   { return a.st.Params.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.st.Params.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.st.Params.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.st.Params.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.st.Params.Scopes }
func (a *authRequest) GetState() string                   { return a.st.Params.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.st.PupilID != "" }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.st.Params.Challenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.st.Params.Challenge, Method: oidc.CodeChallengeMethod(a.st.Params.Method)}
}

// complete records the login in the request and seals its code: what the
// token endpoint needs, valid for authCodeLifetime. The parameters only
// the authorization step reads (state, prompt, max_age, hints, response
// mode) are left out.
func (s *oidcStorage) complete(a *authRequest, pupilID, sessionRef string, authTime time.Time, amr []string, acr string) error {
	a.st.PupilID, a.st.SessionRef, a.st.AuthTime, a.st.AMR, a.st.ACR = pupilID, sessionRef, authTime, amr, acr
	a.subject = a.client.subject(s.p.opt.PairwiseSecret, pupilID)
	code := a.st
	code.ExpiresAt = s.now().Add(authCodeLifetime)
	p := &code.Params
	p.State, p.Prompt, p.MaxAge, p.Hint, p.ACRValues, p.ResponseMode = "", nil, nil, "", nil, ""
	var err error
	a.code, err = s.seal(code, sealAuthCode)
	return err
}

// codeAuthorizer is the provider with one change for the authorization
// response: the code zitadel puts there (Crypto().Encrypt of the request
// id) is the request's sealed code.
type codeAuthorizer struct {
	op.Authorizer
	code string
}

func (c codeAuthorizer) Crypto() op.Crypto { return fixedCode{c.Authorizer.Crypto(), c.code} }

type fixedCode struct {
	op.Crypto
	code string
}

func (f fixedCode) Encrypt(string) (string, error) { return f.code, nil }

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
	now := s.now()
	st := authState{ID: school.NewID(), PlatformID: c.pf.ID, Params: params, CreatedAt: now, ExpiresAt: now.Add(authRequestLifetime)}
	handle, err := s.seal(st, sealAuthRequest)
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
	return &authRequest{handle: handle, st: st, client: c}, nil
}

// wrapAuthRequest loads a sealed request's platform.
func (s *oidcStorage) wrapAuthRequest(ctx context.Context, st authState) (*authRequest, error) {
	c, err := s.clientByPlatform(ctx, st.PlatformID)
	if err != nil {
		return nil, err
	}
	a := &authRequest{st: st, client: c}
	if st.PupilID != "" {
		a.subject = c.subject(s.p.opt.PairwiseSecret, st.PupilID)
	}
	return a, nil
}

// AuthRequestByID implements op.Storage: id is the sealed request
// (ErrNotFound when it is not one, ErrExpired).
func (s *oidcStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	st, err := s.open(id, sealAuthRequest)
	if err != nil {
		return nil, err
	}
	a, err := s.wrapAuthRequest(ctx, st)
	if err != nil {
		return nil, err
	}
	a.handle = id
	return a, nil
}

// AuthRequestByCode implements op.Storage: the code is the sealed,
// completed request. Its single use is checked when its token is stored
// (issue): a code presented a second time is refused there, and every
// token issued from it is revoked (RFC 6749 §4.1.2).
func (s *oidcStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	st, err := s.open(code, sealAuthCode)
	switch {
	case errors.Is(err, school.ErrExpired):
		return nil, errors.New("authorization code expired")
	case err != nil:
		return nil, err
	case st.PupilID == "":
		return nil, errors.New("authorization code without a login")
	}
	return s.wrapAuthRequest(ctx, st)
}

// revokeGrant revokes every token of a grant (a code's tokens and their
// refresh rotations share the family) after a second use of its code or of
// a rotated refresh token; why names that use in the log.
func (s *oidcStorage) revokeGrant(ctx context.Context, familyID, why string) {
	n, err := s.p.opt.Store.RevokeOIDCTokens(context.WithoutCancel(ctx), school.OIDCTokenFilter{FamilyID: familyID})
	if err != nil {
		s.p.log.Error("revoking a reused grant failed", "why", why, "family", familyID, "err", err)
		return
	}
	s.p.log.Warn(why+": grant revoked", "family", familyID, "revoked", n)
}

// SaveAuthCode implements op.Storage. The code is the sealed request
// (codeAuthorizer): there is nothing to save.
func (s *oidcStorage) SaveAuthCode(context.Context, string, string) error { return nil }

// DeleteAuthRequest implements op.Storage: a sealed request has no row.
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
	var denied, reused bool
	err = s.p.opt.Store.InTx(ctx, func(q school.Queries) error {
		denied, reused = false, false
		if redeem != nil {
			if err := redeem(q); err != nil {
				reused = errors.Is(err, school.ErrUsed)
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
		claims := oidcClaims(rel, scopes)
		stash(claims)
		if access, err = q.CreateOIDCToken(ctx, access); err != nil {
			reused = errors.Is(err, school.ErrUsed) // the code was redeemed before
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
		why := "refresh token reused"
		if _, ok := req.(*authRequest); ok {
			why = "authorization code reused"
		}
		s.revokeGrant(ctx, base.FamilyID, why)
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
		s.revokeGrant(ctx, tok.FamilyID, "rotated refresh token reused")
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
	rel, err := s.releaseFor(ctx, st, c, tok.PupilID)
	if release.Refused(err) || errors.Is(err, school.ErrNotFound) {
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

// releaseFor reads the pupil's profile and consent state through q (one
// query) and computes what the client's platform may receive
// (release.Compute). ErrNotFound when the pupil is gone.
func (s *oidcStorage) releaseFor(ctx context.Context, q school.Queries, c *oidcClient, pupilID string) (release.Release, error) {
	profile, st, err := q.ReleaseInputs(ctx, pupilID, c.pf.ID)
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
