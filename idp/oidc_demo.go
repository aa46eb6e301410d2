package idp

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

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// DemoClientID is the client id of the built-in demo platform.
const DemoClientID = "elevid-demo-platform"

const demoPath = "/demo/platform"

// demoSecret derives the demo platform's client secret from the instance
// secret, so registration is idempotent and nothing is stored in clear.
func demoSecret(instanceSecret []byte) string {
	m := hmac.New(sha256.New, instanceSecret)
	m.Write([]byte("elevid demo platform client secret"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// RegisterDemoPlatform registers (or updates) the built-in demo platform
// for issuer: a confidential client with PKCE that may receive the
// profile, class and eduPerson claims. It is idempotent; the lead calls it
// at start in demo mode. Pupils still need a guardian's consent for it.
func RegisterDemoPlatform(ctx context.Context, st school.Store, issuer string, instanceSecret []byte) (school.Platform, error) {
	issuer = strings.TrimSuffix(issuer, "/")
	spec := OIDCPlatformSpec{
		Name: "Demo-læringsplatform", ClientID: DemoClientID,
		RedirectURIs: []string{issuer + demoPath + "/callback"}, PostLogoutRedirectURIs: []string{issuer + demoPath},
		Attributes: []school.AttributeGrant{
			{Name: ClaimName, JustificationDA: "Viser elevens navn på demo-siden", JustificationEN: "Shows the pupil's name on the demo page"},
			{Name: ClaimGivenName, JustificationDA: "Hilser på eleven", JustificationEN: "Greets the pupil"},
			{Name: ClaimFamilyName, JustificationDA: "Viser elevens navn", JustificationEN: "Shows the pupil's name"},
			{Name: ClaimGroups, JustificationDA: "Viser elevens klasse", JustificationEN: "Shows the pupil's class"},
			{Name: ClaimEPPN, JustificationDA: "Viser et stabilt bruger-id", JustificationEN: "Shows a stable user id"},
			{Name: ClaimAffiliation, JustificationDA: "Viser at brugeren er elev", JustificationEN: "Shows that the user is a pupil"},
			{Name: ClaimHomeOrg, JustificationDA: "Viser elevens skole", JustificationEN: "Shows the pupil's school"},
			{Name: ClaimSchoolCode, JustificationDA: "Viser elevens skole", JustificationEN: "Shows the pupil's school"},
		},
		Secret: demoSecret(instanceSecret),
	}
	set, _, err := spec.settings()
	if err != nil {
		return school.Platform{}, err
	}
	raw, err := json.Marshal(set)
	if err != nil {
		return school.Platform{}, err
	}
	p, err := st.PlatformByClientID(ctx, DemoClientID)
	if errors.Is(err, school.ErrNotFound) {
		p, _, err = RegisterOIDCPlatform(ctx, st, spec)
		if errors.Is(err, school.ErrConflict) { // another node registered it first
			return st.PlatformByClientID(ctx, DemoClientID)
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

// DemoPlatform is a tiny learning platform built into ElevID for demo
// mode: it logs in through ElevID's OpenID provider exactly like an
// external platform would (discovery, code flow with PKCE, ID token
// verification, userinfo) and shows the claims it received.
type DemoPlatform struct {
	issuer string
	site   *web.Site
	cfg    oauth2.Config
	crypto *tokenCrypto
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	provider *gooidc.Provider
}

// NewDemoPlatform returns the demo platform for issuer; instanceSecret is
// the pairwise secret given to NewOIDC. client reaches the issuer (nil:
// a 5-second default client).
func NewDemoPlatform(issuer string, instanceSecret []byte, site *web.Site, client *http.Client, log *slog.Logger) *DemoPlatform {
	issuer = strings.TrimSuffix(issuer, "/")
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if log == nil {
		log = slog.Default()
	}
	m := hmac.New(sha256.New, instanceSecret)
	m.Write([]byte("elevid demo platform cookie key"))
	return &DemoPlatform{
		issuer: issuer, site: site, client: client, log: log.With("component", "demo-platform"),
		crypto: newTokenCrypto(m.Sum(nil)),
		cfg: oauth2.Config{ClientID: DemoClientID, ClientSecret: demoSecret(instanceSecret), RedirectURL: issuer + demoPath + "/callback",
			Scopes: []string{gooidc.ScopeOpenID, "profile", "groups", "eduperson", "school"}},
	}
}

// Mount registers GET /demo/platform, /demo/platform/login and
// /demo/platform/callback.
func (d *DemoPlatform) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+demoPath, d.index)
	mux.HandleFunc("GET "+demoPath+"/login", d.login)
	mux.HandleFunc("GET "+demoPath+"/callback", d.callback)
}

func (d *DemoPlatform) discover(ctx context.Context) (*gooidc.Provider, error) {
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
	Claims   [][]string `json:"c,omitempty"`
	UserInfo [][]string `json:"u,omitempty"`
}

const demoCookie = "elevid_demo_platform"

func (d *DemoPlatform) setState(w http.ResponseWriter, s demoState) {
	b, _ := json.Marshal(s)
	v, err := d.crypto.Encrypt(string(b))
	if err != nil {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: demoCookie, Value: v, Path: demoPath, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(d.issuer, "https://"), MaxAge: 3600})
}

func (d *DemoPlatform) state(r *http.Request) demoState {
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

// DemoPageData is the data of the demo platform's page.
type DemoPageData struct {
	Claims    [][]string
	UserInfo  [][]string
	LogoutURL string
	Error     string
}

func (d *DemoPlatform) index(w http.ResponseWriter, r *http.Request) {
	s := d.state(r)
	data := DemoPageData{Claims: s.Claims, UserInfo: s.UserInfo, Error: r.URL.Query().Get("error")}
	if s.IDToken != "" {
		data.LogoutURL = d.issuer + oidcEndSessionPath + "?" + url.Values{"id_token_hint": {s.IDToken}, "client_id": {DemoClientID},
			"post_logout_redirect_uri": {d.issuer + demoPath}}.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	d.site.Render(w, r, http.StatusOK, "oidc-demo", data)
}

func (d *DemoPlatform) login(w http.ResponseWriter, r *http.Request) {
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

func (d *DemoPlatform) callback(w http.ResponseWriter, r *http.Request) {
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
	idt, err := p.Verifier(&gooidc.Config{ClientID: DemoClientID}).Verify(ctx, raw)
	if err != nil || idt.Nonce != s.Nonce {
		fail("ID token invalid", err)
		return
	}
	var claims map[string]any
	_ = idt.Claims(&claims)
	out := demoState{IDToken: raw, Claims: flatten(claims)}
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
