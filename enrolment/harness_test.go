package enrolment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/internal/webauthntest"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/web"
)

// clock runs with real time (go-webauthn checks its own expiry against
// time.Now) plus an offset tests can move forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// logBuffer collects log lines, to assert that refusals are logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is a running ElevID with enrolment and login on a real store.
// testSealer keys enrolment codes in the tests.
var testSealer = func() *school.Sealer {
	s, err := school.NewSealer([]byte("enrolment-test-key-0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return s
}()

type env struct {
	t      testing.TB
	st     school.Store
	exec   func(ctx context.Context, q string, args ...any) error
	clock  *clock
	logs   *logBuffer
	srv    *httptest.Server
	origin string // http://localhost:PORT
	// enrMux is the handler without the trusted proxy in front.
	enrMux func() http.Handler
	enr    *enrolment.Enroller
	login  *login.Login
	school school.School
	pupil  school.Pupil
}

type storeKind string

const (
	onSQLite   storeKind = "sqlite"
	onPostgres storeKind = "postgres"
)

func openStore(t testing.TB, kind storeKind, now func() time.Time) (school.Store, func(ctx context.Context, q string, args ...any) error) {
	ctx := context.Background()
	switch kind {
	case onPostgres:
		st, err := postgres.Open(ctx, testenv.PostgresSchema(t, "t"), sqlstore.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st, func(ctx context.Context, q string, args ...any) error {
			_, err := st.Pool().Exec(ctx, q, args...)
			return err
		}
	default:
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st, func(ctx context.Context, q string, args ...any) error {
			_, err := st.DB().ExecContext(ctx, q, args...)
			return err
		}
	}
}

func newEnv(t testing.TB, kind storeKind) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{}, logs: &logBuffer{}}
	e.st, e.exec = openStore(t, kind, e.clock.Now)
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	site := webtest.NewSite(t)
	mux := http.NewServeMux()
	e.enrMux = func() http.Handler { return site.CrossOrigin(mux) }
	// The listener must exist before the handlers, to know the origin.
	// The test server is the school's reverse proxy: every connection
	// comes from 127.0.0.1, a trusted proxy, and a browser's address is
	// the X-Forwarded-For it sends (see browser.ip).
	loopback, _ := web.ParseProxy("127.0.0.1")
	e.srv = httptest.NewUnstartedServer(web.ClientIPs{Trusted: []netip.Prefix{loopback}}.Handler(site.CrossOrigin(mux)))
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(e.srv.URL, "http://"), ":")
	e.origin = "http://localhost:" + port
	pk := passkey.Config{RPID: "localhost", RPName: "ElevID test", Origins: []string{e.origin}}
	var err error
	e.enr, err = enrolment.New(enrolment.Options{Store: e.st, Sealer: testSealer, Site: site, Passkey: pk, Now: e.clock.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{school.NewSecret(64), school.NewSecret(32)}
	e.login, err = login.NewLogin(login.LoginOptions{Store: e.st, Site: site, Passkey: pk, Issuer: e.origin, SessionKeys: keys, Now: e.clock.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.enr.Mount(mux)
	e.login.Mount(mux)
	mux.Handle("GET /static/", web.Static())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { site.Render(w, r, 200, "home", nil) })

	ctx := context.Background()
	e.school = must[school.School](t)(e.st.CreateSchool(ctx, school.School{Code: "demo", Name: "Demoskolen", Domain: "demo.elevid.dk"}))
	e.pupil = e.newPupil("Ida", true)
	return e
}

// must returns a function that fails t on error.
func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// newPupil adds an active pupil, with a granted consent when consent.
func (e *env) newPupil(name string, consent bool) school.Pupil {
	ctx := context.Background()
	p := must[school.Pupil](e.t)(e.st.CreatePupil(ctx, school.Pupil{SchoolID: e.school.ID, GivenName: name, FamilyName: "Test"}))
	if consent {
		// An enrolment flow in the consented state, as the consent flow
		// leaves it once a guardian approved.
		must[school.Enrolment](e.t)(e.st.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, State: school.EnrolmentConsented, Rule: school.ConsentNone, StartedBy: "test"}))
	}
	return p
}

func (e *env) issue(p school.Pupil) string {
	code, _, err := e.enr.Issue(context.Background(), p.ID, "staff-test")
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// browser is one client: a cookie jar, a language and a remote address
// (the test server sees every client as 127.0.0.1, so rate-limit tests
// use their own server).
type browser struct {
	e    *env
	c    *http.Client
	lang string
	ip   string // the client address the proxy forwards, when set
}

func (e *env) browser(lang string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, lang: lang, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path, ctype string, body io.Reader) (int, string, http.Header) {
	b.e.t.Helper()
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept-Language", b.lang)
	if b.ip != "" {
		req.Header.Set("X-Forwarded-For", b.ip)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out), res.Header
}

func (b *browser) get(path string) (int, string) {
	s, body, _ := b.do("GET", path, "", nil)
	return s, body
}

func (b *browser) form(path string, v url.Values) (int, string, http.Header) {
	return b.do("POST", path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
}

func (b *browser) json(path string, v any) (int, map[string]any) {
	b.e.t.Helper()
	raw, _ := json.Marshal(v)
	status, body, _ := b.do("POST", path, "application/json", bytes.NewReader(raw))
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		b.e.t.Fatalf("%s: %d %q is not JSON", path, status, body)
	}
	return status, out
}

// device is a virtual authenticator with one credential.
type device struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func (e *env) device() *device {
	d := &device{
		rp:   virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID test", Origin: e.origin},
		auth: virtualwebauthn.NewAuthenticator(),
		cred: webauthntest.NewCredential(),
	}
	return d
}

// optionsJSON returns the "options" member of a begin answer as JSON.
func optionsJSON(t testing.TB, begun map[string]any) string {
	raw, err := json.Marshal(begun["options"])
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// beginEnrol starts a registration with code and returns the ceremony
// id and the parsed options.
func (b *browser) beginEnrol(code string) (string, *virtualwebauthn.AttestationOptions) {
	b.e.t.Helper()
	status, begun := b.json("/enrol/begin", map[string]string{"code": code})
	if status != 200 {
		b.e.t.Fatalf("enrol/begin = %d %v", status, begun)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(optionsJSON(b.e.t, begun))
	if err != nil {
		b.e.t.Fatal(err)
	}
	return begun["ceremony"].(string), opts
}

// attest answers registration options with the device; the device
// learns the user handle like a real authenticator.
func (d *device) attest(opts *virtualwebauthn.AttestationOptions) json.RawMessage {
	d.auth.Options.UserHandle = []byte(opts.UserID)
	return json.RawMessage(virtualwebauthn.CreateAttestationResponse(d.rp, d.auth, d.cred, *opts))
}

// enrol registers the device with code and fails the test otherwise.
func (b *browser) enrol(d *device, code, label string) {
	b.e.t.Helper()
	cer, opts := b.beginEnrol(code)
	status, res := b.json("/enrol/finish", map[string]any{"ceremony": cer, "label": label, "credential": d.attest(opts)})
	if status != 200 || res["ok"] != true {
		b.e.t.Fatalf("enrol/finish = %d %v", status, res)
	}
	d.auth.AddCredential(d.cred)
}

// beginLogin starts a discoverable login.
func (b *browser) beginLogin() (string, *virtualwebauthn.AssertionOptions) {
	b.e.t.Helper()
	status, begun := b.json("/login/begin", map[string]string{})
	if status != 200 {
		b.e.t.Fatalf("login/begin = %d %v", status, begun)
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(optionsJSON(b.e.t, begun))
	if err != nil {
		b.e.t.Fatal(err)
	}
	return begun["ceremony"].(string), opts
}

func (d *device) assert(opts *virtualwebauthn.AssertionOptions) json.RawMessage {
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(d.rp, d.auth, d.cred, *opts))
}

// loginWith runs a whole login and returns the finish status and answer.
func (b *browser) loginWith(d *device, returnTo string) (int, map[string]any) {
	b.e.t.Helper()
	cer, opts := b.beginLogin()
	return b.json("/login/finish", map[string]any{"ceremony": cer, "return_to": returnTo, "credential": d.assert(opts)})
}

func (e *env) credentials(p school.Pupil) []school.Credential {
	return must[[]school.Credential](e.t)(e.st.ListCredentials(context.Background(), school.PupilOwner(p.ID), true))
}

func contains(t testing.TB, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Fatalf("page lacks %q:\n%s", w, body)
		}
	}
}

var _ = fmt.Sprintf
