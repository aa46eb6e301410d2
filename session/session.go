package session

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/elevid/elevid/school"
)

// Store is what a Manager needs of the store: reading a session by its
// cookie id and ending one.
type Store interface {
	TouchSession(ctx context.Context, id string) (school.Session, error)
	TouchSessionConsent(ctx context.Context, id, platformID string) (school.Session, school.ConsentState, error)
	RevokeSession(ctx context.Context, subjectID, ref, reason string) error
}

// Options configure a Manager for one kind of session.
type Options struct {
	// Kind is the kind of session served; it names the cookie and sets
	// its SameSite mode (see CookieName and SameSite).
	Kind  school.SessionKind
	Store Store
	// Keys are cookie keys in pairs, newest pair first: a 64-byte hash key
	// and a 32-byte block (encryption) key. Older pairs after the newest
	// keep existing cookies valid while keys rotate.
	Keys [][]byte
	// Secure marks the cookie Secure and gives it the __Host- prefix
	// (https instances).
	Secure bool
	// Lifetime ends a session regardless of use; required. IdleTimeout
	// ends it after this long without use (never when zero).
	Lifetime    time.Duration
	IdleTimeout time.Duration
	// End ends a session (the browser's previous one at Start, the
	// current one at End): Store.RevokeSession when nil. Pupils' sessions
	// end through the access service, so that platforms are told.
	End    func(ctx context.Context, s school.Session, reason string) error
	Now    func() time.Time
	Logger *slog.Logger
}

// Manager serves one kind of browser session. It is safe for concurrent
// use.
type Manager struct {
	opt    Options
	name   string
	codecs []securecookie.Codec
}

// A cookie's value seals the session id itself (securecookie with
// NopEncoder: HMAC-SHA256 and AES-CTR over the id's bytes). Cookies
// written before that seal a gob-encoded map[any]any holding the id under
// sidKey, the shape gorilla/sessions wrote; they are still read, so an
// upgrade signs nobody out. Gob decoding a map compiles a decoder each
// time: it cost ten times the rest of reading the cookie.
const sidKey = "sid"

// CookieName is the name of kind's cookie; secure instances prefix it
// with __Host- (Secure, Path=/, no Domain).
func CookieName(kind school.SessionKind, secure bool) string {
	name := "elevid_" + string(kind)
	if kind == school.SessionPupil {
		name = "elevid_session"
	}
	if secure {
		name = "__Host-" + name
	}
	return name
}

// SameSite is the SameSite mode of kind's cookie: Strict for staff (the
// console is never entered from another site with a session in use),
// Lax for pupils and guardians (a platform or a mail link sends them
// here by a top-level navigation).
func SameSite(kind school.SessionKind) http.SameSite {
	if kind == school.SessionStaff {
		return http.SameSiteStrictMode
	}
	return http.SameSiteLaxMode
}

// New returns a Manager for opt. The keys must come in pairs of a 64-byte
// hash key and a 32-byte block key.
func New(opt Options) (*Manager, error) {
	if !opt.Kind.Valid() {
		return nil, fmt.Errorf("session: unknown session kind %q", opt.Kind)
	}
	if opt.Store == nil || opt.Lifetime <= 0 {
		return nil, errors.New("session: a store and a lifetime are required")
	}
	if len(opt.Keys) == 0 || len(opt.Keys)%2 != 0 {
		return nil, errors.New("session: session keys must come in pairs (64-byte hash key, 32-byte block key)")
	}
	for i, k := range opt.Keys {
		if want := map[int]int{0: 64, 1: 32}[i%2]; len(k) != want {
			return nil, fmt.Errorf("session: session key %d has %d bytes, want %d", i, len(k), want)
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.End == nil {
		opt.End = func(ctx context.Context, s school.Session, reason string) error {
			return opt.Store.RevokeSession(ctx, s.SubjectID, s.Ref, reason)
		}
	}
	codecs := securecookie.CodecsFromPairs(opt.Keys...)
	for _, c := range codecs {
		c.(*securecookie.SecureCookie).MaxAge(int(opt.Lifetime.Seconds())).SetSerializer(securecookie.NopEncoder{})
	}
	return &Manager{opt: opt, name: CookieName(opt.Kind, opt.Secure), codecs: codecs}, nil
}

// Kind is the kind of session m serves.
func (m *Manager) Kind() school.SessionKind { return m.opt.Kind }

// Lifetime is the absolute lifetime of m's sessions.
func (m *Manager) Lifetime() time.Duration { return m.opt.Lifetime }

// New returns tmpl as a session of m's kind to create now: Kind,
// ExpiresAt (now plus the lifetime) and IdleTimeout are m's, AuthTime is
// now unless set. Pass the result to the store's CreateSession, and the
// created session to Start.
func (m *Manager) New(tmpl school.Session) school.Session {
	now := m.opt.Now()
	tmpl.Kind = m.opt.Kind
	tmpl.ExpiresAt = now.Add(m.opt.Lifetime)
	tmpl.IdleTimeout = m.opt.IdleTimeout
	if tmpl.AuthTime.IsZero() {
		tmpl.AuthTime = now
	}
	return tmpl
}

// Start puts the new session s (as the store's CreateSession returned
// it, with its ID) in the browser's cookie. The browser's previous
// session of this kind, if any and other than s, is ended first ("new
// sign-in"): a session id planted before the sign-in is never the one
// signed in (no session fixation), and no session is left behind. A
// failure to end it is logged, not returned: the new cookie replaces the
// old one all the same, and the sign-in goes on.
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, s school.Session) error {
	if s.Kind != m.opt.Kind || s.ID == "" {
		return fmt.Errorf("session: starting a %s session with a %s manager (or without an id)", s.Kind, m.opt.Kind)
	}
	if id := m.cookieID(r); id != "" && id != s.ID {
		if old, err := m.opt.Store.TouchSession(r.Context(), id); err == nil && old.Kind == m.opt.Kind {
			if err := m.opt.End(r.Context(), old, "new sign-in"); err != nil && !errors.Is(err, school.ErrNotFound) {
				m.opt.Logger.Error("session: ending the previous session failed", "kind", m.opt.Kind, "session", old.Ref[:12], "err", err)
			}
		}
	}
	v, err := securecookie.EncodeMulti(m.name, []byte(s.ID), m.codecs...)
	if err != nil {
		return fmt.Errorf("session: encode cookie: %w", err)
	}
	http.SetCookie(w, m.cookie(v, int(m.opt.Lifetime.Seconds())))
	return nil
}

// Current returns the request's active session of m's kind and records
// its use (Store.TouchSession). With no cookie, a cookie that fails to
// decode (forged, tampered, of another kind, or older than every key),
// or a session that is unknown, revoked or of another kind, it returns
// ErrNotFound; with an idle or absolutely expired session ErrExpired;
// other errors are the store's. On ErrNotFound and ErrExpired with a
// cookie present, the cookie is cleared when w is not nil.
func (m *Manager) Current(w http.ResponseWriter, r *http.Request) (school.Session, error) {
	s, _, err := m.currentWith(w, r, m.touch)
	return s, err
}

// touch reads a session without a consent state.
func (m *Manager) touch(ctx context.Context, id string) (school.Session, school.ConsentState, error) {
	s, err := m.opt.Store.TouchSession(ctx, id)
	return s, school.ConsentState{}, err
}

// CurrentConsent is Current that also returns the consent state of the
// session's pupil for platformID, read with the session in one query
// (school.SessionStore.TouchSessionConsent).
func (m *Manager) CurrentConsent(w http.ResponseWriter, r *http.Request, platformID string) (school.Session, school.ConsentState, error) {
	return m.currentWith(w, r, func(ctx context.Context, id string) (school.Session, school.ConsentState, error) {
		return m.opt.Store.TouchSessionConsent(ctx, id, platformID)
	})
}

// currentWith is Current with the store read given.
func (m *Manager) currentWith(w http.ResponseWriter, r *http.Request, read func(ctx context.Context, id string) (school.Session, school.ConsentState, error)) (school.Session, school.ConsentState, error) {
	if _, err := r.Cookie(m.name); err != nil {
		return school.Session{}, school.ConsentState{}, fmt.Errorf("session: no cookie: %w", school.ErrNotFound)
	}
	s, cs, err := m.current(r, read)
	if err != nil && w != nil && (errors.Is(err, school.ErrNotFound) || errors.Is(err, school.ErrExpired)) {
		m.Clear(w)
	}
	return s, cs, err
}

func (m *Manager) current(r *http.Request, read func(ctx context.Context, id string) (school.Session, school.ConsentState, error)) (school.Session, school.ConsentState, error) {
	id := m.cookieID(r)
	if id == "" {
		return school.Session{}, school.ConsentState{}, fmt.Errorf("session: undecodable cookie: %w", school.ErrNotFound)
	}
	s, cs, err := read(school.Brief(r.Context()), id) // a lookup by key
	if err != nil {
		return school.Session{}, school.ConsentState{}, err
	}
	if s.Kind != m.opt.Kind {
		return school.Session{}, school.ConsentState{}, fmt.Errorf("session: a %s session in a %s cookie: %w", s.Kind, m.opt.Kind, school.ErrNotFound)
	}
	return s, cs, nil
}

// HasCookie reports whether r carries a cookie of m's kind that decodes,
// without reading the store (the session it names may have ended).
func (m *Manager) HasCookie(r *http.Request) bool { return m.cookieID(r) != "" }

// End ends the request's session of m's kind, if any, for reason and
// clears the cookie. It returns the session it ended (zero when there
// was none). When ending fails, the error is returned and the cookie is
// kept.
func (m *Manager) End(w http.ResponseWriter, r *http.Request, reason string) (school.Session, error) {
	s, _, err := m.current(r, m.touch)
	switch {
	case err == nil:
		if err := m.opt.End(r.Context(), s, reason); err != nil && !errors.Is(err, school.ErrNotFound) {
			return school.Session{}, err
		}
	case errors.Is(err, school.ErrNotFound), errors.Is(err, school.ErrExpired):
		s = school.Session{}
	default:
		return school.Session{}, err
	}
	m.Clear(w)
	return s, nil
}

// Clear removes m's cookie from the browser.
func (m *Manager) Clear(w http.ResponseWriter) { http.SetCookie(w, m.cookie("", -1)) }

func (m *Manager) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: m.name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: m.opt.Secure, SameSite: SameSite(m.opt.Kind)}
}

// cookieID is the session id in r's cookie of m's kind, or "".
func (m *Manager) cookieID(r *http.Request) string {
	c, err := r.Cookie(m.name)
	if err != nil || c.Value == "" {
		return ""
	}
	var b []byte
	if err := securecookie.DecodeMulti(m.name, c.Value, &b, m.codecs...); err != nil {
		return ""
	}
	if isSessionID(b) {
		return string(b)
	}
	var v map[any]any // a cookie written before the id was sealed bare
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return ""
	}
	id, _ := v[sidKey].(string)
	return id
}

// isSessionID reports whether b has the shape of a session id (64
// lower-case hex digits, school.Store.CreateSession), which a gob
// encoding never has.
func isSessionID(b []byte) bool {
	if len(b) != 64 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
