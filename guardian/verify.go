package guardian

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// Verification configures optional upstream verification of guardians
// with an external OpenID provider (e.g. a national eID broker such as
// MitID): the guardian signs in there from the consent page, and the
// verified identity (issuer + " " + sub) is recorded with the consent.
type Verification struct {
	// Name is the provider as guardians know it ("MitID").
	Name string
	// Issuer, ClientID and ClientSecret identify ElevID at the provider;
	// the redirect URI to register is BaseURL + "/consent/verified".
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes requested ("openid" is always added).
	Scopes []string
	// Required refuses consent decisions without verification.
	Required bool
	// TTL bounds the time from starting the verification to the
	// callback, and from the callback to the decision (15 min when zero).
	TTL time.Duration
	// HTTPClient talks to the provider (http.DefaultClient when nil).
	HTTPClient *http.Client
}

// ErrVerificationRequired is returned by Decide when verification is
// required and the decision carries no verified identity.
var ErrVerificationRequired = errors.New("guardian: guardian verification required")

// verifyCookie binds a started verification to the browser that started
// it: state and consent token, HttpOnly, SameSite=Lax (the provider's
// redirect back is a cross-site top-level GET, which Lax cookies survive).
const verifyCookie = "elevid_verify"

// upstream is the discovered provider, fetched on first use so that an
// unreachable provider does not stop ElevID from starting.
type upstream struct {
	cfg Verification

	mu       sync.Mutex
	provider *oidc.Provider
}

func (u *upstream) ctx(ctx context.Context) context.Context {
	c := u.cfg.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, c), c)
}

// discover returns the provider, running discovery if it has not
// succeeded yet.
func (u *upstream) discover(ctx context.Context) (*oidc.Provider, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.provider != nil {
		return u.provider, nil
	}
	p, err := oidc.NewProvider(u.ctx(ctx), u.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("guardian: discovery of %s: %w", u.cfg.Issuer, err)
	}
	u.provider = p
	return p, nil
}

func (u *upstream) oauth(p *oidc.Provider, redirect string) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	for _, s := range u.cfg.Scopes {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return &oauth2.Config{ClientID: u.cfg.ClientID, ClientSecret: u.cfg.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: scopes}
}

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte("elevid-guardian-verify:" + state))
	return h[:]
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("guardian: crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// verifiedFor returns the verified identity recorded for a consent link,
// or "" (also when verification is not configured).
func (s *Service) verifiedFor(ctx context.Context, token string) (string, error) {
	if s.up == nil {
		return "", nil
	}
	v, err := s.opt.Store.GuardianVerified(ctx, school.LinkHash(token))
	if errors.Is(err, school.ErrNotFound) {
		return "", nil
	}
	return v, err
}

func (s *Service) verifyTTL() time.Duration {
	if s.up.cfg.TTL > 0 {
		return s.up.cfg.TTL
	}
	return 15 * time.Minute
}

// verifyStart begins an upstream verification from a consent link
// (POST /consent/{token}/verify): it checks the link, stores state, nonce
// and PKCE verifier bound to the link, sets the browser binding cookie and
// redirects to the provider.
func (s *Service) verifyStart(w http.ResponseWriter, r *http.Request) {
	private(w)
	ctx := r.Context()
	token := r.PathValue("token")
	if !plausibleToken(token) {
		s.linkProblem(w, r, ErrLinkInvalid)
		return
	}
	l, err := s.opt.Store.GuardianLinkByHash(ctx, school.LinkHash(token))
	if err != nil {
		s.linkProblem(w, r, linkErr(err))
		return
	}
	if err := s.opt.Store.InTx(ctx, func(q school.Queries) error { _, err := s.target(ctx, q, l); return err }); err != nil {
		s.linkProblem(w, r, err)
		return
	}
	p, err := s.up.discover(ctx)
	if err != nil {
		s.log.Error("guardian: guardian verification unavailable", "err", err)
		s.opt.Site.Error(w, r, http.StatusBadGateway, "parent.err.verify_unavailable")
		return
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	if _, err := s.opt.Store.CreateGuardianVerification(ctx, school.GuardianVerification{StateHash: stateHash(state), LinkHash: l.Hash,
		Nonce: nonce, Verifier: verifier, ExpiresAt: s.now().Add(s.verifyTTL())}); err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: state + "." + token, Path: "/consent/", MaxAge: int(s.verifyTTL().Seconds()),
		HttpOnly: true, Secure: s.opt.Secure, SameSite: http.SameSiteLaxMode})
	u := s.up.oauth(p, s.opt.BaseURL+"/consent/verified").AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// verifyCallback is the provider's redirect back (GET /consent/verified),
// a cross-site top-level GET. The state must match the browser's cookie
// and a stored, unused, unexpired verification (which it uses up); the
// code is exchanged with the PKCE verifier and the ID token checked
// (signature, issuer, audience, expiry, nonce). Only then is the identity
// recorded for the consent link. Any failure shows a page and records
// nothing.
func (s *Service) verifyCallback(w http.ResponseWriter, r *http.Request) {
	private(w)
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	c, cerr := r.Cookie(verifyCookie)
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: "", Path: "/consent/", MaxAge: -1, HttpOnly: true, Secure: s.opt.Secure, SameSite: http.SameSiteLaxMode})
	fail := func(reason string, err error) {
		s.log.Warn("guardian: guardian verification refused", "reason", reason, "err", err)
		s.opt.Site.Render(w, r, http.StatusBadRequest, "parent-link", LinkProblemData{Message: s.opt.Site.T(web.Lang(r), "parent.err.verify_failed")})
	}
	if state == "" || cerr != nil {
		fail("no state or no cookie", cerr)
		return
	}
	cookieState, token, ok := strings.Cut(c.Value, ".")
	if !ok || !plausibleToken(token) || subtle.ConstantTimeCompare([]byte(cookieState), []byte(state)) != 1 {
		fail("state does not match the browser", nil)
		return
	}
	v, err := s.opt.Store.TakeGuardianVerification(ctx, stateHash(state))
	if err != nil {
		fail("state", err)
		return
	}
	if subtle.ConstantTimeCompare(v.LinkHash, school.LinkHash(token)) != 1 {
		fail("state belongs to another link", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail("provider error", fmt.Errorf("%s: %s", e, q.Get("error_description")))
		return
	}
	p, err := s.up.discover(ctx)
	if err != nil {
		fail("discovery", err)
		return
	}
	uctx := s.up.ctx(ctx)
	tok, err := s.up.oauth(p, s.opt.BaseURL+"/consent/verified").Exchange(uctx, q.Get("code"), oauth2.VerifierOption(v.Verifier))
	if err != nil {
		fail("code exchange", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail("no id_token", nil)
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: s.up.cfg.ClientID}).Verify(uctx, raw)
	if err != nil {
		fail("id token", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(v.Nonce)) != 1 {
		fail("nonce", nil)
		return
	}
	if idt.Subject == "" {
		fail("no subject", nil)
		return
	}
	subject := idt.Issuer + " " + idt.Subject
	if err := s.opt.Store.SetGuardianVerified(ctx, v.StateHash, subject, s.now().Add(s.verifyTTL())); err != nil {
		fail("record", err)
		return
	}
	s.log.Info("guardian: guardian verified upstream", "issuer", idt.Issuer)
	http.Redirect(w, r, "/consent/"+token+"#consent-form", http.StatusSeeOther)
}
