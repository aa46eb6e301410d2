package oidc

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/web"
)

// Sessions tells the OpenID provider who is logged in; *login.Login
// implements it.
type Sessions interface {
	// CurrentConsent returns the request's valid pupil session and the
	// consent state of its pupil for platformID (the zero state when the
	// pupil is gone), read together; school.ErrNotFound or
	// school.ErrExpired when there is no valid session.
	CurrentConsent(r *http.Request, platformID string) (school.Session, school.ConsentState, error)
	// HasCookie reports whether the request carries a session cookie at
	// all (without reading the store).
	HasCookie(r *http.Request) bool
}

// Options are the dependencies and settings of the OpenID provider.
type Options struct {
	// Issuer is the public base URL without a path, e.g.
	// https://elevid.example.dk; discovery is served at
	// Issuer+"/.well-known/openid-configuration". An http issuer is
	// accepted for development and tests only.
	Issuer string
	Store  school.Store
	// Sealer seals the signing keys at rest.
	Sealer *school.Sealer
	// PairwiseSecret (≥ 32 bytes, see PairwiseSecret) derives pairwise
	// subjects and the key that seals access tokens and codes.
	PairwiseSecret []byte
	Site           *web.Site
	Sessions       Sessions
	// LoginURL and ReauthURL send the browser to the passkey login and
	// back to returnTo (LoginURL and ReauthURL of this package when nil).
	LoginURL  func(returnTo string) string
	ReauthURL func(returnTo string) string
	// Keys is the signing key rotation policy.
	Keys KeyPolicy
	// HTTPClient sends back-channel logout tokens; a client with a
	// 5-second timeout when nil.
	HTTPClient *http.Client
	// Access ends access (RP-initiated logout ends the login session
	// through it) and wakes the logout queue worker (RunLogoutQueue)
	// when notices were queued. cmd/elevid passes the one service; nil
	// means a service of the provider's own (tests).
	Access *access.Service
	Now    func() time.Time
	Logger *slog.Logger
}

// Provider is ElevID's OpenID Connect provider for learning platforms, built on
// zitadel/oidc's op package with the Store behind op.Storage. Every piece
// of state (auth requests, codes, tokens, keys) lives in the Store.
type Provider struct {
	opt      Options
	provider *op.Provider
	storage  *oidcStorage
	keys     *Keys
	crypto   *TokenCrypto
	clients  *clientCache
	wake     <-chan struct{} // logout notices were queued
	log      *slog.Logger
}

// OIDC endpoint paths.
const (
	oidcAuthorizePath  = "/oidc/authorize"
	oidcTokenPath      = "/oidc/token"
	oidcUserinfoPath   = "/oidc/userinfo"
	oidcRevokePath     = "/oidc/revoke"
	oidcIntrospectPath = "/oidc/introspect"
	EndSessionPath     = "/oidc/end_session"
	oidcKeysPath       = "/oidc/keys"
	// HandoffPath is the login hand-off, where a passkey login returns
	// to (ContinueLogin continues those logins).
	HandoffPath       = "/oidc/login"
	oidcLoggedOutPath = "/oidc/logged-out"
	discoveryPath     = "/.well-known/openid-configuration"
)

// BypassPatterns are the mux patterns that must accept cross-site
// requests (web.Site.CrossOrigin bypass): browser-based platforms call the
// token, revocation, introspection and userinfo endpoints with fetch, and
// platforms may POST authorization and logout requests from their pages.
var BypassPatterns = []string{
	"POST " + oidcAuthorizePath,
	"POST " + oidcTokenPath,
	"POST " + oidcUserinfoPath,
	"POST " + oidcRevokePath,
	"POST " + oidcIntrospectPath,
	"POST " + EndSessionPath,
}

// New builds the provider and makes sure signing keys exist.
func New(ctx context.Context, opt Options) (*Provider, error) {
	u, err := url.Parse(opt.Issuer)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/"):
		return nil, fmt.Errorf("oidc: issuer %q must be an http(s) URL without a path", opt.Issuer)
	case opt.Store == nil || opt.Sealer == nil || opt.Site == nil || opt.Sessions == nil:
		return nil, errors.New("oidc: store, sealer, site and sessions are required")
	case len(opt.PairwiseSecret) < 32:
		return nil, errors.New("oidc: the pairwise secret must have at least 32 bytes")
	}
	opt.Issuer = strings.TrimSuffix(opt.Issuer, "/")
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.LoginURL == nil {
		opt.LoginURL = login.LoginURL
	}
	if opt.ReauthURL == nil {
		opt.ReauthURL = login.ReauthURL
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opt.Access == nil {
		opt.Access = access.New(access.Options{Now: opt.Now, Logger: opt.Logger})
	}
	p := &Provider{opt: opt, log: opt.Logger.With("component", "oidc"), wake: opt.Access.Subscribe()}
	p.keys = NewKeys(opt.Store, opt.Sealer, opt.Now, opt.Keys)
	p.crypto = NewTokenCrypto(opt.PairwiseSecret)
	p.clients = newClientCache(opt.Now)
	p.storage = &oidcStorage{p: p}
	cfg := &op.Config{
		CodeMethodS256:             true,
		AuthMethodPost:             true,
		GrantTypeRefreshToken:      true,
		DefaultLogoutRedirectURI:   oidcLoggedOutPath,
		SupportedScopes:            supportedScopes(),
		SupportedClaims:            supportedClaims(),
		BackChannelLogoutSupported: true,
		// The remaining Config fields keep their zero values: no request
		// objects, no private_key_jwt, no device flow.
		BackChannelLogoutSessionSupported: true,
	}
	opts := []op.Option{
		op.WithCrypto(p.crypto),
		op.WithCustomAuthEndpoint(op.NewEndpoint(oidcAuthorizePath)),
		op.WithCustomTokenEndpoint(op.NewEndpoint(oidcTokenPath)),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(oidcUserinfoPath)),
		op.WithCustomRevocationEndpoint(op.NewEndpoint(oidcRevokePath)),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(oidcIntrospectPath)),
		op.WithCustomEndSessionEndpoint(op.NewEndpoint(EndSessionPath)),
		op.WithCustomKeysEndpoint(op.NewEndpoint(oidcKeysPath)),
	}
	if u.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.provider, err = op.NewProvider(cfg, p.storage, op.StaticIssuer(opt.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	if _, err := p.keys.Published(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Keys returns the signing key manager (for an operator's rotation).
func (p *Provider) Keys() *Keys { return p.keys }

// Mount registers the provider's routes on mux:
//
//	GET  /.well-known/openid-configuration  discovery
//	     /oidc/authorize                    authorization endpoint (GET, POST)
//	GET  /oidc/login                        hand-off to and from the passkey login
//	POST /oidc/token                        token endpoint
//	     /oidc/userinfo                     userinfo (GET, POST)
//	POST /oidc/revoke, /oidc/introspect     revocation, introspection
//	     /oidc/end_session                  RP-initiated logout (GET, POST)
//	GET  /oidc/keys                         JWKS
//	GET  /oidc/logged-out                   the page after logout
func (p *Provider) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+discoveryPath, p.discovery)
	mux.Handle(oidcAuthorizePath, p.wrap(singleParams(p.authorize, p.pageParamError)))
	mux.Handle("GET "+HandoffPath, p.wrap(p.loginHandoff))
	mux.Handle("POST "+oidcTokenPath, p.wrap(singleParams(p.token, oauthParamError)))
	mux.Handle(oidcUserinfoPath, p.wrap(p.userinfo))
	mux.Handle("POST "+oidcRevokePath, p.wrap(singleParams(p.provider.ServeHTTP, oauthParamError)))
	mux.Handle("POST "+oidcIntrospectPath, p.wrap(singleParams(p.provider.ServeHTTP, oauthParamError)))
	mux.Handle(EndSessionPath, p.wrap(singleParams(p.provider.ServeHTTP, p.pageParamError)))
	mux.Handle("GET "+oidcKeysPath, p.wrap(p.provider.ServeHTTP))
	mux.HandleFunc("GET "+oidcLoggedOutPath, p.loggedOut)
}

// reqState is per-request state shared between the handlers and the
// storage: the platform loaded for the request (so it is read once).
type reqState struct {
	w      http.ResponseWriter
	r      *http.Request
	client *oidcClient
}

type reqStateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	if s, ok := ctx.Value(reqStateKey{}).(*reqState); ok {
		return s
	}
	return &reqState{}
}

// wrap gives every request its reqState and the issuer zitadel expects.
func (p *Provider) wrap(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &reqState{w: w}
		ctx := context.WithValue(op.ContextWithIssuer(r.Context(), p.opt.Issuer), reqStateKey{}, st)
		r = r.WithContext(ctx)
		st.r = r
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	})
}

func supportedScopes() []string {
	s := []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}
	for k := range scopeClaims {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

func supportedClaims() []string {
	return append([]string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash", "c_hash"}, KnownClaims()...)
}

// discovery serves the provider metadata, trimmed to what ElevID supports
// (zitadel's defaults also list implicit and JWT-bearer flows).
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	ctx := op.ContextWithIssuer(r.Context(), p.opt.Issuer)
	d := op.CreateDiscoveryConfig(ctx, p.provider, p.storage)
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{"query", "form_post"}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	d.SubjectTypesSupported = []string{string(school.SubjectPairwise), string(school.SubjectPublic)}
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
	d.RevocationEndpointAuthMethodsSupported = d.TokenEndpointAuthMethodsSupported
	d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.TokenEndpointAuthSigningAlgValuesSupported = nil
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	d.RequestObjectSigningAlgValuesSupported = nil
	d.ACRValuesSupported = login.ACRValuesSupported()
	d.UILocalesSupported = nil
	d.DeviceAuthorizationEndpoint = ""
	d.ClaimsParameterSupported = false
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_ = json.NewEncoder(w).Encode(d)
}

// authorize checks what zitadel would otherwise answer with a redirect or
// a bare text: an unknown client or unregistered redirect URI gets ElevID's
// error page (never a redirect); an unsupported response type or missing
// PKCE is redirected as the OAuth error; the rest is zitadel's.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		p.opt.Site.Error(w, r, http.StatusMethodNotAllowed, "error.method")
		return
	}
	if err := r.ParseForm(); err != nil {
		p.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	f := r.Form
	clientID, redirectURI := f.Get("client_id"), f.Get("redirect_uri")
	if clientID == "" {
		p.log.Info("authorize: no client_id")
		p.opt.Site.Error(w, r, http.StatusBadRequest, "oidc.err.client")
		return
	}
	c, err := p.storage.client(r.Context(), clientID)
	if err != nil {
		p.log.Info("authorize: unknown client", "client_id", clientID, "err", err)
		p.opt.Site.Error(w, r, http.StatusBadRequest, "oidc.err.client")
		return
	}
	if redirectURI == "" || !slices.Contains(c.s.RedirectURIs, redirectURI) {
		p.log.Warn("authorize: unregistered redirect URI", "client_id", clientID, "redirect_uri", redirectURI)
		p.opt.Site.Error(w, r, http.StatusBadRequest, "oidc.err.redirect_uri")
		return
	}
	state := f.Get("state")
	rt := f.Get("response_type")
	if rt != string(oidc.ResponseTypeCode) {
		code, desc := "unsupported_response_type", "only response_type=code is supported"
		if rt == "" {
			code, desc = "invalid_request", "response_type is missing"
		}
		p.redirectError(w, r, redirectURI, rt, state, code, desc)
		return
	}
	challenge, method := f.Get("code_challenge"), f.Get("code_challenge_method")
	switch {
	case c.s.Public && challenge == "":
		p.redirectError(w, r, redirectURI, rt, state, "invalid_request", "PKCE (code_challenge with S256) is required")
		return
	case challenge != "" && method != string(oidc.CodeChallengeMethodS256):
		p.redirectError(w, r, redirectURI, rt, state, "invalid_request", "code_challenge_method must be S256")
		return
	case f.Get("request") != "" || f.Get("request_uri") != "":
		p.redirectError(w, r, redirectURI, rt, state, "request_not_supported", "")
		return
	}
	if f.Get("scope") == "" || !slices.Contains(strings.Fields(f.Get("scope")), oidc.ScopeOpenID) {
		p.redirectError(w, r, redirectURI, rt, state, "invalid_scope", "the openid scope is required")
		return
	}
	p.provider.ServeHTTP(w, r)
}

// redirectError sends an OAuth error (RFC 6749 §4.1.2.1) to a
// registered redirect URI: in the fragment for response types that would
// use one, else in the query.
func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, responseType, state, code, desc string) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		p.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	v := url.Values{"error": {code}}
	if desc != "" {
		v.Set("error_description", desc)
	}
	if state != "" {
		v.Set("state", state)
	}
	if responseType != "" && responseType != string(oidc.ResponseTypeCode) {
		u.Fragment = v.Encode()
	} else {
		q := u.Query()
		for k, vs := range v {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
	}
	p.log.Info("authorize: error returned to platform", "error", code, "description", desc)
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// token accepts only the grants ElevID supports before zitadel's handler.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("cannot parse form"), nil)
		return
	}
	switch oidc.GrantType(r.PostForm.Get("grant_type")) {
	case oidc.GrantTypeCode, oidc.GrantTypeRefreshToken:
		p.provider.ServeHTTP(w, r)
	case "":
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("grant_type missing"), nil)
	default:
		op.RequestError(w, r, oidc.ErrUnsupportedGrantType(), nil)
	}
}

// pageParamError answers a browser request (authorization, end session)
// that repeats a parameter with ElevID's error page, never a redirect: with
// two redirect_uri values there is no trustworthy place to send it.
func (p *Provider) pageParamError(w http.ResponseWriter, r *http.Request, name string, err error) {
	p.log.Warn("request refused: repeated or malformed parameter", "path", r.URL.Path, "param", name, "err", err)
	p.opt.Site.Error(w, r, http.StatusBadRequest, "oidc.err.repeated")
}

// oauthParamError answers a back-channel request (token, revocation,
// introspection) that repeats a parameter with invalid_request.
func oauthParamError(w http.ResponseWriter, r *http.Request, name string, err error) {
	desc := "parameter " + name + " is repeated"
	if !errors.Is(err, errRepeatedParam) {
		desc = "cannot parse the request"
	}
	op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("%s", desc), nil)
}

func (p *Provider) loggedOut(w http.ResponseWriter, r *http.Request) {
	p.opt.Site.Render(w, r, http.StatusOK, "oidc-logged-out", nil)
}

// TokenCrypto seals opaque access tokens ("tokenID:subject") and
// authorization codes with AES-256-GCM under a key derived from the
// instance's pairwise secret, so every node can open them. A token is
// useful only while its row in the store is active. The demo platform
// seals its cookie state with one too (NewTokenCrypto of its own secret).
type TokenCrypto struct{ aead cipher.AEAD }

// NewTokenCrypto returns a TokenCrypto keyed by secret.
func NewTokenCrypto(secret []byte) *TokenCrypto {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("elevid oidc token key v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &TokenCrypto{aead: aead}
}

var tokenAAD = []byte("elevid-oidc")

// Encrypt seals s (random nonce, base64url).
func (c *TokenCrypto) Encrypt(s string) (string, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, []byte(s), tokenAAD)), nil
}

// Decrypt opens a value of Encrypt; an altered or foreign value is an error.
func (c *TokenCrypto) Decrypt(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < c.aead.NonceSize()+c.aead.Overhead() {
		return "", errors.New("malformed token")
	}
	n := c.aead.NonceSize()
	pt, err := c.aead.Open(nil, b[:n], b[n:], tokenAAD)
	if err != nil {
		return "", errors.New("invalid token")
	}
	return string(pt), nil
}

func hashSecret(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
