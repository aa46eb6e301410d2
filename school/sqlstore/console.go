package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

const staffAuthCols = `staff_id, totp_last_step, pending_totp, recovery, failures, locked_until, reauth_session, reauth_at`

func scanStaffAuth(r Row) (school.StaffAuth, error) {
	var a school.StaffAuth
	var rec []byte
	var locked, reauth int64
	err := r.Scan(&a.StaffID, &a.TOTPLastStep, &a.PendingTOTP, &rec, &a.Failures, &locked, &a.ReauthSession, &reauth)
	a.LockedUntil, a.ReauthAt = fromMicros(locked), fromMicros(reauth)
	for len(rec) >= 32 {
		a.RecoveryHashes = append(a.RecoveryHashes, bytes.Clone(rec[:32]))
		rec = rec[32:]
	}
	return a, err
}

func (s *Store) getStaffAuth(ctx context.Context, staffID, lock string) (school.StaffAuth, error) {
	a, err := scanStaffAuth(s.q.QueryRow(ctx, `SELECT `+staffAuthCols+` FROM staff_auth WHERE staff_id = $1`+lock, staffID))
	if errors.Is(err, ErrNoRows) {
		var n int
		if err := s.q.QueryRow(ctx, `SELECT COUNT(*) FROM staff WHERE id = $1`, staffID).Scan(&n); err != nil {
			return a, err
		}
		if n == 0 {
			return a, fmt.Errorf("staff %s: %w", staffID, school.ErrNotFound)
		}
		return school.StaffAuth{StaffID: staffID}, nil
	}
	return a, err
}

// GetStaffAuth implements school.ConsoleStore.
func (s *Store) GetStaffAuth(ctx context.Context, staffID string) (school.StaffAuth, error) {
	a, err := s.getStaffAuth(ctx, staffID, "")
	return a, s.fail("get staff auth", err)
}

// UpdateStaffAuth implements school.ConsoleStore.
func (s *Store) UpdateStaffAuth(ctx context.Context, staffID string, fn func(school.StaffAuth) (school.StaffAuth, error)) (school.StaffAuth, error) {
	var out school.StaffAuth
	err := s.tx(ctx, "update staff auth", func(t *Store) error {
		// Lock the staff row first: it exists even when the state row does not yet.
		var id string
		if err := t.q.QueryRow(ctx, `SELECT id FROM staff WHERE id = $1`+t.b.ForUpdate(), staffID).Scan(&id); err != nil {
			return one(err, "staff "+staffID)
		}
		old, err := t.getStaffAuth(ctx, staffID, t.b.ForUpdate())
		if err != nil {
			return err
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.StaffID = staffID
		var rec []byte
		for _, h := range nw.RecoveryHashes {
			if len(h) != 32 {
				return fmt.Errorf("%w: recovery hash of %d bytes", school.ErrInvalid, len(h))
			}
			rec = append(rec, h...)
		}
		_, err = t.q.Exec(ctx, `INSERT INTO staff_auth (`+staffAuthCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (staff_id) DO UPDATE SET totp_last_step = excluded.totp_last_step, pending_totp = excluded.pending_totp,
			recovery = excluded.recovery, failures = excluded.failures, locked_until = excluded.locked_until,
			reauth_session = excluded.reauth_session, reauth_at = excluded.reauth_at`,
			staffID, nw.TOTPLastStep, nw.PendingTOTP, rec, nw.Failures, micros(nw.LockedUntil), nw.ReauthSession, micros(nw.ReauthAt))
		out = nw
		return err
	})
	return out, err
}

// SaveSheet implements school.ConsoleStore.
func (s *Store) SaveSheet(ctx context.Context, sh school.EnrolmentSheet) (school.EnrolmentSheet, error) {
	if sh.ID == "" || sh.SchoolID == "" || sh.CreatedBy == "" || len(sh.Data) == 0 || sh.ExpiresAt.IsZero() {
		return sh, fmt.Errorf("%w: sheet needs an id, school, creator, data and expiry", school.ErrInvalid)
	}
	sh.CreatedAt = s.now()
	err := s.tx(ctx, "save sheet", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO enrolment_sheets (id, school_id, class_id, created_by, data, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, sh.ID, sh.SchoolID, sh.ClassID, sh.CreatedBy, sh.Data, micros(sh.CreatedAt), micros(sh.ExpiresAt))
		return err
	})
	return sh, err
}

// GetSheet implements school.ConsoleStore.
func (s *Store) GetSheet(ctx context.Context, schoolID, id string) (school.EnrolmentSheet, error) {
	var sh school.EnrolmentSheet
	var created, expires int64
	err := s.q.QueryRow(ctx, `SELECT id, school_id, class_id, created_by, data, created_at, expires_at FROM enrolment_sheets WHERE id = $1 AND school_id = $2`,
		id, schoolID).Scan(&sh.ID, &sh.SchoolID, &sh.ClassID, &sh.CreatedBy, &sh.Data, &created, &expires)
	if err != nil {
		return sh, s.fail("get sheet", one(err, "sheet"))
	}
	sh.CreatedAt, sh.ExpiresAt = fromMicros(created), fromMicros(expires)
	if !s.now().Before(sh.ExpiresAt) {
		return school.EnrolmentSheet{}, fmt.Errorf("sheet: %w", school.ErrExpired)
	}
	return sh, nil
}

// PurgeSheets implements school.ConsoleStore.
func (s *Store) PurgeSheets(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, "purge sheets", func(t *Store) error {
		var err error
		n, err = t.q.Exec(ctx, `DELETE FROM enrolment_sheets WHERE expires_at < $1`, micros(cutoff))
		return err
	})
	return n, err
}
