package school

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// OwnerKind says whose passkey a credential is: a pupil's or a staff
// member's. The two kinds never mix: each has user handles of its own, and
// a credential of one kind is never found for the other.
type OwnerKind string

// Owner kinds.
const (
	OwnerPupil OwnerKind = "pupil"
	OwnerStaff OwnerKind = "staff"
)

// Owner names the holder of passkeys: a pupil or a staff member, by id.
type Owner struct {
	Kind OwnerKind
	ID   string
}

// PupilOwner is the pupil with that id as a passkey owner.
func PupilOwner(id string) Owner { return Owner{Kind: OwnerPupil, ID: id} }

// StaffOwner is the staff member with that id as a passkey owner.
func StaffOwner(id string) Owner { return Owner{Kind: OwnerStaff, ID: id} }

// Credential is a passkey (WebAuthn public-key credential) registered by a
// pupil or a staff member. It holds public key material only; nothing in
// it is a secret.
type Credential struct {
	ID                []byte // the WebAuthn credential id
	Owner             Owner
	SchoolID          string // the pupil's school; empty for a staff member's passkey
	PublicKey         []byte // COSE-encoded public key
	AttestationFormat string // "none", "packed" …
	AAGUID            []byte
	SignCount         uint32
	BackupEligible    bool
	BackupState       bool
	// CloneWarning is set when an authenticator reported a signature
	// counter that did not increase: the credential may have been copied.
	CloneWarning bool
	Transports   []string
	Label        string // chosen by the owner, e.g. "Skolens iPad"
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero until the first login
	RevokedAt    time.Time // zero while the credential may be used (staff passkeys are deleted instead)
}

// Active reports whether the credential may be used to log in.
func (c Credential) Active() bool { return c.RevokedAt.IsZero() }

// CeremonyKind says which WebAuthn ceremony a Ceremony belongs to.
type CeremonyKind string

// Ceremony kinds. The staff console's are distinct from the pupils', so
// a ceremony of one can never finish at the other.
const (
	CeremonyRegistration      CeremonyKind = "registration"
	CeremonyLogin             CeremonyKind = "login"
	CeremonyStaffRegistration CeremonyKind = "staff_registration"
	CeremonyStaffLogin        CeremonyKind = "staff_login"
	CeremonyStaffReauth       CeremonyKind = "staff_reauth"
)

// Ceremony is the server-side state of one WebAuthn ceremony (the
// library's session data, with its challenge). It is single-use: consuming
// it deletes it, whatever the outcome of the ceremony.
type Ceremony struct {
	ID        string // random, handed to the browser
	Kind      CeremonyKind
	SubjectID string // the pupil or staff member registering; empty for a discoverable login
	// Ref binds the ceremony to something else, e.g. the hash of the
	// enrolment code a registration was started with.
	Ref       []byte
	Data      []byte // the serialized webauthn.SessionData
	CreatedAt time.Time
	ExpiresAt time.Time
}

// EnrolmentCode is a single-use code a teacher gives a pupil to register a
// passkey. Only the SHA-256 hash of the normalized code is stored.
type EnrolmentCode struct {
	Hash      []byte
	PupilID   string
	SchoolID  string
	CreatedBy string // the actor id that issued it
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until a registration consumed it
	// Locator is the code's first characters (enrolment.LocatorLength),
	// stored in clear: a wrong attempt that starts like a live code counts
	// against that code and its class. Empty for codes issued before it.
	Locator string
}

// Valid reports whether the code may still be used at now.
func (c EnrolmentCode) Valid(now time.Time) bool {
	return c.UsedAt.IsZero() && now.Before(c.ExpiresAt)
}

// SessionKind says whose session it is.
type SessionKind string

// Session kinds.
const (
	SessionPupil SessionKind = "pupil"
	SessionStaff SessionKind = "staff"
	// SessionGuardian is a guardian's session after a magic link.
	SessionGuardian SessionKind = "guardian"
)

// Valid reports whether k is one of the session kinds.
func (k SessionKind) Valid() bool {
	return k == SessionPupil || k == SessionStaff || k == SessionGuardian
}

// Session is a signed-in browser. The browser's cookie holds only the
// random ID; the store keeps its SHA-256 hash (Ref), so a database leak
// yields no usable session.
type Session struct {
	// ID is the random bearer secret put in the cookie. It is only set on
	// the value CreateSession returns; stored sessions are named by Ref.
	ID string
	// Ref is the hex SHA-256 of ID: a stable, non-secret name for the
	// session, safe to show in pages and logs.
	Ref         string
	Kind        SessionKind
	SubjectID   string // pupil, staff or guardian id
	SchoolID    string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time     // absolute end, whatever the activity
	IdleTimeout time.Duration // the session ends after this long without use
	AuthTime    time.Time     // when the subject authenticated
	// AMR lists the authentication methods used (RFC 8176 values, e.g.
	// "hwk", "user", "pop"); ACR names the level reached.
	AMR          []string
	ACR          string
	UserVerified bool
	CredentialID []byte // the passkey used, if any
	UserAgent    string
	RevokedAt    time.Time
	RevokeReason string
	// Ceremony, set by a passkey login, names the login ceremony (a hash
	// of its challenge): unique among sessions, so one ceremony yields one
	// session and a replayed assertion is ErrConflict. Not read back.
	Ceremony string
}

// CeremonyMaxAge is the longest a login ceremony may live. Session rows
// are kept at least this long after their creation (even when revoked or
// expired), so that Session.Ceremony refuses a replay for the ceremony's
// whole life.
const CeremonyMaxAge = time.Hour

// ActiveAt reports whether the session may be used at now.
func (s Session) ActiveAt(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt) &&
		(s.IdleTimeout <= 0 || now.Before(s.LastSeenAt.Add(s.IdleTimeout)))
}

// SessionRef returns the Ref of a session id.
func SessionRef(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// NewSecret returns n random bytes from crypto/rand.
func NewSecret(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("school: crypto/rand failed: %v", err))
	}
	return b
}

// PasskeyStore keeps the passkeys of pupils and staff and their WebAuthn
// user handles: one set of methods, the owner given as kind and id. The
// kinds are kept apart: a handle or credential of one kind is never found
// when the other kind is asked for.
type PasskeyStore interface {
	// UserHandle returns the owner's WebAuthn user handle: 64 random
	// bytes made on first use, never derived from the name or an id, and
	// never equal to a handle of the other kind. ErrNotFound when the
	// owner does not exist.
	UserHandle(ctx context.Context, o Owner) ([]byte, error)
	// OwnerByHandle returns the id of the owner of kind with that user
	// handle; ErrNotFound for any other handle (one of the other kind
	// included).
	OwnerByHandle(ctx context.Context, kind OwnerKind, handle []byte) (string, error)
	// AddCredential stores c (c.Owner says whose; a pupil's needs the
	// pupil's SchoolID, a staff member's none) with CreatedAt set;
	// ErrConflict when the credential id is registered already,
	// ErrInvalid when the owner is unknown.
	AddCredential(ctx context.Context, c Credential) (Credential, error)
	// GetCredential returns the credential of an owner of kind by id,
	// revoked ones included; ErrNotFound when there is none of that kind.
	GetCredential(ctx context.Context, kind OwnerKind, id []byte) (Credential, error)
	// ListCredentials returns the owner's credentials, oldest first;
	// revoked ones only when includeRevoked.
	ListCredentials(ctx context.Context, o Owner, includeRevoked bool) ([]Credential, error)
	// UpdateCredential runs fn on the stored credential of kind inside a
	// transaction and stores its label, counter, flags, last use and
	// revocation (not its owner). ErrNotFound when there is none of that
	// kind.
	UpdateCredential(ctx context.Context, kind OwnerKind, id []byte, fn func(Credential) (Credential, error)) (Credential, error)
	// DeleteCredential removes the owner's credential id; ErrNotFound when
	// the owner has no such credential.
	DeleteCredential(ctx context.Context, o Owner, id []byte) error
	// PasskeyLogin returns, in one read, the pupil whose user handle is
	// handle and that pupil's credential credentialID (revoked ones
	// included), for a discoverable login. The pupil's ClassIDs and
	// GuardianIDs are not filled. ErrNotFound when the handle is unknown
	// or the pupil has no credential with that id (the caller may then
	// look up which, with OwnerByHandle and GetCredential).
	PasskeyLogin(ctx context.Context, handle, credentialID []byte) (Pupil, Credential, error)
	// PasskeyLoginConsent is PasskeyLogin that also returns the pupil's
	// consent state for platformID (as ConsentState), in the same read:
	// for a login that goes on to that platform in the same request.
	PasskeyLoginConsent(ctx context.Context, handle, credentialID []byte, platformID string) (Pupil, Credential, ConsentState, error)
	// RecordCredentialUse stores what a sign-in learnt about a credential
	// (of either kind) in one write: counter, backup state and time of
	// use; a clone warning, once set, stays set. ErrNotFound for an
	// unknown credential.
	RecordCredentialUse(ctx context.Context, id []byte, use CredentialUse) error
}

// CredentialUse is what one sign-in records on its credential.
type CredentialUse struct {
	SignCount    uint32
	CloneWarning bool // the counter did not increase
	BackupState  bool
	At           time.Time
}

// CeremonyStore keeps WebAuthn ceremony state server-side.
type CeremonyStore interface {
	// SaveCeremony stores c (ID, ExpiresAt and Data required) with
	// CreatedAt set.
	SaveCeremony(ctx context.Context, c Ceremony) error
	// ConsumeCeremony deletes the ceremony and returns it, atomically: of
	// several concurrent calls exactly one gets it. ErrNotFound when it
	// does not exist or was consumed; ErrExpired (and deleted) when past
	// its expiry.
	ConsumeCeremony(ctx context.Context, id string) (Ceremony, error)
}

// EnrolmentCodeStore keeps hashed enrolment codes.
type EnrolmentCodeStore interface {
	// CreateEnrolmentCode stores c for an active pupil whose enrolment is
	// allowed (EnrolmentAllowed); earlier unused codes of the pupil stop
	// working (they read as expired). ErrNotFound for an unknown pupil, ErrInvalid when the pupil
	// is not active or enrolment is not allowed, ErrConflict for a hash in
	// use.
	CreateEnrolmentCode(ctx context.Context, c EnrolmentCode) (EnrolmentCode, error)
	// EnrolmentCodeByHash returns the code with that hash: ErrNotFound when
	// none, ErrUsed when consumed, ErrExpired when past its expiry.
	EnrolmentCodeByHash(ctx context.Context, hash []byte) (EnrolmentCode, error)
	// ConsumeEnrolmentCode marks the code used, atomically: of concurrent
	// calls exactly one succeeds, the others get ErrUsed. Errors as
	// EnrolmentCodeByHash.
	ConsumeEnrolmentCode(ctx context.Context, hash []byte) (EnrolmentCode, error)
	// LiveEnrolmentCodes returns the unused, unexpired codes with that
	// locator (none for an empty one).
	LiveEnrolmentCodes(ctx context.Context, locator string) ([]EnrolmentCode, error)
	// PendingEnrolmentCode reports whether the pupil holds an unused,
	// unexpired code (a teacher reset or enrolment in progress).
	PendingEnrolmentCode(ctx context.Context, pupilID string) (bool, error)
}

// SessionStore keeps server-side sessions of pupils, staff and guardians
// (package session puts their ids in cookies).
type SessionStore interface {
	// CreateSession stores s under a new random ID and returns it with ID
	// and Ref set; CreatedAt and LastSeenAt are set to now.
	CreateSession(ctx context.Context, s Session) (Session, error)
	// SignIn records a passkey sign-in: the use of the credential
	// s.CredentialID (as RecordCredentialUse) and the new session s (as
	// CreateSession), both or neither. ErrNotFound when the credential is
	// gone (no session is made), ErrConflict when s.Ceremony made a
	// session before. On PostgreSQL it is one statement (outside a
	// transaction, one round trip).
	SignIn(ctx context.Context, use CredentialUse, s Session) (Session, error)
	// TouchSession returns the session with cookie id and records its use.
	// ErrNotFound when unknown or revoked, ErrExpired when past its
	// absolute or idle timeout. It writes at most once a minute per
	// session, so it is cheap on every request.
	TouchSession(ctx context.Context, id string) (Session, error)
	// TouchSessionConsent is TouchSession that also reads, in the same
	// query, the consent state (ConsentFlowStore.ConsentState) of the
	// session's subject as a pupil for platformID: the zero state, which
	// allows nothing, when the subject is no pupil (any more).
	TouchSessionConsent(ctx context.Context, id, platformID string) (Session, ConsentState, error)
	// ListSessions returns the subject's active sessions, newest first.
	ListSessions(ctx context.Context, subjectID string) ([]Session, error)
	// RevokeSession ends one session of the subject, named by Ref;
	// ErrNotFound when the subject has no such active session.
	RevokeSession(ctx context.Context, subjectID, ref, reason string) error
	// ExpiredPupilSessions returns up to limit pupil sessions that are
	// past their absolute or idle timeout at now and were never revoked:
	// sessions that ended by time without the platforms being told.
	ExpiredPupilSessions(ctx context.Context, now time.Time, limit int) ([]Session, error)
	// RevokeSessions ends every active session of the subject (logout
	// everywhere, a revoked passkey or consent, quarantine) and returns
	// how many it ended. It joins an enclosing transaction.
	RevokeSessions(ctx context.Context, subjectID, reason string) (int, error)
}

// RateStore counts events per key in fixed windows, shared by all nodes.
type RateStore interface {
	// HitRate counts one event for key and returns the number of events in
	// the current window (which starts with the first event after the
	// previous window ended).
	HitRate(ctx context.Context, key string, window time.Duration) (int, error)
	// RateCount returns the number of events for key in its current
	// window, without counting one.
	RateCount(ctx context.Context, key string, window time.Duration) (int, error)
}

// AuthnStore is everything authentication keeps: passkeys,
// ceremonies, enrolment codes, sessions and rate counters.
type AuthnStore interface {
	PasskeyStore
	CeremonyStore
	EnrolmentCodeStore
	SessionStore
	RateStore
	// PurgeAuthnState deletes ceremonies, enrolment codes, sessions and
	// rate counters that ended before cutoff, and returns how many rows
	// went. Run it now and then (e.g. hourly, cutoff a day ago). A pupil
	// session that expired without being revoked is kept for a day after
	// cutoff, so that the session expiry job can still tell its platforms
	// (see ExpiredPupilSessions).
	PurgeAuthnState(ctx context.Context, cutoff time.Time) (int64, error)
}
