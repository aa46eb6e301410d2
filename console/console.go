package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/session"
	"github.com/elevid/elevid/web"
)

// Enroller issues a single-use enrolment code for a pupil whose
// enrolment flow is consented (school.ErrInvalid otherwise);
// *enrolment.Flows implements it.
type Enroller interface {
	IssueCode(ctx context.Context, a enrolment.Actor, pupilID string) (code string, expires time.Time, err error)
}

// EnrolmentStarter starts the enrolment flows (age policy, consent
// requests to the guardians) of a class's pupils; *enrolment.Flows
// implements it.
type EnrolmentStarter interface {
	StartClass(ctx context.Context, a enrolment.Actor, schoolID, classID string) ([]enrolment.StartResult, error)
}

// Resetter is the teacher-verified passkey reset of the consent flow
// (revoke passkeys and sessions, issue a new code, tell the guardians);
// *guardian.Service implements it. Without one the console offers no
// passkey reset.
type Resetter interface {
	ResetPasskeys(ctx context.Context, a enrolment.Actor, pupilID string, verifiedInPerson bool) (code string, expires time.Time, err error)
}

// PlatformManager applies the consent side of platform changes;
// *guardian.Service implements it.
type PlatformManager interface {
	// SetPlatformActivation activates or deactivates a platform for a
	// school (audited); deactivation ends access like a withdrawal.
	SetPlatformActivation(ctx context.Context, a enrolment.Actor, schoolID, platformID string, active bool) (bool, error)
	// PlatformChanged runs in the transaction that stored a changed
	// registration and asks guardians about added attributes.
	PlatformChanged(ctx context.Context, q school.Queries, old, nw school.Platform) error
}

// Syncer runs roster syncs; *rostersync.Syncer implements it.
type Syncer interface {
	Run(ctx context.Context, schoolID string, ro rostersync.RunOptions) (rostersync.Result, error)
}

// ConnectionTester checks that a directory answers and accepts the bind
// credentials (password in clear), without reading the roster. The
// console passes what is on the form only.
type ConnectionTester interface {
	TestConnection(ctx context.Context, src school.DirectorySource, password []byte) error
}

// Options are a Console's dependencies and limits. Zero limits take the
// defaults in parentheses.
type Options struct {
	Store  school.Store
	Site   *web.Site
	Sealer *school.Sealer
	// Issuer is the public base URL: an https issuer makes the cookie
	// Secure (with the __Host- prefix); enrolment QR codes point to it.
	Issuer string
	// IdleTimeout (30m) and Lifetime (8h) bound staff sessions.
	IdleTimeout time.Duration
	Lifetime    time.Duration
	// SessionKeys sign and encrypt the staff session cookie: pairs of a
	// 64-byte hash key and a 32-byte block key, newest first (see package
	// session); required.
	SessionKeys [][]byte
	// ReauthWindow (5m) is how recent a re-authentication must be for
	// sensitive actions.
	ReauthWindow time.Duration
	// Enroller issues enrolment codes; without one, sheets and resets are
	// unavailable (the pages say so).
	Enroller Enroller
	// Starter starts the enrolment flows (consent requests) when a
	// class's enrolment starts; optional.
	Starter EnrolmentStarter
	// Resetter resets a pupil's passkeys; without it the console offers
	// no reset.
	Resetter Resetter
	// Platforms activates platforms per school and asks guardians about
	// added attributes; without it activation is unavailable.
	Platforms PlatformManager
	// Syncer runs syncs and Tester tests directory connections; both
	// optional (the pages say when they are unavailable).
	Syncer Syncer
	Tester ConnectionTester
	// Passkey is the WebAuthn relying party of the instance (the pupils'
	// one); staff passkeys are offered when its RPID is set.
	Passkey passkey.Config
	// Argon2 are the cost parameters of new password hashes (DefaultArgon2).
	Argon2 Argon2Params
	// After MaxFailures (5) consecutive failed sign-ins an account backs
	// off: the next attempt is considered after LockBase (1s), doubling
	// with each further failure up to LockMax (1m). Short, so that nobody
	// elsewhere can keep a teacher out; the per-client limits stop guessing.
	MaxFailures int
	LockBase    time.Duration
	LockMax     time.Duration
	// MaxClientFailures (50) failed sign-ins from one client on any
	// usernames, or MaxPairFailures (10) on one username, within
	// ClientWindow (15m) block that client for the rest of the window.
	MaxClientFailures int
	MaxPairFailures   int
	ClientWindow      time.Duration
	// SheetTTL (2h) is how long a printed sheet can be reopened.
	SheetTTL time.Duration
	// ClientIP names the client; web.ClientIP when nil.
	ClientIP func(*http.Request) string
	Now      func() time.Time
	Logger   *slog.Logger
}

// Console serves the staff console under /console. It keeps nothing in
// memory that matters: sessions, lockouts, counters and sheets live in
// the Store.
type Console struct {
	opt      Options
	log      *slog.Logger
	sessions *session.Manager
	// dummyHash is verified against when the username is unknown, so the
	// answer takes as long as for a known one.
	dummyHash string
	// rp serves staff passkeys; nil when they are off.
	rp *passkey.RelyingParty
}

// New returns a Console for opt.
func New(opt Options) (*Console, error) {
	if opt.Store == nil || opt.Site == nil || opt.Sealer == nil {
		return nil, errors.New("console: a store, a site and a sealer are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.IdleTimeout, 30*time.Minute)
	def(&opt.Lifetime, 8*time.Hour)
	def(&opt.ReauthWindow, 5*time.Minute)
	def(&opt.LockBase, time.Second)
	def(&opt.LockMax, time.Minute)
	def(&opt.ClientWindow, 15*time.Minute)
	def(&opt.SheetTTL, 2*time.Hour)
	if opt.MaxFailures <= 0 {
		opt.MaxFailures = 5
	}
	if opt.MaxClientFailures <= 0 {
		opt.MaxClientFailures = 50
	}
	if opt.MaxPairFailures <= 0 {
		opt.MaxPairFailures = 10
	}
	if opt.Argon2.Memory == 0 {
		opt.Argon2 = DefaultArgon2
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
	sessions, err := session.New(session.Options{Kind: school.SessionStaff, Store: opt.Store, Keys: opt.SessionKeys,
		Secure: strings.HasPrefix(opt.Issuer, "https://"), Lifetime: opt.Lifetime, IdleTimeout: opt.IdleTimeout,
		Now: opt.Now, Logger: opt.Logger})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{opt: opt, log: opt.Logger, sessions: sessions}
	c.dummyHash = HashPassword(school.NewID(), opt.Argon2)
	if opt.Passkey.RPID != "" {
		rp, err := passkey.NewRelyingParty(opt.Passkey, opt.Store, opt.Now)
		if err != nil {
			return nil, err
		}
		c.rp = rp
	}
	return c, nil
}

func (c *Console) now() time.Time { return c.opt.Now() }

// Mount registers the console routes on mux. Every route but sign-in
// requires a staff session; each handler authorizes its action with
// Authorize before it reads anything of a school.
func (c *Console) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.login)
	mux.HandleFunc("POST /console/logout", c.logout)
	mux.HandleFunc("GET /console/totp", c.session(c.totpPage, false))
	mux.HandleFunc("POST /console/totp", c.session(c.totpConfirm, false))
	mux.HandleFunc("GET /console/reauth", c.staff(c.reauthPage))
	mux.HandleFunc("POST /console/reauth", c.staff(c.reauth))
	mux.HandleFunc("GET /console/account", c.staff(c.accountPage))
	mux.HandleFunc("POST /console/account/password", c.staff(c.changePassword))
	c.mountPasskeys(mux)

	mux.HandleFunc("GET /console", c.staff(c.home))
	mux.HandleFunc("GET /console/{$}", c.staff(c.home))
	mux.HandleFunc("GET /console/schools/{school}", c.staff(c.schoolPage))
	mux.HandleFunc("GET /console/schools/{school}/classes/{class}", c.staff(c.classPage))
	mux.HandleFunc("POST /console/schools/{school}/classes/{class}/enrol", c.staff(c.enrolClass))
	mux.HandleFunc("GET /console/schools/{school}/sheets/{sheet}", c.staff(c.sheetPage))
	mux.HandleFunc("GET /console/schools/{school}/pupils/{pupil}", c.staff(c.pupilPage))
	mux.HandleFunc("POST /console/schools/{school}/pupils/{pupil}/reset", c.staff(c.resetPupil))
	mux.HandleFunc("GET /console/schools/{school}/pupils/{pupil}/export", c.staff(c.exportPupil))
	mux.HandleFunc("GET /console/schools/{school}/directory", c.staff(c.directoryPage))
	mux.HandleFunc("POST /console/schools/{school}/directory", c.staff(c.directorySave))
	mux.HandleFunc("POST /console/schools/{school}/directory/test", c.staff(c.directoryTest))
	mux.HandleFunc("GET /console/schools/{school}/sync", c.staff(c.syncPage))
	mux.HandleFunc("POST /console/schools/{school}/sync", c.staff(c.syncRun))
	mux.HandleFunc("GET /console/schools/{school}/sync/{run}", c.staff(c.syncRunPage))
	mux.HandleFunc("GET /console/schools/{school}/staff", c.staff(c.staffPage))
	mux.HandleFunc("POST /console/schools/{school}/staff", c.staff(c.staffInvite))
	mux.HandleFunc("POST /console/schools/{school}/staff/{staff}/disable", c.staff(c.staffDisable))
	mux.HandleFunc("POST /console/schools/{school}/staff/{staff}/reset", c.staff(c.staffReset))
	mux.HandleFunc("GET /console/schools/{school}/audit", c.staff(c.auditPage))
	mux.HandleFunc("POST /console/schools/{school}/platforms/{platform}", c.staff(c.schoolPlatformSave))

	mux.HandleFunc("GET /console/schools", c.staff(c.schoolsPage))
	mux.HandleFunc("POST /console/schools", c.staff(c.schoolCreate))
	mux.HandleFunc("GET /console/instance/audit", c.staff(c.instanceAuditPage))
	mux.HandleFunc("GET /console/platforms", c.staff(c.platformsPage))
	mux.HandleFunc("POST /console/platforms", c.staff(c.platformSave))
	mux.HandleFunc("GET /console/platforms/{platform}", c.staff(c.platformPage))
	mux.HandleFunc("POST /console/platforms/{platform}", c.staff(c.platformSave))
}

// safeReturn returns s when it is a console path, else "/console".
func safeReturn(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" || u.Scheme != "" || u.Host != "" || strings.HasPrefix(s, "//") || strings.Contains(s, "\\") ||
		!(u.Path == "/console" || strings.HasPrefix(u.Path, "/console/")) {
		return "/console"
	}
	return s
}

// fail maps an error to a response, in one place: hidden and unknown
// records are 404, forbidden actions 403, the rest a logged 500.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrHidden), errors.Is(err, school.ErrNotFound), errors.Is(err, enrolment.ErrForbidden):
		c.opt.Site.NotFound(w, r)
	case errors.Is(err, ErrForbidden):
		c.opt.Site.Error(w, r, http.StatusForbidden, "error.forbidden")
	case errors.Is(err, school.ErrExpired):
		c.opt.Site.Error(w, r, http.StatusGone, "console.err.expired")
	default:
		c.opt.Site.ServerError(w, r, err)
	}
}

// audit appends an entry for p's action to the chain of schoolID (the
// instance chain for ""), through q when given.
func (c *Console) audit(ctx context.Context, q school.Queries, r *http.Request, p Principal, schoolID, action, subject, detail string) error {
	if q == nil {
		q = c.opt.Store
	}
	_, err := q.AppendAudit(ctx, school.AuditEntry{
		SchoolID: schoolID, Time: c.now(), ActorID: p.StaffID, ActorRole: string(p.Role),
		Action: action, SubjectID: subject, Detail: detail, Remote: c.opt.ClientIP(r),
	})
	return err
}

// access records in the access log that p read or changed a pupil's data
// (pupilID) or viewed a class list (classID only: one entry per view, not
// per pupil), for the pupil's and guardians' timeline. Reads fail closed:
// a page whose access cannot be recorded is not shown.
func (c *Console) access(ctx context.Context, p Principal, schoolID, pupilID, classID, action, purpose string) error {
	return c.opt.Store.RecordAccess(ctx, school.AccessEntry{SchoolID: schoolID, PupilID: pupilID, ClassID: classID,
		StaffID: p.StaffID, StaffName: p.Name, Role: p.Role, Action: action, Purpose: purpose, Time: c.now()})
}

// actor is p as an actor of the enrolment flows.
func (c *Console) actor(r *http.Request, p Principal) enrolment.Actor {
	return enrolment.Actor{ID: p.StaffID, Role: p.Role, SchoolID: p.SchoolID, ClassIDs: p.ClassIDs, Remote: c.opt.ClientIP(r)}
}
