package guardian_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// sink is a real SMTP server (go-smtp) that keeps what it receives.
type sink struct {
	mu   sync.Mutex
	msgs []received
	srv  *smtp.Server
	addr string
}

type received struct {
	From, To string
	Data     []byte
}

type sinkSession struct {
	s        *sink
	from, to string
}

func (ss *sinkSession) Reset()        {}
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error { ss.to = to; return nil }
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, received{ss.from, ss.to, b})
	ss.s.mu.Unlock()
	return nil
}

// startSink starts a sink on addr ("127.0.0.1:0" for any port).
func startSink(t *testing.T, addr string) *sink {
	t.Helper()
	s := &sink{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

func (s *sink) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// env is one ElevID with a school, a teacher, a guardian, a pupil, two
// platforms, the SMTP sink and an HTTP server.
// testSealer keys enrolment codes and seals mail bodies in the tests.
var testSealer = func() *school.Sealer {
	s, err := school.NewSealer([]byte("parent-test-key-0123456789abcdefgh"))
	if err != nil {
		panic(err)
	}
	return s
}()

type env struct {
	t        *testing.T
	ctx      context.Context
	st       *sqlite.Store
	clock    *clock
	sink     *sink
	svc      *guardian.Service
	flows    *enrolment.Flows
	sender   *guardian.Sender
	srv      *httptest.Server
	school   school.School
	class    school.Class
	guardian school.Guardian
	pupil    school.Pupil
	teacher  school.Staff
	pf, pf2  school.Platform
}

// logouts returns the logout notices queued, as "pupil-subject/platform"
// (the access service queues them in the transaction of the change).
func (e *env) logouts() []string {
	e.t.Helper()
	var out []string
	for _, n := range must[[]school.LogoutNotice](e.t)(e.st.ListLogouts(e.ctx)) {
		out = append(out, n.Subject+"/"+n.PlatformID)
	}
	return out
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with a hook that adjusts the service's options.
func newEnvWith(t *testing.T, adjust func(*guardian.Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, ctx: ctx, clock: &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.school = must[school.School](t)(st.CreateSchool(ctx, school.School{Code: "demo", Name: "Demo Skole", Domain: "demo.elevid.dk"}))
	e.class = must[school.Class](t)(st.CreateClass(ctx, school.Class{SchoolID: e.school.ID, Name: "7A"}))
	e.guardian = must[school.Guardian](t)(st.CreateGuardian(ctx, school.Guardian{SchoolID: e.school.ID, Name: "Mor Hansen", Email: "mor@example.dk"}))
	e.pupil = must[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: e.school.ID, GivenName: "Ida", FamilyName: "Hansen", Status: school.PupilActive,
		BirthDate: time.Date(2013, 5, 17, 0, 0, 0, 0, time.UTC), ClassIDs: []string{e.class.ID}, GuardianIDs: []string{e.guardian.ID}}))
	e.teacher = must[school.Staff](t)(st.CreateStaff(ctx, school.Staff{SchoolID: e.school.ID, Username: "laerer", Name: "Lærer", Role: school.RoleTeacher, ClassIDs: []string{e.class.ID}}))
	e.pf = must[school.Platform](t)(st.CreatePlatform(ctx, school.Platform{Name: "MatematikFessor", Protocol: school.ProtocolOIDC, ClientID: "mf",
		Attributes: []school.AttributeGrant{{Name: "given_name", JustificationDA: "Læreren ser elevens fornavn ved afleveringer", JustificationEN: "The teacher sees the pupil's first name on hand-ins"}}}))
	e.pf2 = must[school.Platform](t)(st.CreatePlatform(ctx, school.Platform{Name: "Ordbogen", Protocol: school.ProtocolSAML, ClientID: "https://ordbogen.example/sp"}))
	for _, pf := range []string{e.pf.ID, e.pf2.ID} {
		must[bool](t)(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: e.school.ID, PlatformID: pf, ActivatedBy: "test"}, true))
	}

	e.sink = startSink(t, "127.0.0.1:0")
	host, port, _ := net.SplitHostPort(e.sink.addr)
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(webtest.NewSite(t).CrossOrigin(mux))
	t.Cleanup(e.srv.Close)
	e.sender = guardian.NewSender(guardian.SenderOptions{Store: st, Sealer: testSealer, SMTP: guardian.SMTP{Host: host, Port: atoi(port), TLS: "none", From: "elevid@demo.elevid.dk", Timeout: 5 * time.Second},
		Now: e.clock.Now, Logger: quiet, Backoff: func(int) time.Duration { return time.Minute }})
	opt := guardian.Options{Store: st, Site: webtest.NewSite(t), Sealer: testSealer, BaseURL: e.srv.URL, Now: e.clock.Now, Logger: quiet,
		SessionKeys: [][]byte{bytes.Repeat([]byte("h"), 64), bytes.Repeat([]byte("b"), 32)}}
	if adjust != nil {
		adjust(&opt)
	}
	requests := must[*guardian.Requests](t)(guardian.NewRequests(opt))
	e.flows = must[*enrolment.Flows](t)(enrolment.NewFlows(enrolment.FlowOptions{Store: st, Sealer: testSealer, Requester: requests, Now: e.clock.Now, Logger: quiet}))
	opt.Flows = e.flows
	e.svc = must[*guardian.Service](t)(guardian.New(opt))
	e.svc.Mount(mux)
	return e
}

var quiet = slog.New(slog.DiscardHandler)

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func (e *env) actor() enrolment.Actor { return enrolment.StaffActor(e.teacher, "192.0.2.1") }

// start starts the pupil's enrolment and delivers the mail; it returns
// the consent link from the delivered message.
func (e *env) start() string {
	e.t.Helper()
	res := must[[]enrolment.StartResult](e.t)(e.flows.Start(e.ctx, e.actor(), []string{e.pupil.ID}))
	if len(res) != 1 || res[0].Err != nil || res[0].State != school.EnrolmentAwaitingConsent {
		e.t.Fatalf("start = %+v", res)
	}
	n := len(e.sink.messages())
	if sent, failed, err := e.sender.RunOnce(e.ctx); err != nil || sent != 1 || failed != 0 {
		e.t.Fatalf("RunOnce = %d sent, %d failed, %v", sent, failed, err)
	}
	msgs := e.sink.messages()
	if len(msgs) != n+1 {
		e.t.Fatalf("sink got %d messages, want %d", len(msgs), n+1)
	}
	text, html := parseMail(e.t, msgs[len(msgs)-1].Data)
	link := linkRE.FindString(text)
	if link == "" || !strings.Contains(html, link) {
		e.t.Fatalf("no consent link in mail:\n%s", text)
	}
	return link
}

var linkRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+/(consent|guardian/login)/[A-Za-z0-9_-]{43}`)

// parseMail parses a delivered message and returns its decoded text and
// HTML parts.
func parseMail(t *testing.T, data []byte) (text, html string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", mt, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return text, html
}

// grantAll sends the consent request (start) and grants every platform
// through its link in a new browser, which it returns: signed in as the
// guardian.
func (e *env) grantAll() *http.Client {
	e.t.Helper()
	c := e.client()
	if status, _ := post(e.t, c, e.start(), map[string]string{"action": "grant_all"}); status != http.StatusOK {
		e.t.Fatalf("granting all = %d", status)
	}
	return c
}

// client is a browser-like HTTP client with cookies that sends the
// headers a same-origin form post carries.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: sameOrigin{}}
}

type sameOrigin struct{}

func (sameOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return http.DefaultTransport.RoundTrip(r)
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, form map[string]string) (int, string) {
	t.Helper()
	vals := make(map[string][]string)
	for k, v := range form {
		vals[k] = []string{v}
	}
	resp, err := c.PostForm(u, vals)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
