package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

const verifyCols = `state_hash, link_hash, nonce, verifier, subject, created_at, expires_at, used_at`

func scanVerification(r Row) (school.GuardianVerification, error) {
	var v school.GuardianVerification
	var created, expires, used int64
	err := r.Scan(&v.StateHash, &v.LinkHash, &v.Nonce, &v.Verifier, &v.Subject, &created, &expires, &used)
	v.CreatedAt, v.ExpiresAt, v.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return v, err
}

// verificationGrace is how long expired verifications are kept before
// CreateGuardianVerification deletes them.
const verificationGrace = 24 * time.Hour

// CreateGuardianVerification implements school.GuardianVerificationStore.
func (s *Store) CreateGuardianVerification(ctx context.Context, v school.GuardianVerification) (school.GuardianVerification, error) {
	if len(v.StateHash) == 0 || len(v.LinkHash) == 0 || v.Nonce == "" || v.Verifier == "" || v.ExpiresAt.IsZero() {
		return v, fmt.Errorf("%w: incomplete guardian verification", school.ErrInvalid)
	}
	v.CreatedAt, v.UsedAt, v.Subject = s.now(), time.Time{}, ""
	err := s.tx(ctx, "create guardian verification", func(t *Store) error {
		if _, err := t.q.Exec(ctx, `DELETE FROM guardian_verifications WHERE expires_at < $1`, micros(v.CreatedAt.Add(-verificationGrace))); err != nil {
			return err
		}
		_, err := t.q.Exec(ctx, `INSERT INTO guardian_verifications (`+verifyCols+`) VALUES ($1, $2, $3, $4, '', $5, $6, 0)`,
			v.StateHash, v.LinkHash, v.Nonce, v.Verifier, micros(v.CreatedAt), micros(v.ExpiresAt))
		return err
	})
	return v, err
}

// TakeGuardianVerification implements school.GuardianVerificationStore.
func (s *Store) TakeGuardianVerification(ctx context.Context, stateHash []byte) (school.GuardianVerification, error) {
	var v school.GuardianVerification
	err := s.tx(ctx, "take guardian verification", func(t *Store) error {
		now := t.now()
		// The conditional update decides: of concurrent callers only one
		// changes the row.
		n, err := t.q.Exec(ctx, `UPDATE guardian_verifications SET used_at = $2 WHERE state_hash = $1 AND used_at = 0 AND expires_at > $2`, stateHash, micros(now))
		if err != nil {
			return err
		}
		v, err = scanVerification(t.q.QueryRow(ctx, `SELECT `+verifyCols+` FROM guardian_verifications WHERE state_hash = $1`, stateHash))
		if err != nil {
			return one(err, "guardian verification")
		}
		if n == 0 {
			if v.UsedAt.IsZero() {
				return fmt.Errorf("guardian verification: %w", school.ErrExpired)
			}
			return fmt.Errorf("guardian verification: %w", school.ErrUsed)
		}
		return nil
	})
	return v, err
}

// SetGuardianVerified implements school.GuardianVerificationStore.
func (s *Store) SetGuardianVerified(ctx context.Context, stateHash []byte, subject string, until time.Time) error {
	if subject == "" || until.IsZero() {
		return fmt.Errorf("%w: empty subject", school.ErrInvalid)
	}
	return s.tx(ctx, "set guardian verified", func(t *Store) error {
		n, err := t.q.Exec(ctx, `UPDATE guardian_verifications SET subject = $2, expires_at = $3
			WHERE state_hash = $1 AND used_at <> 0 AND subject = '' AND expires_at > $4`, stateHash, subject, micros(until), micros(t.now()))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("guardian verification: %w", school.ErrNotFound)
		}
		return nil
	})
}

// GuardianVerified implements school.GuardianVerificationStore.
func (s *Store) GuardianVerified(ctx context.Context, linkHash []byte) (string, error) {
	var subject string
	err := s.q.QueryRow(ctx, `SELECT subject FROM guardian_verifications WHERE link_hash = $1 AND subject <> '' AND expires_at > $2
		ORDER BY created_at DESC LIMIT 1`, linkHash, micros(s.now())).Scan(&subject)
	if err != nil {
		return "", s.fail("guardian verified", one(err, "guardian verification"))
	}
	return subject, nil
}
