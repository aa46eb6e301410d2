package school

import (
	"context"
	"time"
)

// AccessEntry records that a staff member (or an operator) read or changed
// a pupil's data, for the pupil's and guardians' view of who used it.
// Listing pages that show many pupils record one entry per view, with
// ClassID set and PupilID empty, rather than one per pupil.
type AccessEntry struct {
	ID        string
	SchoolID  string
	PupilID   string // empty for a list view
	ClassID   string // the class a list view showed, or the class acted in
	StaffID   string
	StaffName string // snapshot: staff act in their official role
	Role      Role
	Action    string // e.g. "pupil.view", "class.view", "passkey.reset", "export"
	Purpose   string // where the action asks for one, e.g. "checked in person"
	Time      time.Time
}

// AccessStore keeps the access log.
type AccessStore interface {
	// RecordAccess stores e with a new id (and the current time if unset).
	RecordAccess(ctx context.Context, e AccessEntry) error
	// AccessForPupil returns, newest first, the entries about the pupil:
	// those naming it, and list views of classes it belongs to now.
	AccessForPupil(ctx context.Context, pupilID string) ([]AccessEntry, error)
	// AccessForSchool returns a school's newest entries.
	AccessForSchool(ctx context.Context, schoolID string, limit int) ([]AccessEntry, error)
}
