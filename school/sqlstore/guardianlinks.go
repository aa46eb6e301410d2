package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

const linkCols = `hash, kind, guardian_id, pupil_id, school_id, created_at, expires_at, used_at`

func scanLinkRow(r Row) (school.GuardianLink, error) {
	var l school.GuardianLink
	var kind string
	var pupil *string
	var created, expires, used int64
	err := r.Scan(&l.Hash, &kind, &l.GuardianID, &pupil, &l.SchoolID, &created, &expires, &used)
	l.Kind = school.LinkKind(kind)
	if pupil != nil {
		l.PupilID = *pupil
	}
	l.CreatedAt, l.ExpiresAt, l.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return l, err
}

// CreateGuardianLink implements school.ConsentFlowStore.
func (s *Store) CreateGuardianLink(ctx context.Context, l school.GuardianLink) (school.GuardianLink, error) {
	if len(l.Hash) == 0 || l.GuardianID == "" || l.SchoolID == "" || l.ExpiresAt.IsZero() ||
		(l.Kind != school.LinkConsent && l.Kind != school.LinkGuardian) || (l.Kind == school.LinkConsent) != (l.PupilID != "") {
		return l, fmt.Errorf("%w: incomplete guardian link", school.ErrInvalid)
	}
	l.CreatedAt = s.now()
	l.UsedAt = time.Time{}
	var pupil any
	if l.PupilID != "" {
		pupil = l.PupilID
	}
	err := s.tx(ctx, "create guardian link", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO guardian_links (`+linkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)`,
			l.Hash, string(l.Kind), l.GuardianID, pupil, l.SchoolID, micros(l.CreatedAt), micros(l.ExpiresAt))
		return err
	})
	return l, err
}

func (s *Store) checkLink(l school.GuardianLink, err error) (school.GuardianLink, error) {
	if err != nil {
		return l, one(err, "guardian link")
	}
	if !l.UsedAt.IsZero() {
		return l, fmt.Errorf("guardian link: %w", school.ErrUsed)
	}
	if !s.now().Before(l.ExpiresAt) {
		return l, fmt.Errorf("guardian link: %w", school.ErrExpired)
	}
	return l, nil
}

// GuardianLinkByHash implements school.ConsentFlowStore.
func (s *Store) GuardianLinkByHash(ctx context.Context, hash []byte) (school.GuardianLink, error) {
	l, err := s.checkLink(scanLinkRow(s.q.QueryRow(ctx, `SELECT `+linkCols+` FROM guardian_links WHERE hash = $1`, hash)))
	return l, s.fail("guardian link", err)
}

// UseGuardianLink implements school.ConsentFlowStore.
func (s *Store) UseGuardianLink(ctx context.Context, hash []byte) (school.GuardianLink, error) {
	var l school.GuardianLink
	err := s.tx(ctx, "use guardian link", func(t *Store) error {
		now := t.now()
		// The conditional update is the single point of decision: of
		// concurrent callers only one sees a row change.
		n, err := t.q.Exec(ctx, `UPDATE guardian_links SET used_at = $2 WHERE hash = $1 AND used_at = 0 AND expires_at > $2`, hash, micros(now))
		if err != nil {
			return err
		}
		l, err = scanLinkRow(t.q.QueryRow(ctx, `SELECT `+linkCols+` FROM guardian_links WHERE hash = $1`, hash))
		if n == 0 {
			_, err = t.checkLink(l, err)
			if err == nil {
				err = fmt.Errorf("guardian link: %w", school.ErrUsed)
			}
			return err
		}
		return err
	})
	return l, err
}

// PupilsOfGuardian implements school.ConsentFlowStore.
func (s *Store) PupilsOfGuardian(ctx context.Context, guardianID string) ([]string, error) {
	out, err := collect(ctx, s.q, scanString, `SELECT l.pupil_id FROM pupil_guardians l JOIN pupils p ON p.id = l.pupil_id WHERE l.guardian_id = $1 ORDER BY p.given_name, p.id`, guardianID)
	return out, s.fail("pupils of guardian", err)
}
