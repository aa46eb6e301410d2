package sqlstore

import (
	"context"

	"github.com/elevid/elevid/school"
)

const schoolCols = `id, code, name, domain, created_at`

func scanSchool(r Rows) (school.School, error) { return scanSchoolRow(r) }

func scanSchoolRow(r Row) (school.School, error) {
	var s school.School
	var created int64
	err := r.Scan(&s.ID, &s.Code, &s.Name, &s.Domain, &created)
	s.CreatedAt = fromMicros(created)
	return s, err
}

// CreateSchool implements school.SchoolStore.
func (s *Store) CreateSchool(ctx context.Context, sc school.School) (school.School, error) {
	if err := sc.Validate(); err != nil {
		return school.School{}, err
	}
	sc.ID = school.NewID()
	sc.CreatedAt = s.now()
	err := s.tx(ctx, "create school", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO schools (`+schoolCols+`) VALUES ($1, $2, $3, $4, $5)`,
			sc.ID, sc.Code, sc.Name, sc.Domain, micros(sc.CreatedAt))
		return err
	})
	return sc, err
}

// GetSchool implements school.SchoolStore.
func (s *Store) GetSchool(ctx context.Context, id string) (school.School, error) {
	sc, err := scanSchoolRow(s.q.QueryRow(ctx, `SELECT `+schoolCols+` FROM schools WHERE id = $1`, id))
	return sc, s.fail("get school", one(err, "school"))
}

// SchoolByCode implements school.SchoolStore.
func (s *Store) SchoolByCode(ctx context.Context, code string) (school.School, error) {
	sc, err := scanSchoolRow(s.q.QueryRow(ctx, `SELECT `+schoolCols+` FROM schools WHERE code = $1`, code))
	return sc, s.fail("school by code", one(err, "school"))
}

// ListSchools implements school.SchoolStore.
func (s *Store) ListSchools(ctx context.Context) ([]school.School, error) {
	out, err := collect(ctx, s.q, scanSchool, `SELECT `+schoolCols+` FROM schools ORDER BY code`)
	return out, s.fail("list schools", err)
}

// UpdateSchool implements school.SchoolStore.
func (s *Store) UpdateSchool(ctx context.Context, id string, fn func(school.School) (school.School, error)) (school.School, error) {
	var out school.School
	err := s.tx(ctx, "update school", func(t *Store) error {
		old, err := scanSchoolRow(t.q.QueryRow(ctx, `SELECT `+schoolCols+` FROM schools WHERE id = $1`+t.b.ForUpdate(), id))
		if err != nil {
			return one(err, "school")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.ID, nw.CreatedAt = old.ID, old.CreatedAt
		if err := nw.Validate(); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE schools SET code = $2, name = $3, domain = $4 WHERE id = $1`,
			nw.ID, nw.Code, nw.Name, nw.Domain)
		out = nw
		return err
	})
	return out, err
}
