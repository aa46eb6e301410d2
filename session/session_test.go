package session_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
	"github.com/elevid/elevid/session"
)

// store is the part of a backend the tests use.
type store interface {
	session.Store
	CreateSession(ctx context.Context, s school.Session) (school.Session, error)
}

// backend is a store as opened, to migrate and close.
type backend interface {
	store
	Migrate(ctx context.Context) (int64, error)
	Close() error
}

// backends runs fn on a fresh SQLite store and, with
// ELEVID_TEST_POSTGRES, on a fresh PostgreSQL schema.
func backends(t *testing.T, fn func(t *testing.T, st store, clock *storetest.Clock)) {
	for _, b := range []struct {
		name string
		open func(t *testing.T, opt sqlstore.Options) (backend, error)
	}{
		{"sqlite", func(t *testing.T, opt sqlstore.Options) (backend, error) {
			return sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "elevid.db"), opt)
		}},
		{"postgres", func(t *testing.T, opt sqlstore.Options) (backend, error) {
			return postgres.Open(context.Background(), testenv.PostgresSchema(t, "session"), opt)
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			clock := storetest.NewClock()
			st, err := b.open(t, sqlstore.Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, err := st.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			fn(t, st, clock)
		})
	}
}

func newKeys() [][]byte {
	return [][]byte{securecookie.GenerateRandomKey(64), securecookie.GenerateRandomKey(32)}
}

// lifetimes are distinct per kind, so that a mix-up shows.
var lifetimes = map[school.SessionKind][2]time.Duration{
	school.SessionPupil:    {12 * time.Hour, 2 * time.Hour},
	school.SessionStaff:    {8 * time.Hour, 30 * time.Minute},
	school.SessionGuardian: {time.Hour, 0},
}

func newManager(t *testing.T, st store, clock *storetest.Clock, kind school.SessionKind, keys [][]byte, secure bool) *session.Manager {
	t.Helper()
	m, err := session.New(session.Options{Kind: kind, Store: st, Keys: keys, Secure: secure,
		Lifetime: lifetimes[kind][0], IdleTimeout: lifetimes[kind][1], Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// start creates a session of m's kind for subject and returns the
// cookie Start set.
func start(t *testing.T, st store, m *session.Manager, subject string, r *http.Request) (school.Session, *http.Cookie) {
	t.Helper()
	s, err := st.CreateSession(context.Background(), m.New(school.Session{SubjectID: subject, SchoolID: "sch"}))
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		r = httptest.NewRequest("POST", "/signin", nil)
	}
	w := httptest.NewRecorder()
	if err := m.Start(w, r, s); err != nil {
		t.Fatal(err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("Start set %d cookies, want 1", len(cs))
	}
	return s, cs[0]
}

func request(cs ...*http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	for _, c := range cs {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// current calls m.Current and returns the session, the cookies the
// response set and the error.
func current(m *session.Manager, r *http.Request) (school.Session, []*http.Cookie, error) {
	w := httptest.NewRecorder()
	s, err := m.Current(w, r)
	return s, w.Result().Cookies(), err
}

func wantCleared(t *testing.T, cs []*http.Cookie, name string) {
	t.Helper()
	if len(cs) != 1 || cs[0].Name != name || cs[0].Value != "" || cs[0].MaxAge >= 0 {
		t.Fatalf("cookies set = %+v, want %s cleared", cs, name)
	}
}

func TestKindsAreKeptApart(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		keys := newKeys()
		pupils := newManager(t, st, clock, school.SessionPupil, keys, false)
		staff := newManager(t, st, clock, school.SessionStaff, keys, false)
		guardians := newManager(t, st, clock, school.SessionGuardian, keys, false)
		all := []*session.Manager{pupils, staff, guardians}
		for _, m := range all {
			s, c := start(t, st, m, "subject-"+string(m.Kind()), nil)
			if got, _, err := current(m, request(c)); err != nil || got.Ref != s.Ref || got.Kind != m.Kind() {
				t.Fatalf("%s: Current = %+v, %v", m.Kind(), got, err)
			}
			for _, other := range all {
				if other == m {
					continue
				}
				// The cookie as sent: another kind's manager does not
				// read it at all.
				if _, _, err := current(other, request(c)); !errors.Is(err, school.ErrNotFound) {
					t.Fatalf("%s cookie read by %s manager: %v", m.Kind(), other.Kind(), err)
				}
				// Copied under the other kind's name: it fails to decode
				// (the name is signed with the value), and is cleared.
				moved := &http.Cookie{Name: session.CookieName(other.Kind(), false), Value: c.Value}
				_, set, err := current(other, request(moved))
				if !errors.Is(err, school.ErrNotFound) {
					t.Fatalf("%s cookie renamed for %s: %v", m.Kind(), other.Kind(), err)
				}
				wantCleared(t, set, moved.Name)
				// A validly signed cookie of the other kind naming this
				// session: the store's kind decides.
				v, err := securecookie.EncodeMulti(moved.Name, map[any]any{"sid": s.ID}, securecookie.CodecsFromPairs(keys...)...)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := current(other, request(&http.Cookie{Name: moved.Name, Value: v})); !errors.Is(err, school.ErrNotFound) {
					t.Fatalf("%s session in a signed %s cookie: %v", m.Kind(), other.Kind(), err)
				}
			}
		}
		// Start refuses a session of another kind.
		s, err := st.CreateSession(context.Background(), staff.New(school.Session{SubjectID: "st"}))
		if err != nil {
			t.Fatal(err)
		}
		if err := pupils.Start(httptest.NewRecorder(), request(), s); err == nil {
			t.Fatal("a pupil manager started a staff session")
		}
	})
}

func TestTamperedCookieIsNoSession(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		keys := newKeys()
		m := newManager(t, st, clock, school.SessionStaff, keys, true)
		s, c := start(t, st, m, "staff-1", nil)
		if c.Name != "__Host-elevid_staff" || !c.Secure {
			t.Fatalf("secure cookie = %+v", c)
		}
		flip := []byte(c.Value)
		flip[len(flip)/2] ^= 1
		otherKeys := newKeys()
		foreign, err := securecookie.EncodeMulti(c.Name, map[any]any{"sid": s.ID}, securecookie.CodecsFromPairs(otherKeys...)...)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{
			"tampered":         string(flip),
			"plain session id": s.ID, // the staff cookie before: an unsigned id
			"other keys":       foreign,
			"truncated":        c.Value[:len(c.Value)-4],
			"empty":            "",
		} {
			r := request(&http.Cookie{Name: c.Name, Value: v})
			if m.HasCookie(r) {
				t.Errorf("%s: HasCookie", name)
			}
			_, set, err := current(m, r)
			if !errors.Is(err, school.ErrNotFound) {
				t.Errorf("%s: Current err = %v, want ErrNotFound", name, err)
				continue
			}
			wantCleared(t, set, c.Name)
		}
		// No cookie at all: not found, nothing set.
		if _, set, err := current(m, request()); !errors.Is(err, school.ErrNotFound) || len(set) != 0 {
			t.Fatalf("no cookie: %v, set %+v", err, set)
		}
		// The intact cookie still works.
		if got, _, err := current(m, request(c)); err != nil || got.Ref != s.Ref {
			t.Fatalf("intact cookie: %+v, %v", got, err)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		old, nw := newKeys(), newKeys()
		before := newManager(t, st, clock, school.SessionPupil, old, false)
		s, c := start(t, st, before, "pupil-1", nil)
		rotated := newManager(t, st, clock, school.SessionPupil, append(append([][]byte{}, nw...), old...), false)
		if got, _, err := current(rotated, request(c)); err != nil || got.Ref != s.Ref {
			t.Fatalf("old cookie after rotation: %+v, %v", got, err)
		}
		// New cookies are made with the newest keys only.
		_, c2 := start(t, st, rotated, "pupil-2", nil)
		if _, _, err := current(newManager(t, st, clock, school.SessionPupil, nw, false), request(c2)); err != nil {
			t.Fatalf("new cookie with the newest keys: %v", err)
		}
		if _, _, err := current(before, request(c2)); !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("new cookie with the old keys: %v", err)
		}
		// Once the old keys are dropped, the old cookie is no session.
		if _, _, err := current(newManager(t, st, clock, school.SessionPupil, nw, false), request(c)); !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("old cookie after the old keys went: %v", err)
		}
	})
}

// TestPupilCookieOfGorillaSessions: a pupil's cookie written by
// gorilla/sessions (the pupils' session cookie before this package) is
// still read, so that an upgrade signs nobody out.
func TestPupilCookieOfGorillaSessions(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		keys := newKeys()
		m := newManager(t, st, clock, school.SessionPupil, keys, false)
		s, err := st.CreateSession(context.Background(), m.New(school.Session{SubjectID: "pupil-1"}))
		if err != nil {
			t.Fatal(err)
		}
		cs := sessions.NewCookieStore(keys...)
		gs := sessions.NewSession(cs, "elevid_session")
		gs.Values["sid"] = s.ID
		w := httptest.NewRecorder()
		if err := cs.Save(httptest.NewRequest("GET", "/", nil), w, gs); err != nil {
			t.Fatal(err)
		}
		if got, _, err := current(m, request(w.Result().Cookies()...)); err != nil || got.Ref != s.Ref {
			t.Fatalf("gorilla/sessions cookie: %+v, %v", got, err)
		}
	})
}

func TestEndedSessionClearsCookie(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		ctx := context.Background()
		keys := newKeys()
		m := newManager(t, st, clock, school.SessionPupil, keys, false)

		// Revoked (elsewhere, e.g. "sign out elsewhere").
		s, c := start(t, st, m, "pupil-1", nil)
		if err := st.RevokeSession(ctx, s.SubjectID, s.Ref, "test"); err != nil {
			t.Fatal(err)
		}
		_, set, err := current(m, request(c))
		if !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("revoked: %v", err)
		}
		wantCleared(t, set, c.Name)

		// Idle: past the idle timeout without use.
		_, c = start(t, st, m, "pupil-1", nil)
		clock.Advance(lifetimes[school.SessionPupil][1] + time.Second)
		_, set, err = current(m, request(c))
		if !errors.Is(err, school.ErrExpired) {
			t.Fatalf("idle: %v", err)
		}
		wantCleared(t, set, c.Name)

		// Absolute: used often, but past the lifetime.
		_, c = start(t, st, m, "pupil-1", nil)
		for range 11 {
			clock.Advance(time.Hour)
			if _, set, err := current(m, request(c)); err != nil || len(set) != 0 {
				t.Fatalf("in use: %v, set %+v", err, set)
			}
		}
		clock.Advance(time.Hour)
		_, set, err = current(m, request(c))
		if !errors.Is(err, school.ErrExpired) {
			t.Fatalf("past the lifetime: %v", err)
		}
		wantCleared(t, set, c.Name)

		// Without a response writer nothing is cleared (and nothing fails).
		if _, err := m.Current(nil, request(c)); !errors.Is(err, school.ErrExpired) {
			t.Fatalf("Current(nil, …) = %v", err)
		}
	})
}

func TestLifetimesPerKind(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		keys := newKeys()
		for _, kind := range []school.SessionKind{school.SessionPupil, school.SessionStaff, school.SessionGuardian} {
			for _, secure := range []bool{false, true} {
				m := newManager(t, st, clock, kind, keys, secure)
				life, idle := lifetimes[kind][0], lifetimes[kind][1]
				tmpl := m.New(school.Session{SubjectID: "x", Kind: school.SessionStaff, ExpiresAt: clock.Now().Add(999 * time.Hour)})
				if tmpl.Kind != kind || !tmpl.ExpiresAt.Equal(clock.Now().Add(life)) || tmpl.IdleTimeout != idle || !tmpl.AuthTime.Equal(clock.Now()) {
					t.Fatalf("%s: New = %+v", kind, tmpl)
				}
				s, c := start(t, st, m, "subject-"+string(kind), nil)
				if !s.ExpiresAt.Equal(clock.Now().Add(life)) || s.IdleTimeout != idle {
					t.Fatalf("%s: stored session %+v", kind, s)
				}
				wantName := map[school.SessionKind]string{school.SessionPupil: "elevid_session",
					school.SessionStaff: "elevid_staff", school.SessionGuardian: "elevid_guardian"}[kind]
				if secure {
					wantName = "__Host-" + wantName
				}
				wantSameSite := http.SameSiteLaxMode
				if kind == school.SessionStaff {
					wantSameSite = http.SameSiteStrictMode
				}
				if c.Name != wantName || c.MaxAge != int(life.Seconds()) || c.Path != "/" || !c.HttpOnly ||
					c.Secure != secure || c.SameSite != wantSameSite || c.Domain != "" {
					t.Fatalf("%s (secure %t): cookie %+v", kind, secure, c)
				}
				// The cookie's signature lasts as long as the session
				// (checked on the real clock, as securecookie does).
				if strings.Contains(c.Value, s.ID) {
					t.Fatalf("%s: the session id is readable in the cookie", kind)
				}
			}
		}
	})
}

func TestStartEndsThePreviousSession(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		ctx := context.Background()
		var ended []string
		m, err := session.New(session.Options{Kind: school.SessionPupil, Store: st, Keys: newKeys(), Lifetime: time.Hour, Now: clock.Now,
			End: func(ctx context.Context, s school.Session, reason string) error {
				ended = append(ended, s.Ref+" "+reason)
				return st.RevokeSession(ctx, s.SubjectID, s.Ref, reason)
			}})
		if err != nil {
			t.Fatal(err)
		}
		a, ca := start(t, st, m, "pupil-a", nil)
		// A second sign-in in the same browser (another pupil on a shared
		// computer, or the same one again) ends the first session.
		b, cb := start(t, st, m, "pupil-b", request(ca))
		if len(ended) != 1 || ended[0] != a.Ref+" new sign-in" {
			t.Fatalf("ended = %v", ended)
		}
		if _, err := st.TouchSession(ctx, a.ID); !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("the first session after the second sign-in: %v", err)
		}
		if got, _, err := current(m, request(cb)); err != nil || got.Ref != b.Ref {
			t.Fatalf("second session: %+v, %v", got, err)
		}
		// End ends the current one through End and clears the cookie.
		w := httptest.NewRecorder()
		got, err := m.End(w, request(cb), "logout")
		if err != nil || got.Ref != b.Ref || len(ended) != 2 || ended[1] != b.Ref+" logout" {
			t.Fatalf("End = %+v, %v; ended %v", got, err, ended)
		}
		wantCleared(t, w.Result().Cookies(), cb.Name)
		if _, err := st.TouchSession(ctx, b.ID); !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("after End: %v", err)
		}
		// Ending without a session clears the cookie and ends nothing.
		w = httptest.NewRecorder()
		if got, err := m.End(w, request(cb), "logout"); err != nil || got.Ref != "" || len(ended) != 2 {
			t.Fatalf("End again = %+v, %v; ended %v", got, err, ended)
		}
		wantCleared(t, w.Result().Cookies(), cb.Name)
	})
}

func TestNewRefusesBadOptions(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		short := make([]byte, 16)
		rand.Read(short)
		for name, opt := range map[string]session.Options{
			"unknown kind": {Kind: "robot", Store: st, Keys: newKeys(), Lifetime: time.Hour},
			"no store":     {Kind: school.SessionPupil, Keys: newKeys(), Lifetime: time.Hour},
			"no lifetime":  {Kind: school.SessionPupil, Store: st, Keys: newKeys()},
			"no keys":      {Kind: school.SessionPupil, Store: st, Lifetime: time.Hour},
			"odd keys":     {Kind: school.SessionPupil, Store: st, Keys: newKeys()[:1], Lifetime: time.Hour},
			"short block":  {Kind: school.SessionPupil, Store: st, Keys: [][]byte{newKeys()[0], short}, Lifetime: time.Hour},
			"short hash":   {Kind: school.SessionPupil, Store: st, Keys: [][]byte{short, newKeys()[1]}, Lifetime: time.Hour},
		} {
			if _, err := session.New(opt); err == nil {
				t.Errorf("%s: New accepted %+v", name, opt)
			}
		}
	})
}

// The cookie seals the bare session id; a cookie of the shape written
// before (a gob-encoded map, as gorilla/sessions wrote it) still names its
// session, so an upgrade signs nobody out.
func TestCookieSealsTheBareIDAndReadsTheOlderShape(t *testing.T) {
	backends(t, func(t *testing.T, st store, clock *storetest.Clock) {
		keys := newKeys()
		m := newManager(t, st, clock, school.SessionPupil, keys, false)
		s, c := start(t, st, m, "pupil-1", nil)
		bare := securecookie.CodecsFromPairs(keys...)
		bare[0].(*securecookie.SecureCookie).SetSerializer(securecookie.NopEncoder{})
		var b []byte
		if err := securecookie.DecodeMulti(c.Name, c.Value, &b, bare...); err != nil {
			t.Fatal(err)
		}
		if string(b) != s.ID {
			t.Fatalf("cookie seals %q, want the session id %q", b, s.ID)
		}
		old, err := securecookie.EncodeMulti(c.Name, map[any]any{"sid": s.ID}, securecookie.CodecsFromPairs(keys...)...)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := current(m, request(&http.Cookie{Name: c.Name, Value: old}))
		if err != nil || got.Ref != s.Ref {
			t.Fatalf("cookie of the older shape: session %q, %v; want %q", got.Ref, err, s.Ref)
		}
		// The older shape holding something other than an id names no
		// session.
		for name, v := range map[string]any{"no sid": map[any]any{"x": s.ID}, "not a map": s.ID} {
			other, err := securecookie.EncodeMulti(c.Name, v, securecookie.CodecsFromPairs(keys...)...)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := current(m, request(&http.Cookie{Name: c.Name, Value: other})); !errors.Is(err, school.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", name, err)
			}
		}
	})
}
