package console_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/web"
)

// clock is a settable clock shared by the store and the console.
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

// testArgon2 keeps hashing cheap in tests; production uses DefaultArgon2.
var testArgon2 = console.Argon2Params{Memory: 256, Time: 1, Threads: 1}

type member struct {
	school.Staff
	Password string
	Secret   string // base32 TOTP secret
}

type tenant struct {
	School     school.School
	Class      school.Class // the teacher's class
	Other      school.Class // a class the teacher does not teach
	Pupil      school.Pupil // in Class, with consent
	OtherPupil school.Pupil // in Other
	Admin      member
	Teacher    member
	Victim     member // a teacher to disable
	Sheet      string // a sheet of Class, made by Teacher
	Run        string // a sync run
}

type fixture struct {
	t        *testing.T
	st       *sqlite.Store
	clock    *clock
	sealer   *school.Sealer
	site     *web.Site
	con      *console.Console
	h        http.Handler
	A, B     tenant
	Operator member
	Platform school.Platform
}

func newFixture(t *testing.T, opt ...func(*console.Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlstore.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sealer, err := school.NewSealer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	site := webtest.NewSite(t)
	quiet := slog.New(slog.DiscardHandler)
	// The consent side as cmd/elevid wires it (feature_consent.go,
	// feature_console.go): guardian's Requests, the flows built on them,
	// and the guardian Service as the Resetter and PlatformManager, so
	// that resets here take the path production takes.
	gopt := guardian.Options{Store: st, Site: site, Sealer: sealer, BaseURL: "http://localhost:8080", Now: clk.Now, Logger: quiet,
		SessionKeys: [][]byte{bytes.Repeat([]byte("h"), 64), bytes.Repeat([]byte("b"), 32)}}
	requests, err := guardian.NewRequests(gopt)
	if err != nil {
		t.Fatal(err)
	}
	flows, err := enrolment.NewFlows(enrolment.FlowOptions{Store: st, Sealer: sealer, Requester: requests, Now: clk.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	gopt.Flows = flows
	consent, err := guardian.New(gopt)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, clock: clk, sealer: sealer, site: site}
	o := console.Options{Store: st, Site: site, Sealer: sealer, Issuer: "http://localhost:8080", Enroller: flows, Starter: flows,
		Resetter: consent, Platforms: consent,
		Syncer: rostersync.New(rostersync.Options{Store: st, Sealer: sealer, Now: clk.Now, Log: slog.New(slog.DiscardHandler)}),
		Argon2: testArgon2, Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
		SessionKeys: testSessionKeys}
	for _, fn := range opt {
		fn(&o)
	}
	if f.con, err = console.New(o); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.con.Mount(mux)
	mux.Handle("GET /static/", web.Static())
	f.h = site.CrossOrigin(mux)
	f.A = f.tenant("alpha", "Alfa Skole", "Anna", "7A")
	f.B = f.tenant("beta", "Beta Skole", "Bertram", "9Z")
	f.Operator = f.member("", "op", school.RoleOperator, nil)
	f.Platform, err = st.CreatePlatform(ctx, school.Platform{Name: "Fessor", Protocol: school.ProtocolOIDC, ClientID: "fessor", SubjectType: school.SubjectPairwise,
		Attributes: []school.AttributeGrant{{Name: "givenName", JustificationDA: "shown to the teacher", JustificationEN: "shown to the teacher"}}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) tenant(code, name, pupilName, className string) tenant {
	ctx := context.Background()
	var tn tenant
	var err error
	tn.School, err = f.st.CreateSchool(ctx, school.School{Code: code, Name: name, Domain: code + ".example.dk"})
	f.must(err)
	tn.Class, err = f.st.CreateClass(ctx, school.Class{SchoolID: tn.School.ID, Name: className})
	f.must(err)
	tn.Other, err = f.st.CreateClass(ctx, school.Class{SchoolID: tn.School.ID, Name: className + "x"})
	f.must(err)
	g, err := f.st.CreateGuardian(ctx, school.Guardian{SchoolID: tn.School.ID, Name: "Guardian " + pupilName})
	f.must(err)
	tn.Pupil, err = f.st.CreatePupil(ctx, school.Pupil{SchoolID: tn.School.ID, GivenName: pupilName, FamilyName: "Testesen",
		BirthDate: time.Date(2012, 5, 17, 0, 0, 0, 0, time.UTC), ClassIDs: []string{tn.Class.ID}, GuardianIDs: []string{g.ID}, Status: school.PupilActive})
	f.must(err)
	tn.OtherPupil, err = f.st.CreatePupil(ctx, school.Pupil{SchoolID: tn.School.ID, GivenName: pupilName + "ine", FamilyName: "Andersen",
		ClassIDs: []string{tn.Other.ID}, Status: school.PupilActive})
	f.must(err)
	f.consent(tn.Pupil.ID, g.ID)
	tn.Admin = f.member(tn.School.ID, code+"-admin", school.RoleSchoolAdmin, nil)
	tn.Teacher = f.member(tn.School.ID, code+"-teacher", school.RoleTeacher, []string{tn.Class.ID})
	tn.Victim = f.member(tn.School.ID, code+"-victim", school.RoleTeacher, nil)
	tn.Sheet = school.NewID()
	_, err = f.st.SaveSheet(ctx, school.EnrolmentSheet{ID: tn.Sheet, SchoolID: tn.School.ID, ClassID: tn.Class.ID, CreatedBy: tn.Teacher.ID,
		Data:      f.sealer.Seal([]byte(`{"School":"`+name+`","Class":"`+className+`","Cards":[{"Name":"`+pupilName+`","Code":"SECRET-`+code+`","URL":"http://localhost:8080/enrol?code=SECRET"}]}`), "sheet:"+tn.Sheet),
		ExpiresAt: f.clock.Now().Add(24 * time.Hour)})
	f.must(err)
	run, err := f.st.CreateSyncRun(ctx, school.SyncRun{SchoolID: tn.School.ID, Mode: school.SyncFull})
	f.must(err)
	tn.Run = run.ID
	return tn
}

// consent puts the pupil's enrolment flow where the consent flow leaves
// it once consent is in place.
func (f *fixture) consent(pupilID, guardianID string) {
	_, err := f.st.PutEnrolment(context.Background(), school.Enrolment{PupilID: pupilID, State: school.EnrolmentConsented, Rule: school.ConsentNone, StartedBy: "test"})
	f.must(err)
}

func (f *fixture) member(schoolID, username string, role school.Role, classes []string) member {
	ctx := context.Background()
	s, err := f.st.CreateStaff(ctx, school.Staff{SchoolID: schoolID, Username: username, Name: "Name " + username, Role: role, ClassIDs: classes})
	f.must(err)
	key, err := console.NewTOTPKey(username)
	f.must(err)
	m := member{Staff: s, Password: "pw-" + username + "-long-enough", Secret: key.Secret()}
	f.must(console.SetCredentials(ctx, f.st, f.sealer, testArgon2, s.ID, "test", &console.Credentials{Password: m.Password, TOTP: key}))
	m.Staff, err = f.st.GetStaff(ctx, s.ID)
	f.must(err)
	return m
}

// code returns m's current TOTP code.
func (f *fixture) code(m member) string {
	c, err := console.TOTPCode(m.Secret, f.clock.Now())
	f.must(err)
	return c
}

type req struct {
	method, path string
	form         url.Values
	cookie       *http.Cookie
	crossSite    bool
	remote       string
}

func (f *fixture) do(r req) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	hr := httptest.NewRequest(r.method, "http://localhost:8080"+r.path, body)
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.method == http.MethodPost {
		if r.crossSite {
			hr.Header.Set("Sec-Fetch-Site", "cross-site")
			hr.Header.Set("Origin", "https://evil.example")
		} else {
			hr.Header.Set("Sec-Fetch-Site", "same-origin")
			hr.Header.Set("Origin", "http://localhost:8080")
		}
	}
	if r.cookie != nil {
		hr.AddCookie(r.cookie)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, hr)
	return rec
}

// testSessionKeys sign and encrypt the fixture's staff cookies.
var testSessionKeys = [][]byte{bytes.Repeat([]byte("s"), 64), bytes.Repeat([]byte("t"), 32)}

// sessionRef is the Ref of the session a staff cookie names.
func (f *fixture) sessionRef(c *http.Cookie) string {
	f.t.Helper()
	codecs := securecookie.CodecsFromPairs(testSessionKeys...)
	codecs[0].(*securecookie.SecureCookie).SetSerializer(securecookie.NopEncoder{}) // the cookie seals the bare id
	var id []byte
	if err := securecookie.DecodeMulti(c.Name, c.Value, &id, codecs...); err != nil {
		f.t.Fatalf("staff cookie does not decode: %v", err)
	}
	return school.SessionRef(string(id))
}

// signIn signs m in with password and TOTP and returns the session
// cookie. It advances the clock by a TOTP period first, so that each
// sign-in has an unused code.
func (f *fixture) signIn(m member) *http.Cookie {
	f.t.Helper()
	f.clock.Advance(30 * time.Second)
	rec := f.do(req{method: "POST", path: "/console/login", form: url.Values{"username": {m.Username}, "password": {m.Password}, "code": {f.code(m)}}})
	if rec.Code != http.StatusSeeOther {
		f.t.Fatalf("sign-in of %s: status %d\n%s", m.Username, rec.Code, rec.Body.String())
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "elevid_staff" && c.Value != "" {
			return c
		}
	}
	f.t.Fatalf("sign-in of %s set no cookie", m.Username)
	return nil
}

// reauth re-authenticates m's session (password and a fresh TOTP code),
// as lasting changes such as a pupil's passkey reset require.
func (f *fixture) reauth(m member, ck *http.Cookie) {
	f.t.Helper()
	f.clock.Advance(30 * time.Second)
	rec := f.do(req{method: "POST", path: "/console/reauth", cookie: ck, form: url.Values{"password": {m.Password}, "code": {f.code(m)}, "return": {"/console"}}})
	if rec.Code != http.StatusSeeOther {
		f.t.Fatalf("re-authentication of %s: status %d", m.Username, rec.Code)
	}
}

func (f *fixture) login(username, password, code, remote string) *httptest.ResponseRecorder {
	return f.do(req{method: "POST", path: "/console/login", form: url.Values{"username": {username}, "password": {password}, "code": {code}}, remote: remote})
}
