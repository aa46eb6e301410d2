package school

import (
	"context"
	"crypto/sha256"
	"time"
)

// EnrolmentState is where a pupil's enrolment flow stands. The legal
// transitions between states are package enrolment's; the store only
// keeps the state.
type EnrolmentState string

// Enrolment states. Enrolment codes may be issued and releases happen only
// in consented, code_issued and enrolled.
const (
	EnrolmentRequested       EnrolmentState = "requested"
	EnrolmentAwaitingConsent EnrolmentState = "awaiting_consent"
	EnrolmentConsented       EnrolmentState = "consented"
	EnrolmentCodeIssued      EnrolmentState = "code_issued"
	EnrolmentEnrolled        EnrolmentState = "enrolled"
	EnrolmentDenied          EnrolmentState = "denied"
	EnrolmentExpired         EnrolmentState = "expired"
	EnrolmentWithdrawn       EnrolmentState = "withdrawn"
)

// Allows reports whether a pupil in state s may receive enrolment codes
// and (subject to per-platform consent) be released to platforms.
func (s EnrolmentState) Allows() bool {
	return s == EnrolmentConsented || s == EnrolmentCodeIssued || s == EnrolmentEnrolled
}

// Final reports whether s ends the flow; only a new start leaves it.
func (s EnrolmentState) Final() bool {
	return s == EnrolmentDenied || s == EnrolmentExpired || s == EnrolmentWithdrawn
}

// ConsentRule says whose consent an enrolment needs, fixed when the flow
// starts from the instance's age policy.
type ConsentRule string

// Consent rules.
const (
	// ConsentNone: the pupil is old enough; no guardian consent is needed
	// and every platform is covered.
	ConsentNone ConsentRule = "none"
	// ConsentAny: one guardian on record granting a platform suffices.
	ConsentAny ConsentRule = "any"
	// ConsentAll: every guardian on record must grant a platform.
	ConsentAll ConsentRule = "all"
)

// Enrolment is a pupil's enrolment flow: one per pupil, restarted in place.
type Enrolment struct {
	PupilID   string
	SchoolID  string
	State     EnrolmentState
	Rule      ConsentRule
	Age       int  // age in years when the flow started
	Flagged   bool // outside the policy's age range, allowed by policy
	StartedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	// ExpiresAt ends a flow waiting for consent; zero once consent is in
	// place (the flow then lasts until withdrawn).
	ExpiresAt time.Time
}

// Valid reports whether the flow is still going at now: not in a final
// state and not past ExpiresAt.
func (e Enrolment) Valid(now time.Time) bool {
	return !e.State.Final() && (e.ExpiresAt.IsZero() || now.Before(e.ExpiresAt))
}

// Consent decisions.
const (
	DecisionGranted   = "granted"
	DecisionDenied    = "denied"
	DecisionWithdrawn = "withdrawn"
)

// Consent is one guardian's current decision about one platform for one
// pupil. A later decision by the same guardian replaces it.
//
// A grant covers exactly Attributes: the platform's attributes the
// guardian was shown, by name, with the justification texts as shown
// (both languages). When the platform later gains an attribute, the grant
// does not cover it until the guardian approves the addition; Refused
// lists the attributes the guardian said no to (a declined addition or a
// withdrawn attribute) while the rest of the grant stands. A denial or
// withdrawal covers nothing and blocks the whole platform; its Attributes
// record what the guardian was asked about.
type Consent struct {
	ID          string
	PupilID     string
	GuardianID  string
	PlatformID  string // empty: every platform (legacy rows only)
	Decision    string // DecisionGranted, DecisionDenied or DecisionWithdrawn
	Attributes  []AttributeGrant
	Refused     []string
	DecidedAt   time.Time
	WithdrawnAt time.Time
	// VerifiedSubject is the guardian's identity at an upstream identity
	// provider (issuer + " " + subject) when the guardian was verified.
	VerifiedSubject string
}

// Granted reports whether c is a standing, unwithdrawn grant.
func (c Consent) Granted() bool { return c.Decision == DecisionGranted && c.WithdrawnAt.IsZero() }

// Covers reports whether c is a standing grant that covers attribute name.
func (c Consent) Covers(name string) bool {
	if !c.Granted() {
		return false
	}
	for _, a := range c.Attributes {
		if a.Name == name {
			return true
		}
	}
	return false
}

// Blocks reports whether c says no to attribute name: a denial or
// withdrawal of the platform, or a refusal of that attribute.
func (c Consent) Blocks(name string) bool {
	if !c.Granted() {
		return true
	}
	for _, r := range c.Refused {
		if r == name {
			return true
		}
	}
	return false
}

// Decided reports whether c records an answer about attribute name: it
// covers it, refuses it, or denies or withdraws the whole platform.
func (c Consent) Decided(name string) bool { return c.Covers(name) || c.Blocks(name) }

// ConsentCovers applies a consent rule: it reports whether the current
// decisions cover platformID for a pupil whose guardians on record are
// guardianIDs. A denial or withdrawal by any guardian on record blocks the
// platform; otherwise ConsentAny needs one grant and ConsentAll a grant
// from every guardian on record. Decisions of guardians no longer on
// record count for nothing. A covered platform may know the pupil by its
// pairwise identifier; which attributes it may learn is
// ConsentCoversAttribute's answer.
func ConsentCovers(rule ConsentRule, guardianIDs []string, consents []Consent, platformID string) bool {
	return consentCovers(rule, guardianIDs, consents, platformID, func(c Consent) (bool, bool) { return c.Granted(), !c.Granted() })
}

// ConsentCoversAttribute applies a consent rule to one attribute of a
// platform, with the semantics of ConsentCovers per attribute: the
// platform must be covered; then with ConsentAny some guardian on record
// must have granted the attribute and none on record refused it, and with
// ConsentAll every guardian on record must have granted it. ConsentNone
// covers every attribute.
func ConsentCoversAttribute(rule ConsentRule, guardianIDs []string, consents []Consent, platformID, name string) bool {
	if !ConsentCovers(rule, guardianIDs, consents, platformID) {
		return false
	}
	return consentCovers(rule, guardianIDs, consents, platformID, func(c Consent) (bool, bool) {
		if c.PlatformID == "" {
			// A legacy row for every platform names no attributes: its
			// grant covers the platform as such.
			return c.Granted(), !c.Granted()
		}
		return c.Covers(name), c.Blocks(name)
	})
}

// consentCovers is the rule, given per decision whether it grants and
// whether it blocks what is asked about.
func consentCovers(rule ConsentRule, guardianIDs []string, consents []Consent, platformID string, decide func(Consent) (grants, blocks bool)) bool {
	if rule == ConsentNone {
		return true
	}
	onRecord := map[string]bool{}
	for _, g := range guardianIDs {
		onRecord[g] = true
	}
	granted := map[string]bool{}
	for _, c := range consents {
		if !onRecord[c.GuardianID] || (c.PlatformID != "" && c.PlatformID != platformID) {
			continue
		}
		grants, blocks := decide(c)
		if blocks {
			return false
		}
		if grants {
			granted[c.GuardianID] = true
		}
	}
	switch rule {
	case ConsentAny:
		return len(granted) > 0
	case ConsentAll:
		return len(guardianIDs) > 0 && len(granted) == len(onRecord)
	}
	return false
}

// ConsentState is what the release rules need to know about one pupil and
// one platform, read by the store in one query.
type ConsentState struct {
	PupilID     string
	SchoolID    string
	PupilStatus PupilStatus
	// Enrolment is the state of the pupil's enrolment flow; empty when no
	// flow was started.
	Enrolment EnrolmentState
	Rule      ConsentRule
	// Activated reports whether the pupil's school has activated the
	// platform.
	Activated bool
	// Attributes are the platform's registered attributes as stored now
	// (read in the same query, so a cached registration never releases
	// an attribute removed since); PlatformFound is false for an unknown
	// platform.
	Attributes    []AttributeGrant
	PlatformFound bool
	Guardians     []string  // guardians on record
	Consents      []Consent // decisions of guardians on record about the platform asked about
}

// EnrolmentAllows reports whether the pupil is active and the flow allows
// releases at all.
func (s ConsentState) EnrolmentAllows() bool {
	return s.PupilStatus == PupilActive && s.Enrolment.Allows()
}

// CoversPlatform reports whether the platform may know the pupil at all:
// enrolment allows it, the school activated the platform and the consent
// rule covers it.
func (s ConsentState) CoversPlatform(platformID string) bool {
	return s.EnrolmentAllows() && s.Activated && ConsentCovers(s.Rule, s.Guardians, s.Consents, platformID)
}

// Covered returns the names of pf's allowed attributes that a current
// consent covers, in registration order: pf.Attributes ∩ consent ∩
// activation. The registration read with the state (Attributes) is used
// when there is one, whatever pf holds. Empty when the platform is not
// covered at all.
func (s ConsentState) Covered(pf Platform) []string {
	if !s.CoversPlatform(pf.ID) {
		return nil
	}
	if s.PlatformFound {
		pf.Attributes = s.Attributes
	}
	var out []string
	for _, a := range pf.Attributes {
		if ConsentCoversAttribute(s.Rule, s.Guardians, s.Consents, pf.ID, a.Name) {
			out = append(out, a.Name)
		}
	}
	return out
}

// Pending returns pf's allowed attributes that the guardian's current
// grant neither covers nor refuses: additions since the guardian decided
// that wait for the guardian's answer. Empty unless the guardian has a
// standing grant for pf.
func Pending(pf Platform, consents []Consent, guardianID string) []AttributeGrant {
	for _, c := range consents {
		if c.GuardianID != guardianID || c.PlatformID != pf.ID {
			continue
		}
		if !c.Granted() {
			return nil
		}
		var out []AttributeGrant
		for _, a := range pf.Attributes {
			if !c.Decided(a.Name) {
				out = append(out, a)
			}
		}
		return out
	}
	return nil
}

// PlatformActivation records that a school uses a platform: only pupils of
// schools that activated a platform are asked about it or released to it.
type PlatformActivation struct {
	SchoolID    string
	PlatformID  string
	ActivatedBy string // staff id, "migration" or "demo"
	ActivatedAt time.Time
}

// RetryDelay is how long a queue (the mail outbox, the back-channel
// logout queue) waits before the next attempt after attempts failed ones:
// 30 s, doubling, at most an hour.
func RetryDelay(attempts int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// LinkKind says what a guardian's magic link opens.
type LinkKind string

// Link kinds.
const (
	LinkConsent  LinkKind = "consent"  // the consent page for one pupil
	LinkGuardian LinkKind = "guardian" // the guardian's own page
)

// GuardianLink is a single-use, expiring magic link sent to a guardian.
// Only the SHA-256 of the token is stored.
type GuardianLink struct {
	Hash       []byte
	Kind       LinkKind
	GuardianID string
	PupilID    string // consent links only
	SchoolID   string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time
}

// LinkHash returns the stored form of a magic-link token.
func LinkHash(token string) []byte {
	h := sha256.Sum256([]byte("elevid-guardian-link:" + token))
	return h[:]
}

// Mail statuses in the outbox.
const (
	MailPending = "pending" // waiting for its (next) attempt
	MailSent    = "sent"
	MailFailed  = "failed" // gave up after the last attempt; kept and visible
)

// Mail is one message in the transactional outbox.
type Mail struct {
	ID        string
	SchoolID  string
	Kind      string // "consent_request", "guardian_link", "passkey_reset" …
	To        string
	Subject   string
	Text      string // plain-text body
	HTML      string // HTML body
	Status    string
	Attempts  int
	LastError string
	CreatedAt time.Time
	NextAt    time.Time // earliest next attempt
	SentAt    time.Time
}

// MailFilter selects outbox messages.
type MailFilter struct {
	SchoolID string // optional
	Status   string // optional
	Limit    int    // 0 means 100
	// Bodies asks for the text and HTML bodies too (the demo's outbox
	// view); without it they are left empty.
	Bodies bool
}

// ConsentFlowStore keeps enrolment flows, consent decisions, guardians'
// magic links and the mail outbox.
type ConsentFlowStore interface {
	// PutEnrolment stores e as the pupil's flow, replacing an earlier one;
	// CreatedAt and UpdatedAt are set. ErrInvalid for an unknown pupil.
	PutEnrolment(ctx context.Context, e Enrolment) (Enrolment, error)
	// GetEnrolment returns the pupil's flow; ErrNotFound when none started.
	GetEnrolment(ctx context.Context, pupilID string) (Enrolment, error)
	// UpdateEnrolment runs fn on the locked flow and stores its State and
	// ExpiresAt (UpdatedAt set); an error from fn aborts.
	UpdateEnrolment(ctx context.Context, pupilID string, fn func(Enrolment) (Enrolment, error)) (Enrolment, error)
	// ListEnrolments returns the flows of a school's pupils.
	ListEnrolments(ctx context.Context, schoolID string) ([]Enrolment, error)

	// SetConsent records a guardian's decision for a platform, replacing
	// the guardian's earlier decision for it. ID and DecidedAt are set. A
	// grant with no Attributes (nil) is a grant of the platform's
	// attributes as registered at that moment, which are recorded.
	SetConsent(ctx context.Context, c Consent) (Consent, error)
	// ListConsents returns the pupil's current decisions, oldest first.
	ListConsents(ctx context.Context, pupilID string) ([]Consent, error)
	// ClearConsents deletes the pupil's decisions and returns how many
	// went. Restarting enrolment does not call it: a decision stands until
	// the guardian changes it.
	ClearConsents(ctx context.Context, pupilID string) (int, error)
	// ConsentState reads, in one query, the pupil's status, enrolment
	// flow, guardians on record with their decisions about platformID,
	// and whether the pupil's school activated platformID. ErrNotFound for an unknown
	// pupil.
	ConsentState(ctx context.Context, pupilID, platformID string) (ConsentState, error)
	// ReleaseInputs reads, in one query, what a release to platformID is
	// computed from: the pupil's profile (GetPupilProfile) and the consent
	// state (ConsentState). ErrNotFound for an unknown pupil.
	ReleaseInputs(ctx context.Context, pupilID, platformID string) (PupilProfile, ConsentState, error)

	// SetPlatformActivation activates (active) or deactivates a platform
	// for a school and reports whether anything changed. ErrNotFound for an
	// unknown school or platform.
	SetPlatformActivation(ctx context.Context, a PlatformActivation, active bool) (bool, error)
	// ListPlatformActivations returns a school's activations, or every
	// school's for schoolID "", by platform id.
	ListPlatformActivations(ctx context.Context, schoolID string) ([]PlatformActivation, error)

	// PupilsOfGuardian returns the ids of the pupils linked to a guardian.
	PupilsOfGuardian(ctx context.Context, guardianID string) ([]string, error)
	// GuardiansByEmail returns every guardian record with that address,
	// compared case-insensitively.
	GuardiansByEmail(ctx context.Context, email string) ([]Guardian, error)
	// CreateGuardianLink stores l (Hash, Kind, GuardianID, SchoolID,
	// ExpiresAt required) with CreatedAt set; ErrConflict for a used hash.
	CreateGuardianLink(ctx context.Context, l GuardianLink) (GuardianLink, error)
	// GuardianLinkByHash returns a link: ErrNotFound when unknown, ErrUsed
	// when used, ErrExpired when past its expiry.
	GuardianLinkByHash(ctx context.Context, hash []byte) (GuardianLink, error)
	// UseGuardianLink marks the link used, atomically: of concurrent calls
	// exactly one succeeds, the others get ErrUsed. Errors as
	// GuardianLinkByHash.
	UseGuardianLink(ctx context.Context, hash []byte) (GuardianLink, error)

	// EnqueueMail adds m to the outbox as pending (ID, CreatedAt, NextAt
	// set). Call it in the transaction that decides to send the mail.
	EnqueueMail(ctx context.Context, m Mail) (Mail, error)
	// ClaimMail leases up to limit pending messages that are due to owner
	// until now+lease, so that no other node sends them meanwhile, and
	// counts an attempt on each.
	ClaimMail(ctx context.Context, owner string, lease time.Duration, limit int) ([]Mail, error)
	// MailSent marks a message owner holds sent and drops its bodies (they
	// may hold magic links). ErrLocked when owner's lease was lost.
	MailSent(ctx context.Context, id, owner string) error
	// MailFailed records a failed attempt of a message owner holds: pending
	// again at retryAt, or failed for good when retryAt is zero.
	MailFailed(ctx context.Context, id, owner, reason string, retryAt time.Time) error
	// RetryMail makes a failed message pending again, due now.
	RetryMail(ctx context.Context, id string) error
	// ListMail lists outbox messages, newest first; bodies only when
	// f.Bodies (a sent message's bodies are gone).
	ListMail(ctx context.Context, f MailFilter) ([]Mail, error)
	// GetMail returns one outbox message with its bodies as stored (sealed
	// by package guardian while pending, empty once sent); ErrNotFound when
	// unknown. For the demo mail page (guardian.OpenMail opens the bodies).
	GetMail(ctx context.Context, id string) (Mail, error)
}
