package guardian_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"html"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/school"
)

// upstreamOP is zitadel's example OpenID provider, running in-process: a
// real provider with discovery, PKCE, signed ID tokens and a login form.
type upstreamOP struct {
	srv      *httptest.Server
	clientID string
}

var opMu sync.Mutex // storage.RegisterClients writes a package-level map

func startOP(t *testing.T) *upstreamOP {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	st := storage.NewStorage(storage.NewUserStore(srv.URL))
	h = exampleop.SetupServer(srv.URL, st, nil, false)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &upstreamOP{srv: srv, clientID: "elevid-" + hex.EncodeToString(b)}
}

// register registers ElevID's callback at the provider.
func (op *upstreamOP) register(redirect string) {
	opMu.Lock()
	defer opMu.Unlock()
	storage.RegisterClients(storage.WebClient(op.clientID, "upstream-secret", redirect))
}

// reasons records the "reason" of every refused verification the
// service logs, so that a test knows why a callback was refused.
type reasons struct {
	mu   sync.Mutex
	list []string
}

func (r *reasons) Enabled(context.Context, slog.Level) bool { return true }
func (r *reasons) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *reasons) WithGroup(string) slog.Handler            { return r }
func (r *reasons) Handle(_ context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" && rec.Message == "guardian: guardian verification refused" {
			r.mu.Lock()
			r.list = append(r.list, a.Value.String())
			r.mu.Unlock()
		}
		return true
	})
	return nil
}

// last returns the latest refusal reason.
func (r *reasons) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == 0 {
		return ""
	}
	return r.list[len(r.list)-1]
}

// newVerifyEnv is an env whose consent page offers verification at a
// fresh upstream provider.
func newVerifyEnv(t *testing.T, required bool) (*env, *upstreamOP, *reasons) {
	op := startOP(t)
	why := &reasons{}
	e := newEnvWith(t, func(o *guardian.Options) {
		o.Logger = slog.New(why)
		o.Verification = &guardian.Verification{Name: "TestID", Issuer: op.srv.URL, ClientID: op.clientID, ClientSecret: "upstream-secret",
			Scopes: []string{"profile"}, Required: required}
	})
	op.register(e.srv.URL + "/consent/verified")
	return e, op, why
}

// browser is a cookie-keeping client that labels requests as a browser
// would: same-origin for ElevID's own forms, cross-site for everything
// else (notably the provider's redirect back to the callback). It does
// not follow redirects; the test walks them.
type browser struct {
	t      *testing.T
	c      *http.Client
	origin string
}

type fetchSite struct{ origin string }

func (f fetchSite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	site := "cross-site"
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.String(), f.origin) {
		site = "same-origin"
	}
	r.Header.Set("Sec-Fetch-Site", site)
	return http.DefaultTransport.RoundTrip(r)
}

func newBrowser(t *testing.T, e *env) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, origin: e.srv.URL, c: &http.Client{Jar: jar, Transport: fetchSite{e.srv.URL},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends one request and returns status, Location and body.
func (b *browser) do(method, u string, form url.Values) (int, string, string) {
	b.t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = b.c.PostForm(u, form)
	} else {
		resp, err = b.c.Get(u)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	loc := resp.Header.Get("Location")
	if loc != "" {
		lu, err := resp.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		loc = lu.String()
	}
	return resp.StatusCode, loc, sb.String()
}

var idRE = regexp.MustCompile(`name="id" value="([^"]+)"`)

// startVerify presses "Verify with TestID" on the consent page and
// returns the provider's authorize URL.
func (b *browser) startVerify(link string) string {
	b.t.Helper()
	status, loc, body := b.do(http.MethodPost, link+"/verify", nil)
	if status != http.StatusSeeOther || !strings.Contains(loc, "code_challenge_method=S256") || !strings.Contains(loc, "nonce=") {
		b.t.Fatalf("verify start = %d %q\n%s", status, loc, body)
	}
	return loc
}

// loginUpstream walks the provider from its authorize URL through its
// login form and returns ElevID's callback URL with code and state,
// without following it.
func (b *browser) loginUpstream(authorize string) string {
	b.t.Helper()
	u := authorize
	for range 10 {
		status, loc, body := b.do(http.MethodGet, u, nil)
		if status == http.StatusOK {
			m := idRE.FindStringSubmatch(body)
			if m == nil {
				b.t.Fatalf("no login form at %s:\n%s", u, body)
			}
			host := must[*url.URL](b.t)(url.Parse(u)).Hostname()
			lu := must[*url.URL](b.t)(url.Parse(u)).ResolveReference(&url.URL{Path: "/login/username"})
			status, loc, body = b.do(http.MethodPost, lu.String(), url.Values{"id": {html.UnescapeString(m[1])}, "username": {"test-user@" + host}, "password": {"verysecure"}})
			if status != http.StatusFound {
				b.t.Fatalf("login = %d\n%s", status, body)
			}
		} else if status != http.StatusFound && status != http.StatusSeeOther {
			b.t.Fatalf("GET %s = %d\n%s", u, status, body)
		}
		if strings.HasPrefix(loc, b.origin+"/consent/verified") {
			return loc
		}
		u = loc
	}
	b.t.Fatal("provider never redirected back")
	return ""
}

func (e *env) consents() []school.Consent {
	e.t.Helper()
	return must[[]school.Consent](e.t)(e.st.ListConsents(e.ctx, e.pupil.ID))
}

func TestVerifiedConsent(t *testing.T) {
	e, op, why := newVerifyEnv(t, false)
	link := e.start()
	b := newBrowser(t, e)
	status, _, page := b.do(http.MethodGet, link, nil)
	if status != http.StatusOK || !strings.Contains(page, "Verify with TestID") && !strings.Contains(page, "Bekræft med TestID") {
		t.Fatalf("consent page = %d, no verify button:\n%s", status, page)
	}
	callback := b.loginUpstream(b.startVerify(link))
	status, loc, body := b.do(http.MethodGet, callback, nil)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, link) {
		t.Fatalf("callback = %d %q\n%s", status, loc, body)
	}
	if _, _, page = b.do(http.MethodGet, link, nil); !strings.Contains(page, `id="verified"`) {
		t.Fatalf("consent page does not show the verification:\n%s", page)
	}

	// A replayed callback (cookie put back, same code and state) is
	// refused: the state is single-use.
	replay := newBrowser(t, e)
	cu := must[*url.URL](t)(url.Parse(callback))
	replay.c.Jar.SetCookies(must[*url.URL](t)(url.Parse(e.srv.URL+"/consent/")), []*http.Cookie{{Name: "elevid_verify", Value: cu.Query().Get("state") + "." + link[strings.LastIndex(link, "/")+1:], Path: "/consent/"}})
	if status, _, body := replay.do(http.MethodGet, callback, nil); status != http.StatusBadRequest || why.last() != "state" {
		t.Fatalf("replayed callback = %d (reason %q)\n%s", status, why.last(), body)
	}

	if status, _, body := b.do(http.MethodPost, link, url.Values{"action": {"grant_all"}}); status != http.StatusOK {
		t.Fatalf("decision = %d\n%s", status, body)
	}
	want := op.srv.URL + " id1"
	cs := e.consents()
	if len(cs) != 2 {
		t.Fatalf("consents = %+v", cs)
	}
	for _, c := range cs {
		if c.VerifiedSubject != want || !c.Granted() {
			t.Fatalf("consent = %+v, want granted and verified as %q", c, want)
		}
	}
}

func TestVerificationRefusals(t *testing.T) {
	e, _, why := newVerifyEnv(t, false)
	link := e.start()
	token := link[strings.LastIndex(link, "/")+1:]

	// Each refusal must leave nothing verified: the decision that follows
	// carries no identity.
	t.Run("forged state", func(t *testing.T) {
		b := newBrowser(t, e)
		callback := b.loginUpstream(b.startVerify(link))
		u := must[*url.URL](t)(url.Parse(callback))
		q := u.Query()
		q.Set("state", "forged-state")
		u.RawQuery = q.Encode()
		if status, _, body := b.do(http.MethodGet, u.String(), nil); status != http.StatusBadRequest || why.last() != "state does not match the browser" ||
			!strings.Contains(body, "Nothing was changed") && !strings.Contains(body, "Intet er ændret") {
			t.Fatalf("forged state = %d (reason %q)\n%s", status, why.last(), body)
		}
	})
	t.Run("other browser", func(t *testing.T) {
		b := newBrowser(t, e)
		callback := b.loginUpstream(b.startVerify(link))
		if status, _, _ := newBrowser(t, e).do(http.MethodGet, callback, nil); status != http.StatusBadRequest || why.last() != "no state or no cookie" {
			t.Fatalf("callback without the binding cookie = %d (reason %q)", status, why.last())
		}
	})
	t.Run("wrong nonce", func(t *testing.T) {
		// The nonce in the authorize request is replaced on its way to
		// the provider: the ID token then carries a nonce ElevID never
		// issued, while state and PKCE still match.
		b := newBrowser(t, e)
		u := must[*url.URL](t)(url.Parse(b.startVerify(link)))
		q := u.Query()
		q.Set("nonce", "attacker-nonce")
		u.RawQuery = q.Encode()
		callback := b.loginUpstream(u.String())
		if status, _, body := b.do(http.MethodGet, callback, nil); status != http.StatusBadRequest || why.last() != "nonce" {
			t.Fatalf("wrong nonce = %d (reason %q)\n%s", status, why.last(), body)
		}
	})
	t.Run("code of another verification", func(t *testing.T) {
		b := newBrowser(t, e)
		first := b.loginUpstream(b.startVerify(link))
		second := b.loginUpstream(b.startVerify(link)) // the cookie now holds the second state
		fu, su := must[*url.URL](t)(url.Parse(first)), must[*url.URL](t)(url.Parse(second))
		q := su.Query()
		q.Set("code", fu.Query().Get("code"))
		su.RawQuery = q.Encode()
		// PKCE refuses it at the provider before the nonce is looked at.
		if status, _, _ := b.do(http.MethodGet, su.String(), nil); status != http.StatusBadRequest || why.last() != "code exchange" {
			t.Fatalf("swapped code = %d (reason %q)", status, why.last())
		}
	})
	t.Run("provider error", func(t *testing.T) {
		b := newBrowser(t, e)
		callback := b.loginUpstream(b.startVerify(link))
		u := must[*url.URL](t)(url.Parse(callback))
		u.RawQuery = url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied"}}.Encode()
		if status, _, _ := b.do(http.MethodGet, u.String(), nil); status != http.StatusBadRequest || why.last() != "provider error" {
			t.Fatalf("provider error = %d (reason %q)", status, why.last())
		}
	})
	if _, err := e.st.GuardianVerified(e.ctx, school.LinkHash(token)); err == nil {
		t.Fatal("a refused callback left a verified identity")
	}
	b := newBrowser(t, e)
	if status, _, body := b.do(http.MethodPost, link, url.Values{"action": {"grant_all"}}); status != http.StatusOK {
		t.Fatalf("unverified decision (verification optional) = %d\n%s", status, body)
	}
	for _, c := range e.consents() {
		if c.VerifiedSubject != "" {
			t.Fatalf("consent %+v carries an identity that was never verified", c)
		}
	}
}

func TestVerificationRequired(t *testing.T) {
	e, op, _ := newVerifyEnv(t, true)
	link := e.start()
	b := newBrowser(t, e)
	_, _, page := b.do(http.MethodGet, link, nil)
	if strings.Contains(page, `id="grant-all"`) || !strings.Contains(page, `id="verify-button"`) {
		t.Fatalf("required verification: page offers a decision before verification:\n%s", page)
	}
	if status, _, body := b.do(http.MethodPost, link, url.Values{"action": {"grant_all"}}); status != http.StatusForbidden {
		t.Fatalf("unverified decision = %d, want 403\n%s", status, body)
	}
	if cs := e.consents(); len(cs) != 0 {
		t.Fatalf("refused decision recorded consents %+v", cs)
	}
	// The link is still usable: verify, then decide.
	callback := b.loginUpstream(b.startVerify(link))
	if status, _, _ := b.do(http.MethodGet, callback, nil); status != http.StatusSeeOther {
		t.Fatalf("callback = %d", status)
	}
	if status, _, body := b.do(http.MethodPost, link, url.Values{"action": {"deny_all"}}); status != http.StatusOK {
		t.Fatalf("verified decision = %d\n%s", status, body)
	}
	for _, c := range e.consents() {
		if c.VerifiedSubject != op.srv.URL+" id1" || c.Decision != school.DecisionDenied {
			t.Fatalf("consent = %+v", c)
		}
	}
}
