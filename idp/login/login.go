package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/session"
	"github.com/elevid/elevid/web"
)

// LoginOptions configure the passkey login and the pupils' sessions.
type LoginOptions struct {
	Store   school.Store
	Site    *web.Site
	Passkey passkey.Config
	// Issuer is the public base URL; an https issuer makes the session
	// cookie Secure (and named with the __Host- prefix).
	Issuer string
	// SessionKeys are cookie keys in pairs, newest pair first: a 64-byte
	// hash key and a 32-byte block (encryption) key. Older pairs after the
	// newest keep existing cookies valid while keys rotate.
	SessionKeys [][]byte
	// IdleTimeout ends a session after this long without use (1 hour when
	// zero); SessionLifetime ends it regardless (8 hours when zero).
	IdleTimeout     time.Duration
	SessionLifetime time.Duration
	// ClientIP names the client in audit entries and rate limits;
	// web.ClientIP when nil.
	ClientIP func(*http.Request) string
	// MaxBegins login ceremonies may one client address start within
	// BeginWindow on one node: 3000 per 15 minutes when zero, so that a
	// whole school behind one address signing in at the start of the day
	// stays under it. A ceremony is a sealed value the browser holds (no
	// row), so the limit is counted in memory.
	MaxBegins   int
	BeginWindow time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	// Access ends the sessions ended here (logout, sign-out from /me, a
	// removed passkey), so that every platform the session signed in to,
	// over OIDC or SAML, gets a logout notice. cmd/elevid passes the one
	// service; nil means a service of the login's own (tests).
	Access *access.Service
}

// Login serves the pupils' username-less passkey login at /login, logout,
// and the pupil's own page /me. Session state lives in the Store; the
// cookie (package session) holds only the random session id.
type Login struct {
	opt      LoginOptions
	rp       *passkey.RelyingParty
	sessions *session.Manager
	// ceremonies seal login ceremonies with the session keys.
	ceremonies []securecookie.Codec
	begins     *windowCounter
	log        *slog.Logger
	// continuations by the path of a return_to (ContinueAt).
	continuations map[string]Continuation
}

// A Continuation continues a passkey login, inside its finish request,
// to the place the login returns to. Given the request and the return_to
// (checked by SafeReturnTo) it returns the platform whose consent state
// the login reads with the pupil's passkey (in the same statement:
// school.PasskeyStore.PasskeyLoginConsent) and finish; finish, given the
// session the login made and that consent state, returns where the
// browser goes instead of return_to, or false to send it to return_to.
// A nil finish continues nothing. A continuation must decide as the
// handler at return_to would, which still answers every login it does
// not continue.
type Continuation func(r *http.Request, returnTo *url.URL) (platformID string, finish func(s school.Session, cs school.ConsentState) (next string, ok bool))

// ContinueAt makes c continue the logins that return to path (the OpenID
// provider's hand-off: the browser then goes from the login straight to
// the platform). It is called while wiring, before the login serves.
func (l *Login) ContinueAt(path string, c Continuation) {
	if l.continuations == nil {
		l.continuations = map[string]Continuation{}
	}
	l.continuations[path] = c
}

// NewLogin returns a Login for opt.
func NewLogin(opt LoginOptions) (*Login, error) {
	if opt.Store == nil || opt.Site == nil {
		return nil, errors.New("idp: login needs a store and a site")
	}
	if opt.MaxBegins <= 0 {
		opt.MaxBegins = 3000
	}
	if opt.BeginWindow <= 0 {
		opt.BeginWindow = 15 * time.Minute
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = time.Hour
	}
	if opt.SessionLifetime <= 0 {
		opt.SessionLifetime = 8 * time.Hour
	}
	if opt.ClientIP == nil {
		opt.ClientIP = web.ClientIP
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Access == nil {
		opt.Access = access.New(access.Options{Now: opt.Now, Logger: opt.Logger})
	}
	if opt.Passkey.LoginTimeout <= 0 {
		opt.Passkey.LoginTimeout = 5 * time.Minute
	}
	if opt.Passkey.LoginTimeout > school.CeremonyMaxAge {
		return nil, fmt.Errorf("idp: the login timeout may be at most %v", school.CeremonyMaxAge)
	}
	rp, err := passkey.NewRelyingParty(opt.Passkey, opt.Store, opt.Now)
	if err != nil {
		return nil, err
	}
	l := &Login{opt: opt, rp: rp, begins: newWindowCounter(opt.BeginWindow, 1<<16), log: opt.Logger}
	// A pupil's session ends through the access service, so that the
	// platforms it signed in to are told (logout, a new sign-in).
	l.sessions, err = session.New(session.Options{Kind: school.SessionPupil, Store: opt.Store, Keys: opt.SessionKeys,
		Secure: strings.HasPrefix(opt.Issuer, "https://"), Lifetime: opt.SessionLifetime, IdleTimeout: opt.IdleTimeout,
		Now: opt.Now, Logger: opt.Logger,
		End: func(ctx context.Context, s school.Session, reason string) error {
			return opt.Store.InTx(ctx, func(q school.Queries) error {
				_, err := l.endSession(ctx, q, s.SubjectID, s.Ref, reason)
				return err
			})
		}})
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	l.ceremonies = securecookie.CodecsFromPairs(opt.SessionKeys...)
	for _, c := range l.ceremonies {
		// The sealed bytes are the ceremony's JSON as they are (no gob
		// around them): a ceremony sealed before lived minutes and fails
		// once, as an expired one does.
		c.(*securecookie.SecureCookie).MaxAge(int(school.CeremonyMaxAge.Seconds())).SetSerializer(securecookie.NopEncoder{})
	}
	return l, nil
}

// Mount registers the login routes on mux:
//
//	GET  /login         login page (?return_to=/path, ?force=1 to log in again)
//	POST /login/begin   JSON: start a discoverable WebAuthn login
//	POST /login/finish  JSON: verify, create the session, say where to go
//	POST /logout        end the session
//	GET  /me            the pupil's passkeys and sessions (and the /me/… actions)
func (l *Login) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", l.page)
	mux.HandleFunc("POST /login/begin", l.begin)
	mux.HandleFunc("POST /login/finish", l.finish)
	mux.HandleFunc("POST /logout", l.logout)
	l.mountMe(mux)
}

// endSession ends one of the pupil's login sessions through the access
// service, inside q's transaction.
func (l *Login) endSession(ctx context.Context, q school.Queries, pupilID, ref, reason string) (bool, error) {
	e, err := l.opt.Access.End(ctx, q, access.Session(pupilID, ref), reason)
	return e.Sessions > 0, err
}

// LoginURL is the login page that sends the browser on to returnTo (a
// same-origin path) afterwards.
func LoginURL(returnTo string) string {
	return "/login?return_to=" + url.QueryEscape(SafeReturnTo(returnTo))
}

// ReauthURL is like LoginURL but asks for a fresh login even when a
// session exists (OIDC prompt=login, max_age).
func ReauthURL(returnTo string) string { return LoginURL(returnTo) + "&force=1" }

// SafeReturnTo returns s when it is a same-origin path ("/…", not "//…"
// or "/\…", no scheme or host, at most 16 KiB: an OIDC hand-off carries
// the sealed request), and "/me" otherwise.
func SafeReturnTo(s string) string {
	const def = "/me"
	if s == "" || len(s) > 16<<10 || s[0] != '/' || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") {
		return def
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return def
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return def
	}
	return s
}

// Current returns the request's valid pupil session and records its use.
// Revoked, idle-expired and expired sessions, staff sessions, and cookies
// that fail to decode (forged, or older than every key) yield false.
func (l *Login) Current(r *http.Request) (school.Session, bool) {
	return l.current(nil, r)
}

// CurrentConsent returns the request's valid pupil session and the consent
// state of its pupil for platformID, read together; school.ErrNotFound or
// school.ErrExpired when there is no valid session.
func (l *Login) CurrentConsent(r *http.Request, platformID string) (school.Session, school.ConsentState, error) {
	return l.sessions.CurrentConsent(nil, r, platformID)
}

// current is Current that, with w, clears the cookie of an ended session.
func (l *Login) current(w http.ResponseWriter, r *http.Request) (school.Session, bool) {
	s, err := l.sessions.Current(w, r)
	if err != nil {
		if !errors.Is(err, school.ErrNotFound) && !errors.Is(err, school.ErrExpired) {
			l.log.Error("login: reading session failed", "err", err)
		}
		return school.Session{}, false
	}
	return s, true
}

// HasCookie reports whether r carries a valid session cookie, without
// reading the store (the session it names may have ended).
func (l *Login) HasCookie(r *http.Request) bool { return l.sessions.HasCookie(r) }

// LoginPageData is the data of the login page.
type LoginPageData struct {
	ReturnTo string
}

func (l *Login) page(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	returnTo := SafeReturnTo(q.Get("return_to"))
	if q.Get("force") == "" {
		if _, ok := l.current(w, r); ok {
			http.Redirect(w, r, returnTo, http.StatusSeeOther)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	l.opt.Site.Render(w, r, http.StatusOK, "login", LoginPageData{ReturnTo: returnTo})
}

func (l *Login) jsonError(w http.ResponseWriter, r *http.Request, status int, key string) {
	l.opt.Site.JSONError(w, r, status, key, nil)
}

func (l *Login) begin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Mediation string `json:"mediation"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&body); err != nil {
		l.jsonError(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	if n := l.begins.hit(l.opt.ClientIP(r), l.opt.Now()); n > l.opt.MaxBegins {
		l.log.Warn("login: begin refused by rate limit", "count", n)
		w.Header().Set("Retry-After", fmt.Sprint(int(l.opt.BeginWindow.Seconds())))
		l.jsonError(w, r, http.StatusTooManyRequests, "error.rate_limited")
		return
	}
	assertion, sd, err := l.rp.BeginDiscoverable(passkey.Mediation(body.Mediation))
	if err != nil {
		l.serverError(w, r, err)
		return
	}
	id, err := l.sealCeremony(sd)
	if err != nil {
		l.serverError(w, r, err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, passkey.Begun{Ceremony: id, Options: assertion})
}

func (l *Login) serverError(w http.ResponseWriter, r *http.Request, err error) {
	l.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
}

// refusalKey is the text key of the message for a login the passkey
// relying party refused (a typed error, wrapped or not).
func refusalKey(refused error) string {
	var inactive *passkey.InactiveOwnerError
	switch {
	case errors.Is(refused, passkey.ErrUnknownCredential), errors.Is(refused, passkey.ErrUnknownHandle), errors.Is(refused, passkey.ErrRevokedCredential):
		return "login.err.unknown"
	case errors.As(refused, &inactive):
		return "login.err.inactive"
	}
	return "login.err.failed"
}

func (l *Login) finish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := passkey.ReadFinish(r)
	if err != nil {
		l.log.Warn("login: bad finish request", "err", err)
		l.jsonError(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	sd, err := l.openCeremony(f.Ceremony)
	if err != nil {
		l.log.Warn("login: unknown or expired ceremony", "err", err)
		l.jsonError(w, r, http.StatusBadRequest, "login.err.ceremony")
		return
	}
	next := SafeReturnTo(f.ReturnTo)
	platformID, continued := l.continuation(r, next)
	var (
		pupil school.Pupil
		cs    school.ConsentState // for platformID, when continued
	)
	a, err := l.rp.FinishLogin(ctx, sd, f.Credential, passkey.Login{Kind: school.OwnerPupil,
		// The handle's pupil and the credential in one read (with the
		// consent state a continuation needs).
		Lookup: func(ctx context.Context, userHandle, credentialID []byte) (school.Credential, error) {
			var c school.Credential
			var err error
			if continued != nil {
				pupil, c, cs, err = l.opt.Store.PasskeyLoginConsent(school.Brief(ctx), userHandle, credentialID, platformID) // a lookup by key
			} else {
				pupil, c, err = l.opt.Store.PasskeyLogin(school.Brief(ctx), userHandle, credentialID) // a lookup by key
			}
			return c, err
		},
		Allow: func(context.Context, school.Credential) error {
			if pupil.Status != school.PupilActive {
				return &passkey.InactiveOwnerError{Status: string(pupil.Status)}
			}
			return nil
		},
	})
	switch {
	case errors.Is(err, passkey.ErrMalformed):
		l.log.Warn("login: unparsable assertion", "err", err)
		l.jsonError(w, r, http.StatusBadRequest, "login.err.failed")
		return
	case passkey.Refusal(err):
		l.log.Warn("login: refused", "reason", err.Error(), "pupil", pupil.ID)
		l.jsonError(w, r, http.StatusUnauthorized, refusalKey(err))
		return
	case err != nil:
		l.serverError(w, r, err)
		return
	}
	s, err := l.complete(ctx, r, pupil, a, ceremonyRef(sd))
	if errors.Is(err, school.ErrConflict) {
		// The ceremony made a session before: a replayed assertion.
		l.log.Warn("login: ceremony used before", "pupil", pupil.ID)
		l.jsonError(w, r, http.StatusBadRequest, "login.err.ceremony")
		return
	}
	if err != nil {
		l.serverError(w, r, err)
		return
	}
	if err := l.sessions.Start(w, r, s); err != nil {
		l.serverError(w, r, err)
		return
	}
	l.log.Info("login: pupil logged in", "pupil", pupil.ID, "session", s.Ref[:12])
	if continued != nil {
		if to, ok := continued(s, cs); ok {
			next = to
		}
	}
	passkey.WriteJSON(w, http.StatusOK, passkey.Result{OK: true, Next: next})
}

// continuation returns returnTo's continuation (ContinueAt), as
// Continuation does; a nil finish when there is none.
func (l *Login) continuation(r *http.Request, returnTo string) (string, func(school.Session, school.ConsentState) (string, bool)) {
	u, err := url.Parse(returnTo)
	if err != nil {
		return "", nil
	}
	if c := l.continuations[u.Path]; c != nil {
		return c(r, u)
	}
	return "", nil
}

// complete records the credential's use (counter, clone warning, backup
// state) and creates the session named by the ceremony, both or neither
// (school.SessionStore.SignIn; with the clone warning's audit entry in the
// same transaction): ErrConflict when the ceremony made a session before.
func (l *Login) complete(ctx context.Context, r *http.Request, pupil school.Pupil, a passkey.Assertion, ceremony string) (school.Session, error) {
	now := a.Use.At
	if a.Cloned {
		l.log.Warn("login: signature counter did not increase: credential flagged as possibly cloned",
			"pupil", pupil.ID, "stored_count", a.Credential.SignCount)
	}
	s := l.sessions.New(school.Session{
		SubjectID: pupil.ID, SchoolID: pupil.SchoolID, AuthTime: now,
		AMR: a.AMR(), ACR: "passkey", UserVerified: true, CredentialID: a.Credential.ID,
		UserAgent: r.UserAgent(), Ceremony: ceremony,
	})
	if !a.Cloned {
		return l.opt.Store.SignIn(school.Brief(ctx), a.Use, s)
	}
	var out school.Session
	err := l.opt.Store.InTx(school.Brief(ctx), func(q school.Queries) error {
		var err error
		if out, err = q.SignIn(ctx, a.Use, s); err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{
			SchoolID: pupil.SchoolID, Time: now, ActorID: "system", Action: "passkey.clone_warning",
			SubjectID: pupil.ID, Remote: l.opt.ClientIP(r),
		})
		return err
	})
	return out, err
}

func (l *Login) logout(w http.ResponseWriter, r *http.Request) {
	if _, err := l.sessions.End(w, r, "logout"); err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
