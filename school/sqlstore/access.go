package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/elevid/elevid/school"
)

const accessCols = `id, school_id, pupil_id, class_id, staff_id, staff_name, role, action, purpose, time`

func scanAccess(r Rows) (school.AccessEntry, error) {
	var e school.AccessEntry
	var role string
	var t int64
	err := r.Scan(&e.ID, &e.SchoolID, &e.PupilID, &e.ClassID, &e.StaffID, &e.StaffName, &role, &e.Action, &e.Purpose, &t)
	e.Role, e.Time = school.Role(role), fromMicros(t)
	return e, err
}

// RecordAccess implements school.AccessStore.
func (s *Store) RecordAccess(ctx context.Context, e school.AccessEntry) error {
	if e.SchoolID == "" || e.StaffID == "" || strings.TrimSpace(e.Action) == "" {
		return fmt.Errorf("%w: an access entry needs a school, a staff member and an action", school.ErrInvalid)
	}
	if e.PupilID == "" && e.ClassID == "" {
		return fmt.Errorf("%w: an access entry names a pupil or a class", school.ErrInvalid)
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.ID = school.NewLogID(e.Time)
	return s.tx(ctx, "record access", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO access_log (`+accessCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.ID, e.SchoolID, e.PupilID, e.ClassID, e.StaffID, e.StaffName, string(e.Role), e.Action, e.Purpose, micros(e.Time))
		return err
	})
}

// AccessForPupil implements school.AccessStore.
func (s *Store) AccessForPupil(ctx context.Context, pupilID string) ([]school.AccessEntry, error) {
	out, err := collect(ctx, s.q, scanAccess, `SELECT `+accessCols+` FROM access_log
		WHERE pupil_id = $1
		   OR (pupil_id = '' AND class_id IN (SELECT class_id FROM pupil_classes WHERE pupil_id = $1))
		ORDER BY time DESC, id`, pupilID)
	return out, s.fail("access for pupil", err)
}

// AccessForSchool implements school.AccessStore.
func (s *Store) AccessForSchool(ctx context.Context, schoolID string, limit int) ([]school.AccessEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := collect(ctx, s.q, scanAccess, `SELECT `+accessCols+` FROM access_log WHERE school_id = $1 ORDER BY time DESC, id LIMIT $2`, schoolID, limit)
	return out, s.fail("access for school", err)
}
