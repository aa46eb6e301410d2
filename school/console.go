package school

import (
	"context"
	"time"
)

// StaffAuth is the sign-in state of one staff member beyond the Staff
// record: TOTP replay protection, pending TOTP enrolment, recovery codes,
// lockout and the last re-authentication.
type StaffAuth struct {
	StaffID string
	// TOTPLastStep is the last TOTP time step (Unix time / period) that was
	// accepted; a code of this step or an earlier one is refused.
	TOTPLastStep int64
	// PendingTOTP is a sealed TOTP secret awaiting confirmation with a
	// first code; empty when no enrolment is in progress.
	PendingTOTP []byte
	// RecoveryHashes are the SHA-256 hashes of the unused recovery codes.
	RecoveryHashes [][]byte
	// Failures counts failed sign-ins since the last success; LockedUntil
	// is the end of the current lockout (zero when none).
	Failures    int
	LockedUntil time.Time
	// ReauthSession is the Ref of the session that last re-authenticated,
	// at ReauthAt; sensitive actions need a recent one.
	ReauthSession string
	ReauthAt      time.Time
}

// EnrolmentSheet is a printable class sheet of freshly issued enrolment
// codes, kept sealed for a short while so the print view can be reloaded.
// Data is sealed by the console under context "sheet:"+ID.
type EnrolmentSheet struct {
	ID        string
	SchoolID  string
	ClassID   string // empty for a single-pupil sheet (passkey reset)
	CreatedBy string // staff id
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ConsoleStore keeps the staff console's sign-in state and sheets.
type ConsoleStore interface {
	// GetStaffAuth returns the staff member's sign-in state; a member
	// without one gets the zero state (StaffID set), not ErrNotFound.
	GetStaffAuth(ctx context.Context, staffID string) (StaffAuth, error)
	// UpdateStaffAuth runs fn on the current state inside a transaction
	// (the row locked) and stores what it returns; an error from fn aborts
	// and is returned. ErrNotFound when the staff member does not exist.
	UpdateStaffAuth(ctx context.Context, staffID string, fn func(StaffAuth) (StaffAuth, error)) (StaffAuth, error)
	// SaveSheet stores sh (ID, SchoolID, CreatedBy, Data and ExpiresAt
	// required) with CreatedAt set.
	SaveSheet(ctx context.Context, sh EnrolmentSheet) (EnrolmentSheet, error)
	// GetSheet returns a sheet of the school: ErrNotFound when it does not
	// exist or belongs to another school, ErrExpired when past its expiry.
	GetSheet(ctx context.Context, schoolID, id string) (EnrolmentSheet, error)
	// PurgeSheets deletes sheets that expired before cutoff and returns
	// how many went.
	PurgeSheets(ctx context.Context, cutoff time.Time) (int64, error)
}
