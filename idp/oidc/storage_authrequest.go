package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/school"
)

// Lifetimes of the authorization steps.
const (
	authRequestLifetime = 10 * time.Minute // from /authorize to a finished login
	authCodeLifetime    = time.Minute      // from the code to its redemption
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
	return s.p.opt.Sealer.SealJSON(st, purpose)
}

// open returns the state sealed in v for purpose: ErrNotFound when v is
// not one (forged, altered, or sealed under a key no longer configured),
// ErrExpired when past its expiry.
func (s *oidcStorage) open(v, purpose string) (authState, error) {
	var st authState
	if err := s.p.opt.Sealer.OpenJSON(v, purpose, maxSealedLen, &st); errors.Is(err, school.ErrUnseal) {
		return st, fmt.Errorf("%s: %w", purpose, school.ErrNotFound)
	} else if err != nil {
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

func (r *refreshRequest) GetAMR() []string       { return r.tok.AMR }
func (r *refreshRequest) GetAudience() []string  { return []string{r.client.GetID()} }
func (r *refreshRequest) GetAuthTime() time.Time { return r.tok.AuthTime }
func (r *refreshRequest) GetClientID() string    { return r.client.GetID() }
func (r *refreshRequest) GetScopes() []string    { return r.scopes }
func (r *refreshRequest) GetSubject() string     { return r.tok.Subject }

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
	// The id is time-ordered (school.NewLogID: milliseconds, then 80
	// random bits): the access token that redeems the code names it
	// (code_id, a unique index), and time-ordered keys go to the index's
	// newest pages, which are in the cache, where random ones land on a
	// page of a million-entry index that mostly is not.
	st := authState{ID: school.NewLogID(now), PlatformID: c.pf.ID, Params: params, CreatedAt: now, ExpiresAt: now.Add(authRequestLifetime)}
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
		c.direct = func(id string) string { return s.p.opt.LoginURL(HandoffPath + "?id=" + url.QueryEscape(id)) }
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

// SaveAuthCode implements op.Storage. The code is the sealed request
// (codeAuthorizer): there is nothing to save.
func (s *oidcStorage) SaveAuthCode(context.Context, string, string) error { return nil }

// DeleteAuthRequest implements op.Storage: a sealed request has no row.
func (s *oidcStorage) DeleteAuthRequest(context.Context, string) error { return nil }
