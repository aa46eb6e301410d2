package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

// lease gives owner, until until, up to limit rows of a queue table (with
// id, next_at, attempts, lease_owner and lease_until columns) that due
// selects ($1 is now) and no other owner holds, and counts the attempt.
// Run it inside a transaction.
//
// The candidates are chosen and locked first, then leased by id: a row
// leased by another node (lease_until in the future) is never taken twice.
// On PostgreSQL the candidates are locked with SKIP LOCKED, so concurrent
// claimers each take different rows instead of queueing on the same ones.
// (One UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)
// lost rows under concurrency: its re-check re-ran the subquery.) SQLite's
// writer lock serializes claimers anyway.
func (s *Store) lease(ctx context.Context, table, due string, now, until time.Time, owner string, limit int) error {
	lock := s.b.ForUpdate()
	if lock != "" {
		lock += " SKIP LOCKED"
	}
	ids, err := collect(ctx, s.q, scanString, `SELECT id FROM `+table+` WHERE `+due+` AND lease_until <= $1
		ORDER BY next_at, id LIMIT `+fmt.Sprint(limit)+lock, micros(now))
	if err != nil || len(ids) == 0 {
		return err
	}
	args := []any{owner, micros(until), micros(now)}
	marks := make([]string, len(ids))
	for i, id := range ids {
		args = append(args, id)
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	_, err = s.q.Exec(ctx, `UPDATE `+table+` SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
		WHERE id IN (`+strings.Join(marks, ", ")+`) AND `+strings.ReplaceAll(due, "$1", "$3")+` AND lease_until <= $3`, args...)
	return err
}

// claim leases to owner, in one transaction, up to limit (10 when not
// positive) rows of a queue table that kind and due select (see lease)
// and returns them, scanned from cols by scan. kind is a constant
// condition without parameters ("" for none) that also narrows the
// read-back, so one owner's claims of different kinds stay apart.
func claim[T any](ctx context.Context, s *Store, op, table, kind, due, cols string, scan func(Rows) (T, error), owner string, lease time.Duration, limit int) ([]T, error) {
	if owner == "" || lease <= 0 {
		return nil, fmt.Errorf("%w: claim needs an owner and a lease", school.ErrInvalid)
	}
	if limit <= 0 {
		limit = 10
	}
	var out []T
	err := s.tx(ctx, op, func(t *Store) error {
		now := t.now()
		until := now.Add(lease)
		back := ""
		if kind != "" {
			due = kind + " AND " + due
			back = " AND " + kind
		}
		if err := t.lease(ctx, table, due, now, until, owner, limit); err != nil {
			return err
		}
		var err error
		out, err = collect(ctx, t.q, scan, `SELECT `+cols+` FROM `+table+` WHERE lease_owner = $1 AND lease_until = $2`+back+` ORDER BY next_at, id`, owner, micros(until))
		return err
	})
	return out, err
}

const logoutCols = `id, platform_id, protocol, subject, sid, session_ref, name_id_format, session_index, created_at, next_at, expires_at, attempts, last_error`

func scanLogout(r Rows) (school.LogoutNotice, error) {
	var n school.LogoutNotice
	var protocol string
	var created, next, expires int64
	var attempts int64
	err := r.Scan(&n.ID, &n.PlatformID, &protocol, &n.Subject, &n.Sid, &n.SessionRef, &n.NameIDFormat, &n.SessionIndex, &created, &next, &expires, &attempts, &n.LastError)
	n.Protocol = school.Protocol(protocol)
	n.CreatedAt, n.NextAt, n.ExpiresAt, n.Attempts = fromMicros(created), fromMicros(next), fromMicros(expires), int(attempts)
	return n, err
}

// QueueLogout implements school.OIDCStore.
func (s *Store) QueueLogout(ctx context.Context, n school.LogoutNotice) (school.LogoutNotice, error) {
	if n.PlatformID == "" || n.Subject == "" || n.ExpiresAt.IsZero() {
		return n, fmt.Errorf("%w: a logout notice needs a platform, a subject and an expiry", school.ErrInvalid)
	}
	if n.Protocol == "" {
		n.Protocol = school.ProtocolOIDC
	}
	if n.Protocol != school.ProtocolOIDC && n.Protocol != school.ProtocolSAML {
		return n, fmt.Errorf("%w: logout notice protocol %q", school.ErrInvalid, n.Protocol)
	}
	n.ID, n.CreatedAt, n.Attempts, n.LastError = school.NewID(), s.now(), 0, ""
	if n.NextAt.IsZero() {
		n.NextAt = n.CreatedAt
	}
	_, err := s.q.Exec(ctx, `INSERT INTO logout_notices (`+logoutCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, '')`,
		n.ID, n.PlatformID, string(n.Protocol), n.Subject, n.Sid, n.SessionRef, n.NameIDFormat, n.SessionIndex,
		micros(n.CreatedAt), micros(n.NextAt), micros(n.ExpiresAt))
	return n, s.fail("queue logout", err)
}

// ClaimLogouts implements school.OIDCStore.
func (s *Store) ClaimLogouts(ctx context.Context, owner string, protocol school.Protocol, lease time.Duration, limit int) ([]school.LogoutNotice, error) {
	if protocol != school.ProtocolOIDC && protocol != school.ProtocolSAML {
		return nil, fmt.Errorf("%w: logout notice protocol %q", school.ErrInvalid, protocol)
	}
	// The protocol is one of two constants, so it is safe in the SQL.
	return claim(ctx, s, "claim logouts", "logout_notices", "protocol = '"+string(protocol)+"'", "next_at <= $1 AND expires_at > $1", logoutCols, scanLogout, owner, lease, limit)
}

// LogoutDelivered implements school.OIDCStore.
func (s *Store) LogoutDelivered(ctx context.Context, id, owner string) error {
	n, err := s.q.Exec(ctx, `DELETE FROM logout_notices WHERE id = $1 AND lease_owner = $2 AND lease_until > $3`, id, owner, micros(s.now()))
	if err == nil && n == 0 {
		err = fmt.Errorf("logout notice %s: lease lost: %w", id, school.ErrLocked)
	}
	return s.fail("logout delivered", err)
}

// LogoutFailed implements school.OIDCStore.
func (s *Store) LogoutFailed(ctx context.Context, id, owner, reason string, retryAt time.Time) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	n, err := s.q.Exec(ctx, `UPDATE logout_notices SET last_error = $3, next_at = $4, lease_owner = '', lease_until = 0
		WHERE id = $1 AND lease_owner = $2 AND lease_until > $5`, id, owner, reason, micros(retryAt), micros(s.now()))
	if err == nil && n == 0 {
		err = fmt.Errorf("logout notice %s: lease lost: %w", id, school.ErrLocked)
	}
	return s.fail("logout failed", err)
}

// ListLogouts implements school.OIDCStore.
func (s *Store) ListLogouts(ctx context.Context) ([]school.LogoutNotice, error) {
	out, err := collect(ctx, s.q, scanLogout, `SELECT `+logoutCols+` FROM logout_notices ORDER BY created_at, id`)
	return out, s.fail("list logouts", err)
}
