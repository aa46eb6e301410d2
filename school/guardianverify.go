package school

import (
	"context"
	"time"
)

// GuardianVerification is one attempt to verify a guardian with an
// upstream OpenID provider (e.g. a national eID broker), started from a
// consent link. It holds the state the callback needs (nonce, PKCE
// verifier), is single-use and expires; once the callback has checked the
// ID token it carries the verified identity until ExpiresAt.
type GuardianVerification struct {
	StateHash []byte // SHA-256 of the OAuth state parameter
	LinkHash  []byte // the consent link it belongs to (GuardianLink.Hash)
	Nonce     string
	Verifier  string // PKCE code verifier
	Subject   string // issuer + " " + sub once verified, else empty
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // when the callback took the state
}

// GuardianVerificationStore keeps upstream verifications of guardians.
type GuardianVerificationStore interface {
	// CreateGuardianVerification stores v (StateHash, LinkHash, Nonce,
	// Verifier and ExpiresAt required; ErrInvalid otherwise, ErrConflict
	// for a known state). It also deletes long-expired verifications.
	CreateGuardianVerification(ctx context.Context, v GuardianVerification) (GuardianVerification, error)
	// TakeGuardianVerification marks the verification with that state
	// used, atomically: of concurrent calls exactly one succeeds, the
	// others get ErrUsed; ErrNotFound for an unknown state, ErrExpired
	// after ExpiresAt.
	TakeGuardianVerification(ctx context.Context, stateHash []byte) (GuardianVerification, error)
	// SetGuardianVerified records the verified subject on a taken
	// verification and extends it until until. ErrNotFound unless the
	// verification is taken, unverified and unexpired.
	SetGuardianVerified(ctx context.Context, stateHash []byte, subject string, until time.Time) error
	// GuardianVerified returns the subject of the latest unexpired,
	// verified verification of a consent link; ErrNotFound when there is
	// none.
	GuardianVerified(ctx context.Context, linkHash []byte) (string, error)
}
