package school

import (
	"context"
	"strings"
	"time"
)

// SAMLFlow is SAML state held server-side for the browser: an
// IdP-initiated logout walking through the service providers, or a
// refusal page kept until the pupil takes it back to the platform (an
// AuthnRequest waiting for the login is not stored: it travels sealed in
// the resume URL). It is single-use and expires. ID is the SHA-256 (hex) of the bearer token the
// browser carries, so the store never holds the token itself.
type SAMLFlow struct {
	ID        string
	Kind      string // "logout" or "refused"
	Data      []byte // JSON owned by package idp/saml
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until consumed
}

// SAMLKey is one of the IdP's signing keys. The private key is sealed
// (school.Sealer) by package idp/saml; the certificate is public.
type SAMLKey struct {
	ID        string
	SealedKey []byte
	CertDER   []byte
	CreatedAt time.Time
	RetiredAt time.Time // zero while the key is published
}

// SAMLSessionID is the SessionID of SAML participants for a pupil's login
// session (school.Session.Ref).
func SAMLSessionID(pupilID, sessionRef string) string { return pupilID + ":" + sessionRef }

// SAMLSessionRef returns the login session ref of a participant's
// SessionID made by SAMLSessionID for pupilID, or "" when it was not.
func SAMLSessionRef(sessionID, pupilID string) string {
	ref, ok := strings.CutPrefix(sessionID, pupilID+":")
	if !ok {
		return ""
	}
	return ref
}

// SAMLParticipantFilter selects participants; the set fields are ANDed
// and at least one of SessionID, PupilID and SchoolID must be set.
type SAMLParticipantFilter struct {
	SessionID  string
	PupilID    string
	PlatformID string
	SchoolID   string // every pupil of one school
}

// SAMLParticipant records that an assertion was issued to a platform within
// a pupil's login session, so that single logout can reach it.
type SAMLParticipant struct {
	ID           string
	SessionID    string // the pupil's login session
	PupilID      string
	PlatformID   string
	NameID       string
	NameIDFormat string
	SessionIndex string
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// SAMLStore keeps the SAML identity provider's state: replay records of
// accepted message ids, pending flows, signing keys and session
// participants.
type SAMLStore interface {
	// UseSAMLMessageID records that issuer's message id was accepted (an
	// AuthnRequest's: answered), until expiresAt. It returns ErrUsed when the pair is already recorded and not
	// yet expired; concurrent calls for one pair: exactly one succeeds.
	UseSAMLMessageID(ctx context.Context, issuer, id string, expiresAt time.Time) error
	// CreateSAMLFlow stores f (ID set by the caller); ErrConflict when the id
	// exists.
	CreateSAMLFlow(ctx context.Context, f SAMLFlow) error
	// GetSAMLFlow returns an unused, unexpired flow: ErrNotFound, ErrUsed or
	// ErrExpired otherwise.
	GetSAMLFlow(ctx context.Context, id string) (SAMLFlow, error)
	// ConsumeSAMLFlow marks the flow used and returns it, with the errors of
	// GetSAMLFlow; of concurrent calls exactly one succeeds.
	ConsumeSAMLFlow(ctx context.Context, id string) (SAMLFlow, error)

	// CreateSAMLKey stores k with a new id and CreatedAt.
	CreateSAMLKey(ctx context.Context, k SAMLKey) (SAMLKey, error)
	// ListSAMLKeys returns the unretired keys, newest first.
	ListSAMLKeys(ctx context.Context) ([]SAMLKey, error)
	// RetireSAMLKey stops publishing a key; ErrNotFound for an unknown id.
	RetireSAMLKey(ctx context.Context, id string) error

	// AddSAMLParticipant stores p with a new id and CreatedAt.
	AddSAMLParticipant(ctx context.Context, p SAMLParticipant) (SAMLParticipant, error)
	// SAMLParticipants lists the unexpired participants of a login session,
	// oldest first.
	SAMLParticipants(ctx context.Context, sessionID string) ([]SAMLParticipant, error)
	// SAMLParticipantsByNameID lists the unexpired participants of a
	// platform that were given nameID.
	SAMLParticipantsByNameID(ctx context.Context, platformID, nameID string) ([]SAMLParticipant, error)
	// DeleteSAMLParticipants forgets every participant of a login session.
	DeleteSAMLParticipants(ctx context.Context, sessionID string) error
	// TakeSAMLParticipants deletes the unexpired participants f selects
	// and returns them, oldest first (the SPs whose sessions end);
	// ErrInvalid for a filter without a session, pupil or school. It
	// joins an enclosing transaction.
	TakeSAMLParticipants(ctx context.Context, f SAMLParticipantFilter) ([]SAMLParticipant, error)

	// PruneSAML deletes expired message ids, flows and participants and
	// returns how many rows went.
	PruneSAML(ctx context.Context) (int64, error)
}
