package school

import (
	"context"
	"time"
)

// OIDCSigningKey is one of the OpenID provider's signing keys. Keys of one
// algorithm form a sequence of generations: the newest generation whose
// NotBefore has passed signs, older ones stay published for an overlap.
// The private key is sealed by package idp/oidc (context "signing-key:"+ID).
type OIDCSigningKey struct {
	ID         string // the JWS "kid"
	Algorithm  string // "ES256" or "RS256"
	Generation int64  // 1 for the first key of an algorithm, then +1 per rotation
	SealedKey  []byte // PKCS #8, sealed
	PublicKey  []byte // PKIX DER
	CreatedAt  time.Time
	NotBefore  time.Time // the key signs from then on (published before)
}

// OIDC token kinds.
const (
	TokenAccess  = "access"
	TokenRefresh = "refresh"
)

// OIDCToken is an issued access or refresh token. Access tokens are named
// by ID (the token the platform holds is sealed and carries the ID);
// refresh tokens are found by the SHA-256 Hash of the token.
type OIDCToken struct {
	ID            string
	Kind          string // TokenAccess or TokenRefresh
	Hash          []byte // refresh tokens only
	PlatformID    string
	PupilID       string
	SessionRef    string // the pupil's login session, when known
	AuthRequestID string // the authorization request whose code produced it
	// CodeID is set on the access token issued from an authorization code
	// (the request's id): a code yields one such token (CreateOIDCToken).
	CodeID    string
	FamilyID  string // refresh rotation family (the first token's id)
	Subject   string // the sub the platform knows the pupil by
	Scopes    []string
	AuthTime  time.Time
	AMR       []string
	ACR       string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // refresh tokens: when rotated
	RevokedAt time.Time
}

// ActiveAt reports whether the token may be used at now.
func (t OIDCToken) ActiveAt(now time.Time) bool {
	return t.RevokedAt.IsZero() && t.UsedAt.IsZero() && now.Before(t.ExpiresAt)
}

// OIDCTokenFilter selects tokens; the set fields are ANDed and at least
// one must be set.
type OIDCTokenFilter struct {
	ID         string
	PupilID    string
	PlatformID string
	SessionRef string // with PupilID only
	FamilyID   string // with PupilID only
	Subject    string // with PlatformID only
	// SchoolID selects the tokens of every pupil of one school.
	SchoolID string
	// Inactive includes revoked, rotated and expired tokens in
	// ListOIDCTokens (not yet pruned).
	Inactive bool
}

// Release is one entry of the release log: what a platform received about
// a pupil, and when. Pupils and guardians read it.
type Release struct {
	ID           string
	PupilID      string
	PlatformID   string
	PlatformName string // kept so the entry stays readable after the platform is gone
	Protocol     Protocol
	Via          string   // "id_token", "userinfo", "saml_assertion" …
	Claims       []string // names of the claims or attributes released
	Time         time.Time
}

// OIDCStore keeps the OpenID provider's state: signing keys, tokens and
// the release log. Authorization requests and codes are sealed values
// package idp/oidc hands out, not rows; a code's single use is the uniqueness
// of OIDCToken.CodeID.
type OIDCStore interface {
	// AddOIDCSigningKey stores k with CreatedAt set; ErrConflict when its
	// id, or its algorithm and generation, exist already (another node
	// rotated first).
	AddOIDCSigningKey(ctx context.Context, k OIDCSigningKey) (OIDCSigningKey, error)
	// ListOIDCSigningKeys returns every stored key, by algorithm and then
	// newest generation first.
	ListOIDCSigningKeys(ctx context.Context) ([]OIDCSigningKey, error)
	// DeleteOIDCSigningKey removes a key; ErrNotFound when unknown.
	DeleteOIDCSigningKey(ctx context.Context, id string) error

	// CreateOIDCToken stores t with CreatedAt set and a new ID unless one
	// is given; ErrConflict for a used id or hash. A token with a CodeID
	// is the one token of that authorization code: ErrUsed when the code
	// produced a token before (a second redemption), atomically.
	CreateOIDCToken(ctx context.Context, t OIDCToken) (OIDCToken, error)
	// GetOIDCToken returns a token by id, revoked or expired ones included.
	GetOIDCToken(ctx context.Context, id string) (OIDCToken, error)
	// TokenReleaseInputs returns a token by id (as GetOIDCToken) and, read
	// in the same statement, ReleaseInputs of its pupil for its platform:
	// the userinfo endpoint's one read. ErrNotFound when the token or its
	// pupil is unknown.
	TokenReleaseInputs(ctx context.Context, tokenID string) (OIDCToken, PupilProfile, ConsentState, error)
	// OIDCTokenByHash returns a refresh token by the hash of its value.
	OIDCTokenByHash(ctx context.Context, hash []byte) (OIDCToken, error)
	// UseOIDCRefreshToken marks a refresh token rotated, atomically: of
	// concurrent calls exactly one succeeds, the others get ErrUsed (also
	// for a revoked token); ErrExpired when past its expiry.
	UseOIDCRefreshToken(ctx context.Context, id string) error
	// RevokeOIDCTokens revokes the unrevoked tokens f selects and returns
	// how many; ErrInvalid for an empty filter.
	RevokeOIDCTokens(ctx context.Context, f OIDCTokenFilter) (int, error)
	// ListOIDCTokens returns the active (unrevoked, unused, unexpired)
	// tokens f selects, or all of them with f.Inactive, oldest first;
	// ErrInvalid for an empty filter.
	ListOIDCTokens(ctx context.Context, f OIDCTokenFilter) ([]OIDCToken, error)

	// AddRelease appends r (PupilID, PlatformID required) to the release
	// log with a new ID; Time defaults to now.
	AddRelease(ctx context.Context, r Release) (Release, error)
	// ListReleases returns a pupil's release log, newest first.
	ListReleases(ctx context.Context, pupilID string) ([]Release, error)

	// QueueLogout stores a back-channel logout to deliver later (PlatformID,
	// Subject and ExpiresAt required; Protocol defaults to ProtocolOIDC)
	// with a new ID and CreatedAt; NextAt defaults to now. It joins an
	// enclosing transaction, so a notice is queued with the change that
	// ends the access or not at all.
	QueueLogout(ctx context.Context, n LogoutNotice) (LogoutNotice, error)
	// ClaimLogouts leases to owner, until now+lease, up to limit notices
	// of one protocol that are due, unexpired and not leased by another
	// owner, and counts the attempt. Concurrent claimers never get the
	// same notice.
	ClaimLogouts(ctx context.Context, owner string, protocol Protocol, lease time.Duration, limit int) ([]LogoutNotice, error)
	// LogoutDelivered removes a notice owner holds; ErrLocked when owner
	// does not hold its lease (any more).
	LogoutDelivered(ctx context.Context, id, owner string) error
	// LogoutFailed records a failed attempt of a notice owner holds and
	// makes it due again at retryAt; ErrLocked when owner does not hold
	// its lease.
	LogoutFailed(ctx context.Context, id, owner, reason string, retryAt time.Time) error
	// ListLogouts returns the undelivered notices, oldest first.
	ListLogouts(ctx context.Context) ([]LogoutNotice, error)

	// PruneOIDC deletes tokens and logout notices
	// that expired before cutoff and returns how many rows went.
	PruneOIDC(ctx context.Context, cutoff time.Time) (int64, error)
}

// LogoutNotice is a back-channel logout a platform has not taken yet. The
// message is signed afresh at each attempt. Over OIDC it is a logout
// token for Subject (the sub the platform knows) and the platform's
// session id: Sid when set, else derived from SessionRef by package idp/oidc.
// Over SAML it is a LogoutRequest for the NameID Subject (of
// NameIDFormat) and SessionIndex, sent over the SOAP binding.
type LogoutNotice struct {
	ID           string
	PlatformID   string
	Protocol     Protocol // ProtocolOIDC or ProtocolSAML
	Subject      string
	Sid          string
	SessionRef   string // the pupil's login session, when known
	NameIDFormat string // SAML only
	SessionIndex string // SAML only
	CreatedAt    time.Time
	NextAt       time.Time // due from then on
	ExpiresAt    time.Time // given up then
	Attempts     int
	LastError    string
}
