package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/elevid/elevid/school"
)

const classCols = `id, school_id, external_id, name, created_at`

func scanClass(r Rows) (school.Class, error) { return scanClassRow(r) }

func scanClassRow(r Row) (school.Class, error) {
	var c school.Class
	var created int64
	err := r.Scan(&c.ID, &c.SchoolID, &c.ExternalID, &c.Name, &created)
	c.CreatedAt = fromMicros(created)
	return c, err
}

func validClass(c school.Class) error {
	if c.SchoolID == "" || strings.TrimSpace(c.Name) == "" {
		return fmt.Errorf("%w: a class needs a school and a name", school.ErrInvalid)
	}
	return nil
}

// CreateClass implements school.ClassStore.
func (s *Store) CreateClass(ctx context.Context, c school.Class) (school.Class, error) {
	if err := validClass(c); err != nil {
		return c, err
	}
	c.ID = school.NewID()
	c.CreatedAt = s.now()
	err := s.tx(ctx, "create class", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO classes (`+classCols+`) VALUES ($1, $2, $3, $4, $5)`,
			c.ID, c.SchoolID, c.ExternalID, c.Name, micros(c.CreatedAt))
		return err
	})
	return c, err
}

// GetClass implements school.ClassStore.
func (s *Store) GetClass(ctx context.Context, schoolID, id string) (school.Class, error) {
	c, err := scanClassRow(s.q.QueryRow(ctx, `SELECT `+classCols+` FROM classes WHERE id = $1 AND school_id = $2`, id, schoolID))
	return c, s.fail("get class", one(err, "class"))
}

// ListClasses implements school.ClassStore.
func (s *Store) ListClasses(ctx context.Context, schoolID string) ([]school.Class, error) {
	out, err := collect(ctx, s.q, scanClass, `SELECT `+classCols+` FROM classes WHERE school_id = $1 ORDER BY name, id`, schoolID)
	return out, s.fail("list classes", err)
}

// UpdateClass implements school.ClassStore.
func (s *Store) UpdateClass(ctx context.Context, schoolID, id string, fn func(school.Class) (school.Class, error)) (school.Class, error) {
	var out school.Class
	err := s.tx(ctx, "update class", func(t *Store) error {
		old, err := scanClassRow(t.q.QueryRow(ctx, `SELECT `+classCols+` FROM classes WHERE id = $1 AND school_id = $2`+t.b.ForUpdate(), id, schoolID))
		if err != nil {
			return one(err, "class")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.ID, nw.SchoolID, nw.CreatedAt = old.ID, old.SchoolID, old.CreatedAt
		if err := validClass(nw); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE classes SET external_id = $2, name = $3 WHERE id = $1`, nw.ID, nw.ExternalID, nw.Name)
		out = nw
		return err
	})
	return out, err
}

// DeleteClass implements school.ClassStore.
func (s *Store) DeleteClass(ctx context.Context, schoolID, id string) error {
	return s.tx(ctx, "delete class", func(t *Store) error {
		n, err := t.q.Exec(ctx, `DELETE FROM classes WHERE id = $1 AND school_id = $2`, id, schoolID)
		if err == nil && n == 0 {
			return fmt.Errorf("class: %w", school.ErrNotFound)
		}
		return err
	})
}
