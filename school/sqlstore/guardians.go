package sqlstore

import (
	"context"
	"fmt"

	"github.com/elevid/elevid/school"
)

const guardianCols = `id, school_id, external_id, name, email, created_at`

func scanGuardian(r Rows) (school.Guardian, error) { return scanGuardianRow(r) }

func scanGuardianRow(r Row) (school.Guardian, error) {
	var g school.Guardian
	var created int64
	err := r.Scan(&g.ID, &g.SchoolID, &g.ExternalID, &g.Name, &g.Email, &created)
	g.CreatedAt = fromMicros(created)
	return g, err
}

// CreateGuardian implements school.GuardianStore.
func (s *Store) CreateGuardian(ctx context.Context, g school.Guardian) (school.Guardian, error) {
	if err := g.Validate(); err != nil {
		return g, err
	}
	g.ID = school.NewID()
	g.CreatedAt = s.now()
	err := s.tx(ctx, "create guardian", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO guardians (`+guardianCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			g.ID, g.SchoolID, g.ExternalID, g.Name, g.Email, micros(g.CreatedAt))
		return err
	})
	return g, err
}

// GetGuardian implements school.GuardianStore.
func (s *Store) GetGuardian(ctx context.Context, id string) (school.Guardian, error) {
	g, err := scanGuardianRow(s.q.QueryRow(ctx, `SELECT `+guardianCols+` FROM guardians WHERE id = $1`, id))
	return g, s.fail("get guardian", one(err, "guardian"))
}

// GuardianByExternalID implements school.GuardianStore.
func (s *Store) GuardianByExternalID(ctx context.Context, schoolID, externalID string) (school.Guardian, error) {
	if externalID == "" {
		return school.Guardian{}, fmt.Errorf("guardian: %w", school.ErrNotFound)
	}
	g, err := scanGuardianRow(s.q.QueryRow(ctx, `SELECT `+guardianCols+` FROM guardians WHERE school_id = $1 AND external_id = $2`, schoolID, externalID))
	return g, s.fail("guardian by external id", one(err, "guardian"))
}

// ListGuardians implements school.GuardianStore.
func (s *Store) ListGuardians(ctx context.Context, schoolID string) ([]school.Guardian, error) {
	out, err := collect(ctx, s.q, scanGuardian, `SELECT `+guardianCols+` FROM guardians WHERE school_id = $1 ORDER BY name, id`, schoolID)
	return out, s.fail("list guardians", err)
}

// GuardiansOf implements school.GuardianStore.
func (s *Store) GuardiansOf(ctx context.Context, pupilID string) ([]school.Guardian, error) {
	out, err := collect(ctx, s.q, scanGuardian, `SELECT g.id, g.school_id, g.external_id, g.name, g.email, g.created_at
		FROM guardians g JOIN pupil_guardians l ON l.guardian_id = g.id WHERE l.pupil_id = $1 ORDER BY g.name, g.id`, pupilID)
	return out, s.fail("guardians of pupil", err)
}

// UpdateGuardian implements school.GuardianStore.
func (s *Store) UpdateGuardian(ctx context.Context, id string, fn func(school.Guardian) (school.Guardian, error)) (school.Guardian, error) {
	var out school.Guardian
	err := s.tx(ctx, "update guardian", func(t *Store) error {
		old, err := scanGuardianRow(t.q.QueryRow(ctx, `SELECT `+guardianCols+` FROM guardians WHERE id = $1`+t.b.ForUpdate(), id))
		if err != nil {
			return one(err, "guardian")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.ID, nw.SchoolID, nw.CreatedAt = old.ID, old.SchoolID, old.CreatedAt
		if err := nw.Validate(); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE guardians SET external_id = $2, name = $3, email = $4 WHERE id = $1`, nw.ID, nw.ExternalID, nw.Name, nw.Email)
		out = nw
		return err
	})
	return out, err
}

// DeleteGuardian implements school.GuardianStore.
func (s *Store) DeleteGuardian(ctx context.Context, id string) error {
	return s.tx(ctx, "delete guardian", func(t *Store) error {
		n, err := t.q.Exec(ctx, `DELETE FROM guardians WHERE id = $1`, id)
		if err == nil && n == 0 {
			return fmt.Errorf("guardian: %w", school.ErrNotFound)
		}
		if err != nil {
			return err
		}
		// The guardian's sessions go with it (sessions have no foreign
		// key: their subject may be a pupil, staff or a guardian).
		_, err = t.q.Exec(ctx, `DELETE FROM sessions WHERE kind = 'guardian' AND subject_id = $1`, id)
		return err
	})
}
