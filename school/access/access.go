package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/elevid/elevid/school"
)

// Scope says whose access ends, and where. Build it with Pupil,
// PupilPlatform, Session or SchoolPlatform.
type Scope struct {
	PupilID    string
	PlatformID string // empty: every platform
	SchoolID   string // with PlatformID: every pupil of the school
	SessionRef string // one login session of PupilID
	// Initiator is a platform that asked for the end itself (RP- or
	// SP-initiated logout): its tokens and sessions end too, but it is
	// sent no notice.
	Initiator string
}

// Pupil is one pupil at every platform: quarantine, erasure, passkey
// reset, withdrawal of every consent.
func Pupil(pupilID string) Scope { return Scope{PupilID: pupilID} }

// PupilPlatform is one pupil at one platform: withdrawal of the consent to
// that platform. The pupil's ElevID login sessions end too (the pupil
// signs in again); other platforms' tokens and sessions are out of scope
// and stay.
func PupilPlatform(pupilID, platformID string) Scope {
	return Scope{PupilID: pupilID, PlatformID: platformID}
}

// Session is one login session of a pupil (school.Session.Ref): logout,
// "sign out elsewhere", session expiry.
func Session(pupilID, sessionRef string) Scope {
	return Scope{PupilID: pupilID, SessionRef: sessionRef}
}

// SchoolPlatform is every pupil of a school at one platform: the school
// deactivated the platform.
func SchoolPlatform(schoolID, platformID string) Scope {
	return Scope{SchoolID: schoolID, PlatformID: platformID}
}

func (s Scope) valid() error {
	switch {
	case s.SchoolID != "" && (s.PupilID != "" || s.SessionRef != "" || s.PlatformID == ""):
		return fmt.Errorf("%w: a school scope names one platform and no pupil", school.ErrInvalid)
	case s.SchoolID == "" && s.PupilID == "":
		return fmt.Errorf("%w: a scope needs a pupil or a school", school.ErrInvalid)
	case s.SessionRef != "" && s.PlatformID != "":
		return fmt.Errorf("%w: a session scope covers every platform of the session", school.ErrInvalid)
	}
	return nil
}

// Ended counts what End ended.
type Ended struct {
	Sessions int // ElevID login sessions revoked
	Tokens   int // OIDC access and refresh tokens revoked
	Notices  int // logout notices queued
}

// Options configure a Service.
type Options struct {
	// NoticeTTL is how long a queued notice is retried (24 h when zero).
	NoticeTTL time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// Service ends access. It is safe for concurrent use; it keeps no state
// that matters beyond the wake-up of this node's queue workers.
type Service struct {
	opt  Options
	mu   sync.Mutex
	subs []chan struct{}
}

// New returns a Service.
func New(opt Options) *Service {
	if opt.NoticeTTL <= 0 {
		opt.NoticeTTL = 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Service{opt: opt}
}

// Subscribe returns a channel that receives a value (coalesced) after a
// transaction that queued logout notices has committed: the protocols'
// queue workers on this node wait on it, so that notices go out at once
// instead of at the next poll. Call it at construction time.
func (s *Service) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	return ch
}

func (s *Service) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// End ends access in scope within q's transaction (run it inside
// Store.InTx with the change that ends the access, e.g. the withdrawn
// consent): it revokes the pupil's ElevID login sessions (all of them for
// a pupil scope with or without a platform, the one for a session scope,
// none for a school scope), the OIDC access and refresh tokens in scope,
// and the SAML service
// providers' sessions in scope, and queues one logout notice per platform
// session that held any of them (per platform, subject and login
// session over OIDC; per NameID and SessionIndex over SAML) except at
// the Initiator. reason is recorded on the revoked sessions. After the
// commit the queue workers are woken. school.ErrInvalid for a malformed
// scope; store errors are returned as they are (the caller's
// transaction then rolls back).
func (s *Service) End(ctx context.Context, q school.Queries, sc Scope, reason string) (Ended, error) {
	var out Ended
	if err := sc.valid(); err != nil {
		return out, err
	}
	now := s.opt.Now()
	switch {
	case sc.SessionRef != "":
		err := q.RevokeSession(ctx, sc.PupilID, sc.SessionRef, reason)
		switch {
		case err == nil:
			out.Sessions = 1
		case !errors.Is(err, school.ErrNotFound):
			return out, err
		}
	case sc.PupilID != "":
		n, err := q.RevokeSessions(ctx, sc.PupilID, reason)
		if err != nil {
			return out, err
		}
		out.Sessions = n
	}

	tf := school.OIDCTokenFilter{PupilID: sc.PupilID, PlatformID: sc.PlatformID, SchoolID: sc.SchoolID, SessionRef: sc.SessionRef}
	toks, err := q.ListOIDCTokens(ctx, tf)
	if err != nil {
		return out, err
	}
	if out.Tokens, err = q.RevokeOIDCTokens(ctx, tf); err != nil {
		return out, err
	}
	pf := school.SAMLParticipantFilter{PupilID: sc.PupilID, PlatformID: sc.PlatformID, SchoolID: sc.SchoolID}
	if sc.SessionRef != "" {
		pf = school.SAMLParticipantFilter{SessionID: school.SAMLSessionID(sc.PupilID, sc.SessionRef)}
	}
	parts, err := q.TakeSAMLParticipants(ctx, pf)
	if err != nil {
		return out, err
	}

	seen := map[school.LogoutNotice]bool{}
	var notices []school.LogoutNotice
	add := func(n school.LogoutNotice) {
		if n.PlatformID == sc.Initiator || seen[n] {
			return
		}
		seen[n] = true
		notices = append(notices, n)
	}
	for _, t := range toks {
		add(school.LogoutNotice{PlatformID: t.PlatformID, Protocol: school.ProtocolOIDC, Subject: t.Subject, SessionRef: t.SessionRef})
	}
	for _, p := range parts {
		ref := school.SAMLSessionRef(p.SessionID, p.PupilID)
		add(school.LogoutNotice{PlatformID: p.PlatformID, Protocol: school.ProtocolSAML, Subject: p.NameID,
			NameIDFormat: p.NameIDFormat, SessionIndex: p.SessionIndex, SessionRef: ref})
	}
	for _, n := range notices {
		n.NextAt, n.ExpiresAt = now, now.Add(s.opt.NoticeTTL)
		if _, err := q.QueueLogout(ctx, n); err != nil {
			return out, err
		}
	}
	out.Notices = len(notices)
	if out.Notices > 0 {
		q.AfterCommit(func(context.Context) { s.wake() })
	}
	return out, nil
}

// EndIn runs End in a transaction of its own.
func (s *Service) EndIn(ctx context.Context, st school.Store, sc Scope, reason string) (Ended, error) {
	var out Ended
	err := st.InTx(ctx, func(q school.Queries) error {
		var err error
		out, err = s.End(ctx, q, sc, reason)
		return err
	})
	return out, err
}
