package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/elevid/elevid/school"
)

const staffCols = `id, COALESCE(school_id, ''), external_id, username, name, email, role, password_hash, totp_secret, disabled, created_at, password_expires`

func scanStaff(r Rows) (school.Staff, error) { return scanStaffRow(r) }

func scanStaffRow(r Row) (school.Staff, error) {
	var st school.Staff
	var role string
	var created, expires int64
	err := r.Scan(&st.ID, &st.SchoolID, &st.ExternalID, &st.Username, &st.Name, &st.Email, &role, &st.PasswordHash, &st.TOTPSecret, &st.Disabled, &created, &expires)
	st.Role = school.Role(role)
	st.CreatedAt = fromMicros(created)
	st.PasswordExpires = fromMicros(expires)
	return st, err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateStaff implements school.StaffStore.
func (s *Store) CreateStaff(ctx context.Context, st school.Staff) (school.Staff, error) {
	if err := st.Validate(); err != nil {
		return st, err
	}
	st.ID = school.NewID()
	st.CreatedAt = s.now()
	err := s.tx(ctx, "create staff", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO staff (id, school_id, external_id, username, name, email, role, password_hash, totp_secret, disabled, created_at, password_expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			st.ID, nullable(st.SchoolID), st.ExternalID, st.Username, st.Name, st.Email, string(st.Role), st.PasswordHash, st.TOTPSecret, st.Disabled, micros(st.CreatedAt), micros(st.PasswordExpires))
		if err != nil {
			return err
		}
		return t.setStaffClasses(ctx, st, nil)
	})
	return st, err
}

func (s *Store) setStaffClasses(ctx context.Context, st school.Staff, old []string) error {
	for _, id := range st.ClassIDs {
		if slices.Contains(old, id) {
			continue
		}
		n, err := s.q.Exec(ctx, `INSERT INTO staff_classes (staff_id, class_id) SELECT $1, id FROM classes WHERE id = $2 AND school_id = $3`, st.ID, id, st.SchoolID)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: class %s is not of the staff member's school", school.ErrInvalid, id)
		}
	}
	for _, id := range old {
		if !slices.Contains(st.ClassIDs, id) {
			if _, err := s.q.Exec(ctx, `DELETE FROM staff_classes WHERE staff_id = $1 AND class_id = $2`, st.ID, id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) getStaff(ctx context.Context, where, lock string, arg string) (school.Staff, error) {
	st, err := scanStaffRow(s.q.QueryRow(ctx, `SELECT `+staffCols+` FROM staff WHERE `+where+lock, arg))
	if err != nil {
		return st, one(err, "staff")
	}
	st.ClassIDs, err = collect(ctx, s.q, scanString, `SELECT class_id FROM staff_classes WHERE staff_id = $1 ORDER BY class_id`, st.ID)
	return st, err
}

// GetStaff implements school.StaffStore.
func (s *Store) GetStaff(ctx context.Context, id string) (school.Staff, error) {
	st, err := s.getStaff(ctx, `id = $1`, "", id)
	return st, s.fail("get staff", err)
}

// StaffByUsername implements school.StaffStore.
func (s *Store) StaffByUsername(ctx context.Context, username string) (school.Staff, error) {
	st, err := s.getStaff(ctx, `username = $1`, "", username)
	return st, s.fail("staff by username", err)
}

// ListStaff implements school.StaffStore. It reads the staff and their
// class links in two queries, whatever their number.
func (s *Store) ListStaff(ctx context.Context, schoolID string) ([]school.Staff, error) {
	// school_id = $1 (not COALESCE(school_id, '') = $1) lets the staff_school
	// index serve a school's staff; operators have no school (NULL).
	where, args := `school_id = $1`, []any{schoolID}
	if schoolID == "" {
		where, args = `school_id IS NULL`, nil
	}
	out, err := collect(ctx, s.q, scanStaff, `SELECT `+staffCols+` FROM staff WHERE `+where+` ORDER BY name, username`, args...)
	if err != nil || len(out) == 0 {
		return out, s.fail("list staff", err)
	}
	idx := make(map[string]int, len(out))
	for i, st := range out {
		idx[st.ID] = i
	}
	type link struct{ staff, class string }
	links, err := collect(ctx, s.q, func(r Rows) (link, error) {
		var l link
		return l, r.Scan(&l.staff, &l.class)
	}, `SELECT l.staff_id, l.class_id FROM staff_classes l JOIN staff s ON s.id = l.staff_id WHERE s.`+where+` ORDER BY l.staff_id, l.class_id`, args...)
	if err != nil {
		return nil, s.fail("list staff", err)
	}
	for _, l := range links {
		if i, ok := idx[l.staff]; ok {
			out[i].ClassIDs = append(out[i].ClassIDs, l.class)
		}
	}
	return out, nil
}

// UpdateStaff implements school.StaffStore.
func (s *Store) UpdateStaff(ctx context.Context, id string, fn func(school.Staff) (school.Staff, error)) (school.Staff, error) {
	var out school.Staff
	err := s.tx(ctx, "update staff", func(t *Store) error {
		old, err := t.getStaff(ctx, `id = $1`, t.b.ForUpdate(), id)
		if err != nil {
			return err
		}
		cp := old
		cp.ClassIDs = slices.Clone(old.ClassIDs)
		nw, err := fn(cp)
		if err != nil {
			return err
		}
		nw.ID, nw.CreatedAt = old.ID, old.CreatedAt
		if err := nw.Validate(); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE staff SET school_id = $2, external_id = $3, username = $4, name = $5, email = $6, role = $7, password_hash = $8, totp_secret = $9, disabled = $10, password_expires = $11 WHERE id = $1`,
			nw.ID, nullable(nw.SchoolID), nw.ExternalID, nw.Username, nw.Name, nw.Email, string(nw.Role), nw.PasswordHash, nw.TOTPSecret, nw.Disabled, micros(nw.PasswordExpires))
		if err != nil {
			return err
		}
		out = nw
		return t.setStaffClasses(ctx, nw, old.ClassIDs)
	})
	return out, err
}
