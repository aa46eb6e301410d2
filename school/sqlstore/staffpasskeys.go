package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/elevid/elevid/school"
)

// StaffHandle implements school.StaffPasskeyStore.
func (s *Store) StaffHandle(ctx context.Context, staffID string) ([]byte, error) {
	var h []byte
	err := s.q.QueryRow(ctx, `SELECT handle FROM staff_handles WHERE staff_id = $1`, staffID).Scan(&h)
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, ErrNoRows) {
		return nil, s.fail("staff handle", err)
	}
	err = s.tx(ctx, "staff handle", func(t *Store) error {
		var n int64
		if err := t.q.QueryRow(ctx, `SELECT COUNT(*) FROM staff WHERE id = $1`, staffID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("staff: %w", school.ErrNotFound)
		}
		// 64 random bytes do not collide; the guard against the pupils'
		// handles makes the separation a property of the store anyway.
		for range 3 {
			nh := school.NewSecret(64)
			if _, err := t.q.Exec(ctx, `INSERT INTO staff_handles (staff_id, handle) SELECT $1, $2
				WHERE NOT EXISTS (SELECT 1 FROM pupil_handles WHERE handle = $2) ON CONFLICT (staff_id) DO NOTHING`,
				staffID, nh); err != nil {
				return err
			}
			err := t.q.QueryRow(ctx, `SELECT handle FROM staff_handles WHERE staff_id = $1`, staffID).Scan(&h)
			if !errors.Is(err, ErrNoRows) {
				return err
			}
		}
		return errors.New("no fresh staff handle")
	})
	return h, err
}

// StaffByHandle implements school.StaffPasskeyStore.
func (s *Store) StaffByHandle(ctx context.Context, handle []byte) (string, error) {
	var id string
	err := s.q.QueryRow(ctx, `SELECT staff_id FROM staff_handles WHERE handle = $1`, handle).Scan(&id)
	return id, s.fail("staff by handle", one(err, "user handle"))
}

const staffCredentialCols = `id, staff_id, public_key, attestation_format, aaguid, sign_count, backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at`

func scanStaffCredential(r Rows) (school.StaffCredential, error) { return scanStaffCredentialRow(r) }

func scanStaffCredentialRow(r Row) (school.StaffCredential, error) {
	var c school.StaffCredential
	var count, created, used int64
	var transports string
	err := r.Scan(&c.ID, &c.StaffID, &c.PublicKey, &c.AttestationFormat, &c.AAGUID, &count,
		&c.BackupEligible, &c.BackupState, &c.CloneWarning, &transports, &c.Label, &created, &used)
	c.SignCount = uint32(count)
	if transports != "" {
		c.Transports = strings.Split(transports, ",")
	}
	c.CreatedAt, c.LastUsedAt = fromMicros(created), fromMicros(used)
	return c, err
}

func validStaffCredential(c school.StaffCredential) error {
	switch {
	case len(c.ID) == 0 || len(c.ID) > 1023:
		return fmt.Errorf("%w: credential id must be 1–1023 bytes", school.ErrInvalid)
	case len(c.PublicKey) == 0:
		return fmt.Errorf("%w: credential has no public key", school.ErrInvalid)
	case c.StaffID == "":
		return fmt.Errorf("%w: credential has no staff member", school.ErrInvalid)
	case len(c.Label) > 100:
		return fmt.Errorf("%w: credential label longer than 100 characters", school.ErrInvalid)
	}
	for _, tr := range c.Transports {
		if strings.Contains(tr, ",") {
			return fmt.Errorf("%w: transport %q", school.ErrInvalid, tr)
		}
	}
	return nil
}

// AddStaffCredential implements school.StaffPasskeyStore.
func (s *Store) AddStaffCredential(ctx context.Context, c school.StaffCredential) (school.StaffCredential, error) {
	if err := validStaffCredential(c); err != nil {
		return c, err
	}
	c.CreatedAt = s.now()
	err := s.tx(ctx, "add staff credential", func(t *Store) error {
		n, err := t.q.Exec(ctx, `INSERT INTO staff_credentials (`+staffCredentialCols+`)
			SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM staff WHERE id = $2`,
			c.ID, c.StaffID, c.PublicKey, c.AttestationFormat, c.AAGUID, int64(c.SignCount),
			c.BackupEligible, c.BackupState, c.CloneWarning, strings.Join(c.Transports, ","), c.Label,
			micros(c.CreatedAt), micros(c.LastUsedAt))
		if err == nil && n == 0 {
			return fmt.Errorf("%w: staff member %s does not exist", school.ErrInvalid, c.StaffID)
		}
		return err
	})
	return c, err
}

// GetStaffCredential implements school.StaffPasskeyStore.
func (s *Store) GetStaffCredential(ctx context.Context, id []byte) (school.StaffCredential, error) {
	c, err := scanStaffCredentialRow(s.q.QueryRow(ctx, `SELECT `+staffCredentialCols+` FROM staff_credentials WHERE id = $1`, id))
	return c, s.fail("get staff credential", one(err, "credential"))
}

// ListStaffCredentials implements school.StaffPasskeyStore.
func (s *Store) ListStaffCredentials(ctx context.Context, staffID string) ([]school.StaffCredential, error) {
	out, err := collect(ctx, s.q, scanStaffCredential, `SELECT `+staffCredentialCols+` FROM staff_credentials WHERE staff_id = $1 ORDER BY created_at, id`, staffID)
	return out, s.fail("list staff credentials", err)
}

// UpdateStaffCredential implements school.StaffPasskeyStore.
func (s *Store) UpdateStaffCredential(ctx context.Context, id []byte, fn func(school.StaffCredential) (school.StaffCredential, error)) (school.StaffCredential, error) {
	var out school.StaffCredential
	err := s.tx(ctx, "update staff credential", func(t *Store) error {
		old, err := scanStaffCredentialRow(t.q.QueryRow(ctx, `SELECT `+staffCredentialCols+` FROM staff_credentials WHERE id = $1`+t.b.ForUpdate(), id))
		if err != nil {
			return one(err, "credential")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.ID, nw.StaffID, nw.PublicKey, nw.CreatedAt = old.ID, old.StaffID, old.PublicKey, old.CreatedAt
		if err := validStaffCredential(nw); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE staff_credentials SET sign_count = $2, backup_eligible = $3, backup_state = $4, clone_warning = $5,
			transports = $6, label = $7, last_used_at = $8, aaguid = $9, attestation_format = $10 WHERE id = $1`,
			nw.ID, int64(nw.SignCount), nw.BackupEligible, nw.BackupState, nw.CloneWarning, strings.Join(nw.Transports, ","),
			nw.Label, micros(nw.LastUsedAt), nw.AAGUID, nw.AttestationFormat)
		out = nw
		return err
	})
	return out, err
}

// DeleteStaffCredential implements school.StaffPasskeyStore.
func (s *Store) DeleteStaffCredential(ctx context.Context, staffID string, id []byte) error {
	return s.tx(ctx, "delete staff credential", func(t *Store) error {
		n, err := t.q.Exec(ctx, `DELETE FROM staff_credentials WHERE id = $1 AND staff_id = $2`, id, staffID)
		if err == nil && n == 0 {
			return fmt.Errorf("credential: %w", school.ErrNotFound)
		}
		return err
	})
}
