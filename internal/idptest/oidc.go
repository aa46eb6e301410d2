package idptest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/internal/webauthntest"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/descope/virtualwebauthn"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/internal/demoplatform"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// Clock is a settable clock that follows real time from a base.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// OIDCEnv is an httptest ElevID with the real passkey login and the OIDC
// provider, one school, one pupil with a passkey in a virtual
// authenticator, and a relying party (go-oidc + oauth2) with its own
// httptest server for the callback and back-channel logout.
type OIDCEnv struct {
	t        testing.TB
	Store    school.Store
	Exec     func(q string, args ...any)
	Clock    *Clock
	Server   *httptest.Server
	OIDC     *oidc.Provider
	Access   *access.Service
	login    *login.Login
	School   school.School
	class    school.Class
	Pupil    school.Pupil
	guardian school.Guardian
	granted  []string
	Secret   []byte

	Auth virtualwebauthn.Authenticator
	Cred virtualwebauthn.Credential
	RPID virtualwebauthn.RelyingParty
}

func Logger() *slog.Logger {
	if os.Getenv("ELEVID_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func OpenStore(t testing.TB, pg bool, now func() time.Time) (school.Store, func(q string, args ...any)) {
	ctx := context.Background()
	if pg {
		// A fresh schema per test keeps runs independent.
		st, err := postgres.Open(ctx, testenv.PostgresSchema(t, "oidc"), sqlstore.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st, func(q string, args ...any) {
			if _, err := st.Pool().Exec(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st, func(q string, args ...any) {
		if _, err := st.DB().ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
}

func NewOIDCEnv(t testing.TB) *OIDCEnv {
	return NewOIDCEnvOn(t, false, oidc.KeyPolicy{})
}

func NewOIDCEnvOn(t testing.TB, pg bool, keys oidc.KeyPolicy) *OIDCEnv {
	ctx := context.Background()
	e := &OIDCEnv{t: t, Clock: &Clock{}}
	e.Store, e.Exec = OpenStore(t, pg, e.Clock.Now)
	var handler http.Handler
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.Server.Close)
	port := e.Server.URL[strings.LastIndex(e.Server.URL, ":")+1:]
	origin := "http://localhost:" + port

	var err error
	if e.School, err = e.Store.CreateSchool(ctx, school.School{Code: "demo", Name: "Demo Skole", Domain: "demo.elevid.dk"}); err != nil {
		t.Fatal(err)
	}
	if e.class, err = e.Store.CreateClass(ctx, school.Class{SchoolID: e.School.ID, Name: "7A"}); err != nil {
		t.Fatal(err)
	}
	if e.guardian, err = e.Store.CreateGuardian(ctx, school.Guardian{SchoolID: e.School.ID, Name: "Mor Hansen", Email: "mor@example.dk"}); err != nil {
		t.Fatal(err)
	}
	if e.Pupil, err = e.Store.CreatePupil(ctx, school.Pupil{SchoolID: e.School.ID, ExternalID: "ext-ida", GivenName: "Ida", FamilyName: "Hansen",
		ClassIDs: []string{e.class.ID}, GuardianIDs: []string{e.guardian.ID}, Status: school.PupilActive}); err != nil {
		t.Fatal(err)
	}
	// Enrolled under the "any guardian" rule; platforms need a grant each.
	if _, err := e.Store.PutEnrolment(ctx, school.Enrolment{PupilID: e.Pupil.ID, State: school.EnrolmentEnrolled, Rule: school.ConsentAny}); err != nil {
		t.Fatal(err)
	}
	sealer, err := school.NewSealer(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	if e.Secret, err = release.PairwiseSecret(ctx, e.Store); err != nil {
		t.Fatal(err)
	}
	site := webtest.NewSite(t)
	e.Access = access.New(access.Options{Now: e.Clock.Now, Logger: Logger()})
	e.login, err = login.NewLogin(login.LoginOptions{
		Store: e.Store, Site: site, Issuer: e.Server.URL, Now: e.Clock.Now, Logger: Logger(), Access: e.Access,
		Passkey:     passkey.Config{RPID: "localhost", Origins: []string{origin}},
		SessionKeys: [][]byte{bytes.Repeat([]byte("h"), 64), bytes.Repeat([]byte("b"), 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.OIDC, err = oidc.New(ctx, oidc.Options{
		Issuer: e.Server.URL, Store: e.Store, Sealer: sealer, PairwiseSecret: e.Secret, Site: site,
		Sessions: e.login, Now: e.Clock.Now, Logger: Logger(), Keys: keys, Access: e.Access,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.login.ContinueAt(oidc.HandoffPath, e.OIDC.ContinueLogin)
	mux := http.NewServeMux()
	e.login.Mount(mux)
	e.OIDC.Mount(mux)
	demoplatform.New(e.Server.URL, e.Secret, site, nil, Logger()).Mount(mux)
	handler = site.CrossOrigin(mux, append(oidc.BypassPatterns, demoplatform.BypassPatterns...)...)

	// The pupil's passkey, registered straight in the store.
	handle, err := e.Store.UserHandle(ctx, school.PupilOwner(e.Pupil.ID))
	if err != nil {
		t.Fatal(err)
	}
	e.RPID = virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID", Origin: origin}
	e.Auth = virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: handle})
	e.Cred = webauthntest.NewCredential()
	e.Auth.AddCredential(e.Cred)
	if _, err := e.Store.AddCredential(ctx, school.Credential{ID: e.Cred.ID, Owner: school.PupilOwner(e.Pupil.ID), SchoolID: e.School.ID,
		PublicKey: e.Cred.Key.AttestationData(), AttestationFormat: "none", Label: "test"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// GrantConsent records the guardian's consent for the pupil and platform.
func (e *OIDCEnv) GrantConsent(platformID string) {
	e.t.Helper()
	if _, err := e.Store.SetPlatformActivation(context.Background(), school.PlatformActivation{SchoolID: e.Pupil.SchoolID, PlatformID: platformID, ActivatedBy: "test"}, true); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.Store.SetConsent(context.Background(), school.Consent{PupilID: e.Pupil.ID, GuardianID: e.guardian.ID,
		PlatformID: platformID, Decision: school.DecisionGranted}); err != nil {
		e.t.Fatal(err)
	}
	e.granted = append(e.granted, platformID)
}

// WithdrawConsent withdraws every grant made by GrantConsent.
func (e *OIDCEnv) WithdrawConsent() {
	e.t.Helper()
	for _, id := range e.granted {
		if _, err := e.Store.SetConsent(context.Background(), school.Consent{PupilID: e.Pupil.ID, GuardianID: e.guardian.ID,
			PlatformID: id, Decision: school.DecisionWithdrawn}); err != nil {
			e.t.Fatal(err)
		}
	}
	e.granted = nil
}

// Browser is a cookie-keeping client that does not follow redirects.
type Browser struct {
	Client *http.Client
}

func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *Browser) Get(t testing.TB, u string) *http.Response {
	t.Helper()
	resp, err := b.Client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func Body(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// PasskeyLogin runs the discoverable login with the virtual authenticator
// and returns where the login sends the browser next: a path on the
// server, or, when the login continued an authorization request
// (login.Login.ContinueAt), the platform's redirect URI with the code.
func (e *OIDCEnv) PasskeyLogin(t testing.TB, b *Browser, returnTo string) string {
	t.Helper()
	post := func(path string, v any) map[string]json.RawMessage {
		t.Helper()
		raw, _ := json.Marshal(v)
		req, _ := http.NewRequest(http.MethodPost, e.Server.URL+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		s := Body(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, s)
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	begun := post("/login/begin", map[string]string{})
	var ceremony string
	_ = json.Unmarshal(begun["ceremony"], &ceremony)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(begun["options"]))
	if err != nil {
		t.Fatal(err)
	}
	cred := virtualwebauthn.CreateAssertionResponse(e.RPID, e.Auth, e.Cred, *opts)
	e.Cred.Counter++
	done := post("/login/finish", map[string]any{"ceremony": ceremony, "credential": json.RawMessage(cred), "return_to": returnTo})
	var next string
	_ = json.Unmarshal(done["next"], &next)
	return next
}

// RP is a relying party built from go-oidc and oauth2.
type RP struct {
	srv      *httptest.Server
	Platform school.Platform
	Config   oauth2.Config
	Provider *gooidc.Provider
	Verifier *gooidc.IDTokenVerifier
	Mu       sync.Mutex
	logouts  []string
	LogoutOK bool
	// FailStatus answers logout tokens while !logoutOK (503 when zero).
	FailStatus int
}

type RPOptions struct {
	Public        bool
	Offline       bool
	Alg           string
	Attrs         []school.AttributeGrant
	Scopes        []string
	postLogoutURI bool
	Sector        string
}

func (e *OIDCEnv) NewRP(t testing.TB, clientID string, o RPOptions) *RP {
	t.Helper()
	rp := &RP{LogoutOK: true}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/backchannel":
			_ = r.ParseForm()
			rp.Mu.Lock()
			ok, status := rp.LogoutOK, cmp.Or(rp.FailStatus, http.StatusServiceUnavailable)
			if ok {
				rp.logouts = append(rp.logouts, r.PostForm.Get("logout_token"))
			}
			rp.Mu.Unlock()
			if !ok {
				w.WriteHeader(status)
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(rp.srv.Close)
	if o.Attrs == nil {
		o.Attrs = []school.AttributeGrant{
			{Name: release.GivenName, JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"},
			{Name: release.FamilyName, JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"},
			{Name: release.Name, JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"},
			{Name: release.Groups, JustificationDA: "Puts the pupil in the right class", JustificationEN: "Puts the pupil in the right class"},
			{Name: release.EPPN, JustificationDA: "Links the account", JustificationEN: "Links the account"},
		}
	}
	spec := oidc.PlatformSpec{
		Name: "Platform " + clientID, ClientID: clientID, RedirectURIs: []string{rp.srv.URL + "/callback"},
		BackchannelLogoutURI: rp.srv.URL + "/backchannel", Public: o.Public, OfflineAccess: o.Offline,
		Attributes: o.Attrs, SigningAlg: o.Alg, SectorIdentifier: o.Sector,
	}
	if o.postLogoutURI {
		spec.PostLogoutRedirectURIs = []string{rp.srv.URL + "/bye"}
	}
	var secret string
	var err error
	rp.Platform, secret, err = oidc.RegisterPlatform(context.Background(), e.Store, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rp.Provider, err = gooidc.NewProvider(ctx, e.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	scopes := o.Scopes
	if scopes == nil {
		scopes = []string{gooidc.ScopeOpenID, "profile", "groups", "eduperson"}
	}
	rp.Config = oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: rp.Provider.Endpoint(),
		RedirectURL: rp.srv.URL + "/callback", Scopes: scopes}
	algs := []string{"ES256"}
	if o.Alg != "" {
		algs = []string{o.Alg}
	}
	rp.Verifier = rp.Provider.Verifier(&gooidc.Config{ClientID: clientID, SupportedSigningAlgs: algs})
	return rp
}

func (rp *RP) ReceivedLogouts() []string {
	rp.Mu.Lock()
	defer rp.Mu.Unlock()
	return append([]string(nil), rp.logouts...)
}

// FlowResult is what the browser brought back to the RP.
type FlowResult struct {
	Code, state, Err, ErrDesc string
	Verifier, Nonce           string
	// pages holds the last non-redirect response, when the flow stopped
	// at an ElevID page.
	Status int
	Page   string
}

// Authorize starts at the RP's authorization URL and follows the browser
// through ElevID (logging in with the passkey when sent to /login) until
// it comes back to the RP's callback or stops at a page.
func (e *OIDCEnv) Authorize(t testing.TB, b *Browser, rp *RP, extra ...oauth2.AuthCodeOption) FlowResult {
	t.Helper()
	res := FlowResult{Verifier: oauth2.GenerateVerifier(), Nonce: school.NewID()}
	state := school.NewID()
	opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(res.Nonce), oauth2.S256ChallengeOption(res.Verifier)}, extra...)
	next := rp.Config.AuthCodeURL(state, opts...)
	for range 10 {
		if strings.HasPrefix(next, "/") {
			next = e.Server.URL + next
		}
		if strings.HasPrefix(next, rp.srv.URL+"/callback") {
			u, _ := url.Parse(next)
			q := u.Query()
			res.Code, res.state, res.Err, res.ErrDesc = q.Get("code"), q.Get("state"), q.Get("error"), q.Get("error_description")
			if res.state != state {
				t.Fatalf("state = %q, want %q", res.state, state)
			}
			return res
		}
		u, _ := url.Parse(next)
		if u.Path == "/login" {
			next = e.PasskeyLogin(t, b, u.Query().Get("return_to"))
			continue
		}
		resp := b.Get(t, next)
		if resp.StatusCode/100 != 3 {
			res.Status, res.Page = resp.StatusCode, Body(t, resp)
			return res
		}
		resp.Body.Close()
		next = resp.Header.Get("Location")
	}
	t.Fatal("too many redirects")
	return res
}

// SignIn runs the whole flow at rp (passkey login when needed) and
// returns the tokens and the verified ID token.
func (e *OIDCEnv) SignIn(t testing.TB, b *Browser, rp *RP) (*oauth2.Token, *gooidc.IDToken) {
	t.Helper()
	ctx := context.Background()
	tok, err := rp.Exchange(ctx, e.Authorize(t, b, rp))
	if err != nil {
		t.Fatalf("exchange at %s: %v", rp.Config.ClientID, err)
	}
	idt, err := rp.Verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("ID token of %s: %v", rp.Config.ClientID, err)
	}
	return tok, idt
}

// Exchange redeems a code like the RP does.
func (rp *RP) Exchange(ctx context.Context, res FlowResult) (*oauth2.Token, error) {
	return rp.Config.Exchange(ctx, res.Code, oauth2.VerifierOption(res.Verifier))
}
