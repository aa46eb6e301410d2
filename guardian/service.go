package guardian

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/session"
	"github.com/elevid/elevid/web"
)

// PupilSessions tells who is signed in as a pupil (login.Login in idp/login implements it).
type PupilSessions interface {
	Current(r *http.Request) (school.Session, bool)
}

// Waker is told when mail was enqueued (the outbox Sender).
type Waker interface{ Wake() }

// Options configure a Service.
type Options struct {
	Store school.Store
	Site  *web.Site
	// Sealer seals the bodies of queued mail (they hold magic links);
	// required.
	Sealer *school.Sealer
	// BaseURL is the public origin links in mail point to, e.g.
	// "https://elevid.example.dk" (the issuer).
	BaseURL string
	// LinkTTL is how long a consent link is valid (7 days when zero);
	// GuardianLinkTTL a link to the guardian's page (1 h when zero).
	LinkTTL         time.Duration
	GuardianLinkTTL time.Duration
	// SessionTTL is how long a guardian stays signed in (1 h when zero).
	SessionTTL time.Duration
	// SessionKeys sign and encrypt the guardian's session cookie: pairs
	// of a 64-byte hash key and a 32-byte block key, newest first (see
	// package session). Required by New, not used by NewRequests.
	SessionKeys [][]byte
	// Secure marks the guardian cookie Secure, with the __Host- prefix
	// (https instances).
	Secure bool
	// Flows are the enrolment flows, built with this package's Requests
	// (on the same Options) as their ConsentRequester; passkey resets
	// issue their new code through them. Required by New, not used by
	// NewRequests.
	Flows *enrolment.Flows
	// Access ends a pupil's access to the platforms that lose consent (and
	// on a passkey reset), in the transaction of the change. cmd/elevid
	// passes the one service; nil means a service of its own (tests).
	Access *access.Service
	// Pupils, when set, enables /me/consents.
	Pupils PupilSessions
	// Sender, when set, is woken after mail is enqueued.
	Sender Waker
	// Verification, when set, offers (or requires) upstream verification
	// of guardians on the consent page.
	Verification *Verification
	// ClientIP names the client for rate limits; web.ClientIP when nil.
	ClientIP func(*http.Request) string
	Now      func() time.Time
	Logger   *slog.Logger
}

// Service is the guardian's side of ElevID: it serves the consent page
// and the guardian's page, applies decisions and withdrawals with their
// effects, and resets passkeys with notice to guardians. (Requests sends
// the consent requests.)
type Service struct {
	opt      Options
	log      *slog.Logger
	up       *upstream // nil without Verification
	sessions *session.Manager
}

// New returns a Service for opt; Store, Site, Sealer, BaseURL, Flows and
// SessionKeys are required.
func New(opt Options) (*Service, error) {
	if opt.Store == nil || opt.Site == nil || opt.BaseURL == "" || opt.Sealer == nil || opt.Flows == nil {
		return nil, errors.New("guardian: a store, a site, a sealer, a base URL and the enrolment flows are required")
	}
	opt.defaults()
	sessions, err := session.New(session.Options{Kind: school.SessionGuardian, Store: opt.Store, Keys: opt.SessionKeys,
		Secure: opt.Secure, Lifetime: opt.SessionTTL, Now: opt.Now, Logger: opt.Logger})
	if err != nil {
		return nil, fmt.Errorf("guardian: %w", err)
	}
	s := &Service{opt: opt, log: opt.Logger, sessions: sessions}
	if v := opt.Verification; v != nil {
		if v.Issuer == "" || v.ClientID == "" || v.Name == "" {
			return nil, errors.New("guardian: guardian verification needs a name, an issuer and a client id")
		}
		s.up = &upstream{cfg: *v}
	}
	return s, nil
}

// defaults fills in the defaults the comments on Options name.
func (opt *Options) defaults() {
	opt.BaseURL = strings.TrimRight(opt.BaseURL, "/")
	if opt.LinkTTL <= 0 {
		opt.LinkTTL = 7 * 24 * time.Hour
	}
	if opt.GuardianLinkTTL <= 0 {
		opt.GuardianLinkTTL = time.Hour
	}
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = time.Hour
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
}

func (s *Service) now() time.Time { return s.opt.Now() }

// newToken returns a 256-bit random link token, base64url.
func newToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("guardian: crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// plausibleToken reports whether s can be a token at all (43 base64url
// characters), so that junk never reaches the store.
func plausibleToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (s *Service) wake() {
	if s.opt.Sender != nil {
		s.opt.Sender.Wake()
	}
}

// Decision is a guardian's answer for one platform.
type Decision struct {
	PlatformID string
	Grant      bool
}

// Errors of the link-driven actions; handlers map them to pages.
var (
	ErrLinkInvalid = errors.New("guardian: link not valid")
	ErrLinkUsed    = errors.New("guardian: link already used")
	ErrLinkExpired = errors.New("guardian: link expired")
	ErrClosed      = errors.New("guardian: the request is no longer open")
)

func linkErr(err error) error {
	switch {
	case errors.Is(err, school.ErrNotFound):
		return ErrLinkInvalid
	case errors.Is(err, school.ErrUsed):
		return ErrLinkUsed
	case errors.Is(err, school.ErrExpired):
		return ErrLinkExpired
	}
	return err
}

// consentTarget is a consent link with what it refers to, checked: the
// guardian is still on record for the pupil.
type consentTarget struct {
	link     school.GuardianLink
	pupil    school.Pupil
	guardian school.Guardian
	school   school.School
	flow     school.Enrolment
}

func (s *Service) target(ctx context.Context, q school.Queries, l school.GuardianLink) (consentTarget, error) {
	t := consentTarget{link: l}
	if l.Kind != school.LinkConsent {
		return t, ErrLinkInvalid
	}
	var err error
	if t.pupil, err = q.GetPupil(ctx, l.PupilID); err != nil {
		return t, linkErr(err)
	}
	if !slices.Contains(t.pupil.GuardianIDs, l.GuardianID) {
		// The guardian was unlinked since: the link means nothing now.
		return t, ErrLinkInvalid
	}
	if t.guardian, err = q.GetGuardian(ctx, l.GuardianID); err != nil {
		return t, linkErr(err)
	}
	if t.school, err = q.GetSchool(ctx, t.pupil.SchoolID); err != nil {
		return t, err
	}
	t.flow, err = q.GetEnrolment(ctx, t.pupil.ID)
	if errors.Is(err, school.ErrNotFound) {
		return t, ErrClosed
	}
	if err != nil {
		return t, err
	}
	if t.flow, err = enrolment.Settle(ctx, q, t.flow, s.now()); err != nil {
		return t, err
	}
	if t.flow.State.Final() || t.flow.State == school.EnrolmentRequested {
		return t, ErrClosed
	}
	return t, nil
}

// covered returns the platforms the pupil may currently be released to.
func covered(ctx context.Context, q school.Queries, pupilID string, platforms []school.Platform) (map[string]bool, error) {
	out := map[string]bool{}
	for _, pf := range platforms {
		ok, err := q.ReleaseAllowed(ctx, pupilID, pf.ID)
		if err != nil {
			return nil, err
		}
		out[pf.ID] = ok
	}
	return out, nil
}

// Outcome is the result of a guardian's action.
type Outcome struct {
	PupilID    string
	GuardianID string
	State      school.EnrolmentState
	Lost       []string       // platforms no longer covered
	Granted    int            // platforms (or additions) the guardian said yes to
	Denied     int            // platforms (or additions) the guardian said no to
	Session    school.Session // a new guardian session (for the cookie), if one was made
}

// Decide records a guardian's decisions through a consent link, once: the
// link is used atomically, so of concurrent submissions exactly one
// counts (the others get ErrLinkUsed). The decisions apply to the
// platforms the link asks about (askFor): a platform asked about in full
// and not granted in decisions is denied, with the attributes it asked
// for recorded; for a platform that gained attributes since the
// guardian's grant, a yes adds them to the grant and a no refuses them
// while the rest of the grant stands. verified is the upstream identity,
// if the guardian was verified; when verification is required and
// verified is empty, Decide returns ErrVerificationRequired and changes
// nothing.
func (s *Service) Decide(ctx context.Context, token string, decisions []Decision, verified, remote string) (Outcome, error) {
	var out Outcome
	if !plausibleToken(token) {
		return out, ErrLinkInvalid
	}
	if s.up != nil && s.up.cfg.Required && verified == "" {
		return out, ErrVerificationRequired
	}
	now := s.now()
	err := s.opt.Store.InTx(ctx, func(q school.Queries) error {
		l, err := q.UseGuardianLink(ctx, school.LinkHash(token))
		if err != nil {
			return linkErr(err)
		}
		t, err := s.target(ctx, q, l)
		if err != nil {
			return err
		}
		platforms, err := q.ListPlatforms(ctx)
		if err != nil {
			return err
		}
		before, err := covered(ctx, q, t.pupil.ID, platforms)
		if err != nil {
			return err
		}
		asked, consents, err := askFor(ctx, q, t.pupil.SchoolID, t.pupil.ID, t.guardian.ID)
		if err != nil {
			return err
		}
		grants := map[string]bool{}
		for _, d := range decisions {
			grants[d.PlatformID] = d.Grant
		}
		var granted, denied, added, refused []string
		for _, v := range asked {
			c := school.Consent{PupilID: t.pupil.ID, GuardianID: t.guardian.ID, PlatformID: v.ID, VerifiedSubject: verified}
			switch {
			case v.Addition:
				mine := guardianConsent(consents, t.guardian.ID, v.ID)
				c.Decision, c.Attributes, c.Refused = school.DecisionGranted, mine.Attributes, mine.Refused
				if grants[v.ID] {
					c.Attributes = append(slices.Clone(c.Attributes), v.Attributes...)
					added = append(added, v.ID)
				} else {
					c.Refused = append(slices.Clone(c.Refused), school.AttributeNames(v.Attributes)...)
					refused = append(refused, v.ID)
				}
			case grants[v.ID]:
				c.Decision, c.Attributes = school.DecisionGranted, v.Attributes
				granted = append(granted, v.ID)
			default:
				c.Decision, c.Attributes = school.DecisionDenied, v.Attributes
				denied = append(denied, v.ID)
			}
			if c.Attributes == nil {
				c.Attributes = []school.AttributeGrant{}
			}
			if _, err := q.SetConsent(ctx, c); err != nil {
				return err
			}
		}
		actor := enrolment.Actor{ID: "guardian:" + t.guardian.ID, Role: "guardian", SchoolID: t.pupil.SchoolID, Remote: remote}
		if _, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: t.pupil.SchoolID, Time: now, ActorID: actor.ID, ActorRole: "guardian",
			Action: "consent.decide", SubjectID: t.pupil.ID, Remote: remote,
			Detail: fmt.Sprintf(`{"granted":%s,"denied":%s,"added":%s,"refused":%s,"verified":%t}`,
				jsonList(granted), jsonList(denied), jsonList(added), jsonList(refused), verified != "")}); err != nil {
			return err
		}
		e, err := enrolment.Reevaluate(ctx, q, actor, t.pupil.ID, now)
		if err != nil {
			return err
		}
		out = Outcome{PupilID: t.pupil.ID, GuardianID: t.guardian.ID, State: e.State,
			Granted: len(granted) + len(added), Denied: len(denied) + len(refused)}
		if out.Lost, err = s.revokeLost(ctx, q, t.pupil, platforms, before); err != nil {
			return err
		}
		out.Session, err = q.CreateSession(ctx, s.sessions.New(school.Session{SubjectID: t.guardian.ID, SchoolID: t.guardian.SchoolID}))
		return err
	})
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// guardianConsent returns the guardian's current decision about a
// platform (zero when there is none).
func guardianConsent(consents []school.Consent, guardianID, platformID string) school.Consent {
	for _, c := range consents {
		if c.GuardianID == guardianID && c.PlatformID == platformID {
			return c
		}
	}
	return school.Consent{}
}

// activePlatforms returns the platforms a school has activated.
func activePlatforms(ctx context.Context, q school.Queries, schoolID string) ([]school.Platform, error) {
	acts, err := q.ListPlatformActivations(ctx, schoolID)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, a := range acts {
		active[a.PlatformID] = true
	}
	all, err := q.ListPlatforms(ctx)
	if err != nil {
		return nil, err
	}
	var out []school.Platform
	for _, pf := range all {
		if active[pf.ID] {
			out = append(out, pf)
		}
	}
	return out, nil
}

// askFor returns the platforms a consent link asks a guardian about, with
// the pupil's current decisions: the platforms the pupil's school has
// activated, except those the guardian's standing grant already decides
// in full. For a grant that does not decide attributes the platform
// gained since, only those additions are asked (Addition set), and while
// any addition waits the link asks about nothing else. A denial
// or withdrawal is asked again with its current decision shown: it stands
// until the guardian changes it.
func askFor(ctx context.Context, q school.Queries, schoolID, pupilID, guardianID string) ([]PlatformView, []school.Consent, error) {
	platforms, err := activePlatforms(ctx, q, schoolID)
	if err != nil {
		return nil, nil, err
	}
	consents, err := q.ListConsents(ctx, pupilID)
	if err != nil {
		return nil, nil, err
	}
	var out, additions []PlatformView
	for _, pf := range platforms {
		mine := guardianConsent(consents, guardianID, pf.ID)
		if mine.Granted() {
			if pend := school.Pending(pf, consents, guardianID); len(pend) > 0 {
				additions = append(additions, PlatformView{ID: pf.ID, Name: pf.Name, Attributes: pend, Addition: true,
					Decision: mine.Decision, DecidedAt: mine.DecidedAt, Kept: keptGrants(pf, mine)})
			}
			continue
		}
		out = append(out, PlatformView{ID: pf.ID, Name: pf.Name, Attributes: pf.Attributes, Decision: mine.Decision, DecidedAt: mine.DecidedAt})
	}
	if len(additions) > 0 {
		// A request about additions shows just what changed.
		return additions, consents, nil
	}
	return out, consents, nil
}

// keptGrants returns the platform's attributes that the grant covers.
func keptGrants(pf school.Platform, c school.Consent) []school.AttributeGrant {
	var out []school.AttributeGrant
	for _, a := range pf.Attributes {
		if c.Covers(a.Name) {
			out = append(out, a)
		}
	}
	return out
}

// revokeLost finds the platforms that were covered before and are not
// now, and ends the pupil's access to each through the access service
// inside q's transaction: sessions and tokens are revoked and a logout
// notice is queued for every platform session, committed with the
// decision.
func (s *Service) revokeLost(ctx context.Context, q school.Queries, p school.Pupil, platforms []school.Platform, before map[string]bool) ([]string, error) {
	after, err := covered(ctx, q, p.ID, platforms)
	if err != nil {
		return nil, err
	}
	var lost []string
	for _, pf := range platforms {
		if before[pf.ID] && !after[pf.ID] {
			lost = append(lost, pf.ID)
		}
	}
	if err := s.endAccess(ctx, q, p.ID, lost); err != nil || len(lost) == 0 {
		return lost, err
	}
	return lost, s.endIfNoConsentLeft(ctx, q, p.ID, false)
}

// endIfNoConsentLeft ends, inside q's transaction, the pupil's ElevID
// sessions and every platform session when every consent was withdrawn
// (all) or no consent is left that allows enrolment: the pupil has
// nothing to be signed in for.
func (s *Service) endIfNoConsentLeft(ctx context.Context, q school.Queries, pupilID string, all bool) error {
	if !all {
		allowed, err := q.EnrolmentAllowed(ctx, pupilID)
		if err != nil || allowed {
			return err
		}
	}
	_, err := s.opt.Access.End(ctx, q, access.Pupil(pupilID), "consent withdrawn")
	return err
}

// endAccess ends the pupil's access to each of platforms, inside q's
// transaction.
func (s *Service) endAccess(ctx context.Context, q school.Queries, pupilID string, platforms []string) error {
	for _, pf := range platforms {
		if _, err := s.opt.Access.End(ctx, q, access.PupilPlatform(pupilID, pf), "consent withdrawn"); err != nil {
			return err
		}
	}
	return nil
}

func jsonList(ids []string) string {
	if len(ids) == 0 {
		return "[]"
	}
	return `["` + strings.Join(ids, `","`) + `"]`
}
