package demoplatform

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// ClientID is the client id of the built-in demo platform.
const ClientID = "elevid-demo-platform"

const demoPath = "/demo/platform"

// demoSecret derives the demo platform's client secret from the instance
// secret, so registration is idempotent and nothing is stored in clear.
func demoSecret(instanceSecret []byte) string {
	m := hmac.New(sha256.New, instanceSecret)
	m.Write([]byte("elevid demo platform client secret"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Register registers (or updates) the built-in demo platform
// for issuer: a confidential client with PKCE that may receive the
// profile, class and eduPerson claims. It is idempotent; the lead calls it
// at start in demo mode. Pupils still need a guardian's consent for it.
func Register(ctx context.Context, st school.Store, issuer string, instanceSecret []byte) (school.Platform, error) {
	issuer = strings.TrimSuffix(issuer, "/")
	spec := oidc.PlatformSpec{
		Name: "Demo-læringsplatform", ClientID: ClientID,
		RedirectURIs: []string{issuer + demoPath + "/callback"}, PostLogoutRedirectURIs: []string{issuer + demoPath},
		BackchannelLogoutURI: issuer + demoPath + "/backchannel-logout",
		Attributes: []school.AttributeGrant{
			{Name: release.Name, JustificationDA: "Viser elevens navn på demo-siden", JustificationEN: "Shows the pupil's name on the demo page"},
			{Name: release.GivenName, JustificationDA: "Hilser på eleven", JustificationEN: "Greets the pupil"},
			{Name: release.FamilyName, JustificationDA: "Viser elevens navn", JustificationEN: "Shows the pupil's name"},
			{Name: release.Groups, JustificationDA: "Viser elevens klasse", JustificationEN: "Shows the pupil's class"},
			{Name: release.EPPN, JustificationDA: "Viser et stabilt bruger-id", JustificationEN: "Shows a stable user id"},
			{Name: release.Affiliation, JustificationDA: "Viser at brugeren er elev", JustificationEN: "Shows that the user is a pupil"},
			{Name: release.HomeOrg, JustificationDA: "Viser elevens skole", JustificationEN: "Shows the pupil's school"},
			{Name: release.SchoolCode, JustificationDA: "Viser elevens skole", JustificationEN: "Shows the pupil's school"},
		},
		Secret: demoSecret(instanceSecret),
	}
	set, _, err := spec.Settings()
	if err != nil {
		return school.Platform{}, err
	}
	raw, err := json.Marshal(set)
	if err != nil {
		return school.Platform{}, err
	}
	p, err := st.PlatformByClientID(ctx, ClientID)
	if errors.Is(err, school.ErrNotFound) {
		p, _, err = oidc.RegisterPlatform(ctx, st, spec)
		if errors.Is(err, school.ErrConflict) { // another node registered it first
			return st.PlatformByClientID(ctx, ClientID)
		}
		return p, err
	}
	if err != nil {
		return p, err
	}
	return st.UpdatePlatform(ctx, p.ID, func(old school.Platform) (school.Platform, error) {
		old.Settings, old.Attributes = raw, spec.Attributes
		return old, nil
	})
}

// Platform is a tiny learning platform built into ElevID for demo
// mode: it logs in through ElevID's OpenID provider exactly like an
// external platform would (discovery, code flow with PKCE, ID token
// verification, userinfo) and shows the claims it received. It takes
// back-channel logout tokens (validated like a careful platform would:
// signature, issuer, audience, expiry, typ, events, no nonce, jti used
// once) and shows "signed out by ElevID" on the next page load; its own
// "sign out" button ends its session and ElevID's (RP-initiated logout).
//
// Like an external platform it keeps its sessions itself: the ended ones
// in memory, so the demo assumes one node (demo mode runs on one).
type Platform struct {
	issuer string
	site   *web.Site
	cfg    oauth2.Config
	crypto *oidc.TokenCrypto
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	provider *gooidc.Provider
	ended    map[string]time.Time // "sid:…" and "sub:…" ended by a logout token, at
	jtis     map[string]time.Time // logout token ids seen, until they expire
}

// BypassPatterns are the demo platform's routes that take cross-site
// POSTs (ElevID's back-channel logout): exempt from cross-origin
// protection.
var BypassPatterns = []string{"POST " + demoPath + "/backchannel-logout"}

// New returns the demo platform for issuer; instanceSecret is
// the pairwise secret given to oidc.New. client reaches the issuer (nil:
// a 5-second default client).
func New(issuer string, instanceSecret []byte, site *web.Site, client *http.Client, log *slog.Logger) *Platform {
	issuer = strings.TrimSuffix(issuer, "/")
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if log == nil {
		log = slog.Default()
	}
	m := hmac.New(sha256.New, instanceSecret)
	m.Write([]byte("elevid demo platform cookie key"))
	return &Platform{
		issuer: issuer, site: site, client: client, log: log.With("component", "demo-platform"),
		crypto: oidc.NewTokenCrypto(m.Sum(nil)), now: time.Now,
		ended: map[string]time.Time{}, jtis: map[string]time.Time{},
		cfg: oauth2.Config{ClientID: ClientID, ClientSecret: demoSecret(instanceSecret), RedirectURL: issuer + demoPath + "/callback",
			Scopes: []string{gooidc.ScopeOpenID, "profile", "groups", "eduperson", "school"}},
	}
}

// Mount registers GET /demo/platform, /demo/platform/login,
// /demo/platform/callback, POST /demo/platform/logout and POST
// /demo/platform/backchannel-logout.
func (d *Platform) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+demoPath, d.index)
	mux.HandleFunc("GET "+demoPath+"/login", d.login)
	mux.HandleFunc("GET "+demoPath+"/callback", d.callback)
	mux.HandleFunc("POST "+demoPath+"/logout", d.logout)
	mux.HandleFunc("POST "+demoPath+"/backchannel-logout", d.backchannelLogout)
}

func (d *Platform) discover(ctx context.Context) (*gooidc.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.provider != nil {
		return d.provider, nil
	}
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, d.client), d.issuer)
	if err != nil {
		return nil, err
	}
	d.provider = p
	return p, nil
}

// demoState is kept in a sealed cookie between login and callback, and
// the outcome between callback and the page.
type demoState struct {
	State    string     `json:"s,omitempty"`
	Nonce    string     `json:"n,omitempty"`
	Verifier string     `json:"v,omitempty"`
	IDToken  string     `json:"t,omitempty"`
	Sid      string     `json:"i,omitempty"` // ElevID's session id for this platform
	Sub      string     `json:"b,omitempty"`
	At       int64      `json:"a,omitempty"` // sign-in time (Unix)
	Claims   [][]string `json:"c,omitempty"`
	UserInfo [][]string `json:"u,omitempty"`
}

const demoCookie = "elevid_demo_platform"

func (d *Platform) setState(w http.ResponseWriter, s demoState) {
	b, _ := json.Marshal(s)
	v, err := d.crypto.Encrypt(string(b))
	if err != nil {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: demoCookie, Value: v, Path: demoPath, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(d.issuer, "https://"), MaxAge: 3600})
}

func (d *Platform) state(r *http.Request) demoState {
	var s demoState
	c, err := r.Cookie(demoCookie)
	if err != nil {
		return s
	}
	pt, err := d.crypto.Decrypt(c.Value)
	if err != nil {
		return s
	}
	_ = json.Unmarshal([]byte(pt), &s)
	return s
}

// PageData is the data of the demo platform's page.
type PageData struct {
	Claims   [][]string
	UserInfo [][]string
	Error    string
	// SignedOutByElevID is set on the first page load after ElevID ended
	// the session by back-channel logout (e.g. consent withdrawn).
	SignedOutByElevID bool
	SignedOut         bool // the pupil signed out here
}

func (d *Platform) index(w http.ResponseWriter, r *http.Request) {
	s := d.state(r)
	data := PageData{Claims: s.Claims, UserInfo: s.UserInfo, Error: r.URL.Query().Get("error"), SignedOut: r.URL.Query().Has("signed_out")}
	if s.IDToken != "" && d.endedByElevID(s) {
		d.setState(w, demoState{})
		data = PageData{SignedOutByElevID: true}
	}
	w.Header().Set("Cache-Control", "no-store")
	d.site.Render(w, r, http.StatusOK, "oidc-demo", data)
}

// endedByElevID reports whether a logout token ended the session s: one
// naming its sid, or its sub without a sid, sent after it signed in.
func (d *Platform) endedByElevID(s demoState) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.Sid != "" {
		if _, ok := d.ended["sid:"+s.Sid]; ok {
			return true
		}
	}
	at, ok := d.ended["sub:"+s.Sub]
	return ok && s.Sub != "" && !at.Before(time.Unix(s.At, 0))
}

// logout is the platform's own "sign out": it forgets its session and
// sends the browser to ElevID's end-session endpoint (RP-initiated
// logout), which ends the ElevID session and comes back here.
func (d *Platform) logout(w http.ResponseWriter, r *http.Request) {
	s := d.state(r)
	d.setState(w, demoState{})
	if s.IDToken == "" {
		http.Redirect(w, r, demoPath+"?signed_out=1", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, d.issuer+oidc.EndSessionPath+"?"+url.Values{"id_token_hint": {s.IDToken}, "client_id": {ClientID},
		"post_logout_redirect_uri": {d.issuer + demoPath}}.Encode(), http.StatusSeeOther)
}

// backchannelLogout takes a logout token (OIDC Back-Channel Logout 1.0
// §2.6): a JWT signed by ElevID (keys from discovery) for this client,
// unexpired, typ logout+jwt, with the back-channel event, a sid or sub,
// a jti not seen before, and no nonce. A valid one ends the sessions it
// names; anything else is answered 400.
func (d *Platform) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx := gooidc.ClientContext(r.Context(), d.client)
	raw := r.PostFormValue("logout_token")
	claims, err := d.verifyLogoutToken(ctx, raw)
	if err != nil {
		d.log.Warn("logout token refused", "err", err)
		http.Error(w, "invalid logout token", http.StatusBadRequest)
		return
	}
	now := d.now()
	d.mu.Lock()
	for k, t := range d.jtis {
		if now.After(t) {
			delete(d.jtis, k)
		}
	}
	if _, seen := d.jtis[claims.JTI]; seen {
		d.mu.Unlock()
		http.Error(w, "logout token replayed", http.StatusBadRequest)
		return
	}
	d.jtis[claims.JTI] = time.Unix(claims.Exp, 0).Add(time.Minute)
	for k, t := range d.ended {
		if now.Sub(t) > 24*time.Hour {
			delete(d.ended, k)
		}
	}
	if claims.Sid != "" {
		d.ended["sid:"+claims.Sid] = now
	} else {
		d.ended["sub:"+claims.Sub] = now
	}
	d.mu.Unlock()
	d.log.Info("signed out by ElevID (back-channel logout)")
	w.WriteHeader(http.StatusOK)
}

type logoutClaims struct {
	Sub    string                     `json:"sub"`
	Sid    string                     `json:"sid"`
	JTI    string                     `json:"jti"`
	Exp    int64                      `json:"exp"`
	Nonce  *string                    `json:"nonce"`
	Events map[string]json.RawMessage `json:"events"`
}

func (d *Platform) verifyLogoutToken(ctx context.Context, raw string) (logoutClaims, error) {
	var c logoutClaims
	if raw == "" {
		return c, errors.New("no logout_token")
	}
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return c, errors.New("not a JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return c, err
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(hb, &h); err != nil || !strings.EqualFold(strings.TrimPrefix(strings.ToLower(h.Typ), "application/"), "logout+jwt") {
		return c, fmt.Errorf("typ %q", h.Typ)
	}
	p, err := d.discover(ctx)
	if err != nil {
		return c, err
	}
	// Signature (ElevID's published keys), issuer, audience and expiry.
	tok, err := p.Verifier(&gooidc.Config{ClientID: ClientID, Now: d.now}).Verify(ctx, raw)
	if err != nil {
		return c, err
	}
	if err := tok.Claims(&c); err != nil {
		return c, err
	}
	switch {
	case c.Nonce != nil:
		return c, errors.New("a logout token has no nonce")
	case c.Events == nil || c.Events[oidc.BackchannelLogoutEvent] == nil:
		return c, errors.New("no back-channel logout event")
	case c.Sid == "" && c.Sub == "":
		return c, errors.New("neither sid nor sub")
	case c.JTI == "":
		return c, errors.New("no jti")
	}
	return c, nil
}

func (d *Platform) login(w http.ResponseWriter, r *http.Request) {
	p, err := d.discover(r.Context())
	if err != nil {
		d.log.Error("discovery failed", "err", err)
		d.site.Error(w, r, http.StatusServiceUnavailable, "oidc.demo.unavailable")
		return
	}
	cfg := d.cfg
	cfg.Endpoint = p.Endpoint()
	s := demoState{State: school.NewID(), Nonce: school.NewID(), Verifier: oauth2.GenerateVerifier()}
	d.setState(w, s)
	http.Redirect(w, r, cfg.AuthCodeURL(s.State, gooidc.Nonce(s.Nonce), oauth2.S256ChallengeOption(s.Verifier)), http.StatusSeeOther)
}

func (d *Platform) callback(w http.ResponseWriter, r *http.Request) {
	ctx := gooidc.ClientContext(r.Context(), d.client)
	s := d.state(r)
	q := r.URL.Query()
	fail := func(msg string, err error) {
		d.log.Info("demo login failed", "reason", msg, "err", err)
		d.setState(w, demoState{})
		http.Redirect(w, r, demoPath+"?"+url.Values{"error": {msg}}.Encode(), http.StatusSeeOther)
	}
	if s.State == "" || q.Get("state") != s.State {
		fail("state mismatch", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(e, nil)
		return
	}
	p, err := d.discover(ctx)
	if err != nil {
		fail("discovery failed", err)
		return
	}
	cfg := d.cfg
	cfg.Endpoint = p.Endpoint()
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(s.Verifier))
	if err != nil {
		fail("code exchange failed", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&gooidc.Config{ClientID: ClientID}).Verify(ctx, raw)
	if err != nil || idt.Nonce != s.Nonce {
		fail("ID token invalid", err)
		return
	}
	var claims map[string]any
	_ = idt.Claims(&claims)
	sid, _ := claims["sid"].(string)
	out := demoState{IDToken: raw, Claims: flatten(claims), Sid: sid, Sub: idt.Subject, At: d.now().Unix()}
	if ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		var m map[string]any
		_ = ui.Claims(&m)
		out.UserInfo = flatten(m)
	}
	d.setState(w, out)
	http.Redirect(w, r, demoPath, http.StatusSeeOther)
}

func flatten(m map[string]any) [][]string {
	out := make([][]string, 0, len(m))
	for k, v := range m {
		s := fmt.Sprint(v)
		if b, err := json.Marshal(v); err == nil {
			if _, isStr := v.(string); !isStr {
				s = string(b)
			}
		}
		out = append(out, []string{k, s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
