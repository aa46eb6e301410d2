package school

import (
	"context"
	"time"
)

// StaffCredential is a passkey registered by a staff member for the
// console. It is kept apart from the pupils' credentials, under a staff
// user handle of its own.
type StaffCredential struct {
	ID                []byte // the WebAuthn credential id
	StaffID           string
	PublicKey         []byte // COSE-encoded public key
	AttestationFormat string
	AAGUID            []byte
	SignCount         uint32
	BackupEligible    bool
	BackupState       bool
	// CloneWarning is set when an authenticator reported a signature
	// counter that did not increase.
	CloneWarning bool
	Transports   []string
	Label        string
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero until the first sign-in
}

// Credential returns c as a Credential (without a pupil or school), for
// code that handles passkeys of either kind, such as the WebAuthn
// conversion in package passkey.
func (c StaffCredential) Credential() Credential {
	return Credential{ID: c.ID, PublicKey: c.PublicKey, AttestationFormat: c.AttestationFormat, AAGUID: c.AAGUID,
		SignCount: c.SignCount, BackupEligible: c.BackupEligible, BackupState: c.BackupState, CloneWarning: c.CloneWarning,
		Transports: c.Transports, Label: c.Label, CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt}
}

// StaffPasskeyStore keeps staff members' passkeys and their WebAuthn user
// handles, separate from the pupils' (PasskeyStore).
type StaffPasskeyStore interface {
	// StaffHandle returns the staff member's WebAuthn user handle: 64
	// random bytes made on first use, never equal to a pupil's handle.
	// ErrNotFound when the staff member does not exist.
	StaffHandle(ctx context.Context, staffID string) ([]byte, error)
	// StaffByHandle returns the id of the staff member with that user
	// handle; ErrNotFound for any other handle (a pupil's included).
	StaffByHandle(ctx context.Context, handle []byte) (string, error)
	// AddStaffCredential stores c with CreatedAt set; ErrConflict when the
	// credential id is registered already, ErrInvalid when the staff
	// member is unknown.
	AddStaffCredential(ctx context.Context, c StaffCredential) (StaffCredential, error)
	// GetStaffCredential returns a staff credential by id.
	GetStaffCredential(ctx context.Context, id []byte) (StaffCredential, error)
	// ListStaffCredentials returns a staff member's credentials, oldest
	// first.
	ListStaffCredentials(ctx context.Context, staffID string) ([]StaffCredential, error)
	// UpdateStaffCredential runs fn on the stored credential inside a
	// transaction and stores its label, counter, flags and last use.
	UpdateStaffCredential(ctx context.Context, id []byte, fn func(StaffCredential) (StaffCredential, error)) (StaffCredential, error)
	// DeleteStaffCredential removes the staff member's credential id;
	// ErrNotFound when the staff member has no such credential.
	DeleteStaffCredential(ctx context.Context, staffID string, id []byte) error
}

// Ceremony kinds of the staff console's passkeys: distinct from the
// pupils', so a ceremony of one can never finish at the other.
const (
	CeremonyStaffRegistration CeremonyKind = "staff_registration"
	CeremonyStaffLogin        CeremonyKind = "staff_login"
	CeremonyStaffReauth       CeremonyKind = "staff_reauth"
)
