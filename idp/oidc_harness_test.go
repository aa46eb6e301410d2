package idp_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/internal/webauthntest"
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

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/descope/virtualwebauthn"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// oidcClock is a settable clock that follows real time from a base.
type oidcClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *oidcClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *oidcClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// oidcEnv is an httptest ElevID with the real passkey login and the OIDC
// provider, one school, one pupil with a passkey in a virtual
// authenticator, and a relying party (go-oidc + oauth2) with its own
// httptest server for the callback and back-channel logout.
type oidcEnv struct {
	t        testing.TB
	st       school.Store
	exec     func(q string, args ...any)
	clock    *oidcClock
	srv      *httptest.Server
	oidc     *idp.OIDC
	access   *access.Service
	login    *idp.Login
	school   school.School
	class    school.Class
	pupil    school.Pupil
	guardian school.Guardian
	granted  []string
	secret   []byte

	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
	rpID virtualwebauthn.RelyingParty
}

func oidcLogger() *slog.Logger {
	if os.Getenv("ELEVID_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func openTestStore(t testing.TB, pg bool, now func() time.Time) (school.Store, func(q string, args ...any)) {
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

func newOIDCEnv(t testing.TB) *oidcEnv {
	return newOIDCEnvOn(t, false, idp.KeyPolicy{})
}

func newOIDCEnvOn(t testing.TB, pg bool, keys idp.KeyPolicy) *oidcEnv {
	ctx := context.Background()
	e := &oidcEnv{t: t, clock: &oidcClock{}}
	e.st, e.exec = openTestStore(t, pg, e.clock.Now)
	var handler http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	port := e.srv.URL[strings.LastIndex(e.srv.URL, ":")+1:]
	origin := "http://localhost:" + port

	var err error
	if e.school, err = e.st.CreateSchool(ctx, school.School{Code: "demo", Name: "Demo Skole", Domain: "demo.elevid.dk"}); err != nil {
		t.Fatal(err)
	}
	if e.class, err = e.st.CreateClass(ctx, school.Class{SchoolID: e.school.ID, Name: "7A"}); err != nil {
		t.Fatal(err)
	}
	if e.guardian, err = e.st.CreateGuardian(ctx, school.Guardian{SchoolID: e.school.ID, Name: "Mor Hansen", Email: "mor@example.dk"}); err != nil {
		t.Fatal(err)
	}
	if e.pupil, err = e.st.CreatePupil(ctx, school.Pupil{SchoolID: e.school.ID, ExternalID: "ext-ida", GivenName: "Ida", FamilyName: "Hansen",
		ClassIDs: []string{e.class.ID}, GuardianIDs: []string{e.guardian.ID}, Status: school.PupilActive}); err != nil {
		t.Fatal(err)
	}
	// Enrolled under the "any guardian" rule; platforms need a grant each.
	if _, err := e.st.PutEnrolment(ctx, school.Enrolment{PupilID: e.pupil.ID, State: school.EnrolmentEnrolled, Rule: school.ConsentAny}); err != nil {
		t.Fatal(err)
	}
	sealer, err := school.NewSealer(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	if e.secret, err = idp.PairwiseSecret(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	site := webtest.NewSite(t)
	e.access = access.New(access.Options{Now: e.clock.Now, Logger: oidcLogger()})
	e.login, err = idp.NewLogin(idp.LoginOptions{
		Store: e.st, Site: site, Issuer: e.srv.URL, Now: e.clock.Now, Logger: oidcLogger(), Access: e.access,
		Passkey:     passkey.Config{RPID: "localhost", Origins: []string{origin}},
		SessionKeys: [][]byte{bytes.Repeat([]byte("h"), 64), bytes.Repeat([]byte("b"), 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.oidc, err = idp.NewOIDC(ctx, idp.OIDCOptions{
		Issuer: e.srv.URL, Store: e.st, Sealer: sealer, PairwiseSecret: e.secret, Site: site,
		Sessions: e.login, Now: e.clock.Now, Logger: oidcLogger(), Keys: keys, Access: e.access,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.login.Mount(mux)
	e.oidc.Mount(mux)
	idp.NewDemoPlatform(e.srv.URL, e.secret, site, nil, oidcLogger()).Mount(mux)
	handler = site.CrossOrigin(mux, append(idp.OIDCBypassPatterns, idp.DemoBypassPatterns...)...)

	// The pupil's passkey, registered straight in the store.
	handle, err := e.st.UserHandle(ctx, school.PupilOwner(e.pupil.ID))
	if err != nil {
		t.Fatal(err)
	}
	e.rpID = virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID", Origin: origin}
	e.auth = virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: handle})
	e.cred = webauthntest.NewCredential()
	e.auth.AddCredential(e.cred)
	if _, err := e.st.AddCredential(ctx, school.Credential{ID: e.cred.ID, Owner: school.PupilOwner(e.pupil.ID), SchoolID: e.school.ID,
		PublicKey: e.cred.Key.AttestationData(), AttestationFormat: "none", Label: "test"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// grantConsent records the guardian's consent for the pupil and platform.
func (e *oidcEnv) grantConsent(platformID string) {
	e.t.Helper()
	if _, err := e.st.SetPlatformActivation(context.Background(), school.PlatformActivation{SchoolID: e.pupil.SchoolID, PlatformID: platformID, ActivatedBy: "test"}, true); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.SetConsent(context.Background(), school.Consent{PupilID: e.pupil.ID, GuardianID: e.guardian.ID,
		PlatformID: platformID, Decision: school.DecisionGranted}); err != nil {
		e.t.Fatal(err)
	}
	e.granted = append(e.granted, platformID)
}

// withdrawConsent withdraws every grant made by grantConsent.
func (e *oidcEnv) withdrawConsent() {
	e.t.Helper()
	for _, id := range e.granted {
		if _, err := e.st.SetConsent(context.Background(), school.Consent{PupilID: e.pupil.ID, GuardianID: e.guardian.ID,
			PlatformID: id, Decision: school.DecisionWithdrawn}); err != nil {
			e.t.Fatal(err)
		}
	}
	e.granted = nil
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	c *http.Client
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(t testing.TB, u string) *http.Response {
	t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func body(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// passkeyLogin runs the discoverable login with the virtual authenticator
// and returns where the login sends the browser next.
func (e *oidcEnv) passkeyLogin(t testing.TB, b *browser, returnTo string) string {
	t.Helper()
	post := func(path string, v any) map[string]json.RawMessage {
		t.Helper()
		raw, _ := json.Marshal(v)
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		s := body(t, resp)
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
	cred := virtualwebauthn.CreateAssertionResponse(e.rpID, e.auth, e.cred, *opts)
	e.cred.Counter++
	done := post("/login/finish", map[string]any{"ceremony": ceremony, "credential": json.RawMessage(cred), "return_to": returnTo})
	var next string
	_ = json.Unmarshal(done["next"], &next)
	return next
}

// testRP is a relying party built from go-oidc and oauth2.
type testRP struct {
	srv      *httptest.Server
	platform school.Platform
	cfg      oauth2.Config
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	mu       sync.Mutex
	logouts  []string
	logoutOK bool
	// failStatus answers logout tokens while !logoutOK (503 when zero).
	failStatus int
}

type rpOptions struct {
	public        bool
	offline       bool
	alg           string
	attrs         []school.AttributeGrant
	scopes        []string
	postLogoutURI bool
	sector        string
}

func (e *oidcEnv) newRP(t testing.TB, clientID string, o rpOptions) *testRP {
	t.Helper()
	rp := &testRP{logoutOK: true}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/backchannel":
			_ = r.ParseForm()
			rp.mu.Lock()
			ok, status := rp.logoutOK, cmp.Or(rp.failStatus, http.StatusServiceUnavailable)
			if ok {
				rp.logouts = append(rp.logouts, r.PostForm.Get("logout_token"))
			}
			rp.mu.Unlock()
			if !ok {
				w.WriteHeader(status)
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(rp.srv.Close)
	if o.attrs == nil {
		o.attrs = []school.AttributeGrant{
			{Name: idp.ClaimGivenName, JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"},
			{Name: idp.ClaimFamilyName, JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"},
			{Name: idp.ClaimName, JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"},
			{Name: idp.ClaimGroups, JustificationDA: "Puts the pupil in the right class", JustificationEN: "Puts the pupil in the right class"},
			{Name: idp.ClaimEPPN, JustificationDA: "Links the account", JustificationEN: "Links the account"},
		}
	}
	spec := idp.OIDCPlatformSpec{
		Name: "Platform " + clientID, ClientID: clientID, RedirectURIs: []string{rp.srv.URL + "/callback"},
		BackchannelLogoutURI: rp.srv.URL + "/backchannel", Public: o.public, OfflineAccess: o.offline,
		Attributes: o.attrs, SigningAlg: o.alg, SectorIdentifier: o.sector,
	}
	if o.postLogoutURI {
		spec.PostLogoutRedirectURIs = []string{rp.srv.URL + "/bye"}
	}
	var secret string
	var err error
	rp.platform, secret, err = idp.RegisterOIDCPlatform(context.Background(), e.st, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rp.provider, err = gooidc.NewProvider(ctx, e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	scopes := o.scopes
	if scopes == nil {
		scopes = []string{gooidc.ScopeOpenID, "profile", "groups", "eduperson"}
	}
	rp.cfg = oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.srv.URL + "/callback", Scopes: scopes}
	algs := []string{"ES256"}
	if o.alg != "" {
		algs = []string{o.alg}
	}
	rp.verifier = rp.provider.Verifier(&gooidc.Config{ClientID: clientID, SupportedSigningAlgs: algs})
	return rp
}

func (rp *testRP) receivedLogouts() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.logouts...)
}

// flowResult is what the browser brought back to the RP.
type flowResult struct {
	code, state, err, errDesc string
	verifier, nonce           string
	// pages holds the last non-redirect response, when the flow stopped
	// at an ElevID page.
	status int
	page   string
}

// authorize starts at the RP's authorization URL and follows the browser
// through ElevID (logging in with the passkey when sent to /login) until
// it comes back to the RP's callback or stops at a page.
func (e *oidcEnv) authorize(t testing.TB, b *browser, rp *testRP, extra ...oauth2.AuthCodeOption) flowResult {
	t.Helper()
	res := flowResult{verifier: oauth2.GenerateVerifier(), nonce: school.NewID()}
	state := school.NewID()
	opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(res.nonce), oauth2.S256ChallengeOption(res.verifier)}, extra...)
	next := rp.cfg.AuthCodeURL(state, opts...)
	for range 10 {
		if strings.HasPrefix(next, "/") {
			next = e.srv.URL + next
		}
		if strings.HasPrefix(next, rp.srv.URL+"/callback") {
			u, _ := url.Parse(next)
			q := u.Query()
			res.code, res.state, res.err, res.errDesc = q.Get("code"), q.Get("state"), q.Get("error"), q.Get("error_description")
			if res.state != state {
				t.Fatalf("state = %q, want %q", res.state, state)
			}
			return res
		}
		u, _ := url.Parse(next)
		if u.Path == "/login" {
			next = e.passkeyLogin(t, b, u.Query().Get("return_to"))
			continue
		}
		resp := b.get(t, next)
		if resp.StatusCode/100 != 3 {
			res.status, res.page = resp.StatusCode, body(t, resp)
			return res
		}
		resp.Body.Close()
		next = resp.Header.Get("Location")
	}
	t.Fatal("too many redirects")
	return res
}

// signIn runs the whole flow at rp (passkey login when needed) and
// returns the tokens and the verified ID token.
func (e *oidcEnv) signIn(t testing.TB, b *browser, rp *testRP) (*oauth2.Token, *gooidc.IDToken) {
	t.Helper()
	ctx := context.Background()
	tok, err := rp.exchange(ctx, e.authorize(t, b, rp))
	if err != nil {
		t.Fatalf("exchange at %s: %v", rp.cfg.ClientID, err)
	}
	idt, err := rp.verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("ID token of %s: %v", rp.cfg.ClientID, err)
	}
	return tok, idt
}

// exchange redeems a code like the RP does.
func (rp *testRP) exchange(ctx context.Context, res flowResult) (*oauth2.Token, error) {
	return rp.cfg.Exchange(ctx, res.code, oauth2.VerifierOption(res.verifier))
}
