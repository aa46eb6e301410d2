package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

// Purge implements school.RetentionStore.
func (s *Store) Purge(ctx context.Context, kind school.PurgeKind, cutoff, now time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 500
	}
	var n int64
	err := s.tx(ctx, "purge "+string(kind), func(t *Store) error {
		var err error
		switch kind {
		case school.PurgeReleases:
			n, err = t.q.Exec(ctx, `DELETE FROM releases WHERE id IN (SELECT id FROM releases WHERE time < $1 ORDER BY time LIMIT $2)`, micros(cutoff), batch)
		case school.PurgeAccess:
			// Client addresses in (keyed) audit entries expire with the
			// access log; the entries stay and still verify.
			if _, err = t.q.Exec(ctx, `UPDATE audit_log SET remote = '' WHERE remote <> '' AND key_id <> '' AND time < $1`, micros(cutoff)); err != nil {
				return err
			}
			n, err = t.q.Exec(ctx, `DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE time < $1 ORDER BY time LIMIT $2)`, micros(cutoff), batch)
		case school.PurgeRemovedPupils:
			n, err = t.purgeRemovedPupils(ctx, cutoff, batch)
		case school.PurgeExpired:
			n, err = t.purgeExpired(ctx, cutoff, now, batch)
		default:
			err = fmt.Errorf("%w: unknown purge kind %q", school.ErrInvalid, kind)
		}
		if err != nil || n == 0 {
			return err
		}
		// The count is committed with the deletion: an interrupted job
		// neither loses nor double-counts a batch.
		_, err = t.AppendAudit(ctx, school.AuditEntry{SchoolID: school.InstanceChain, ActorID: "retention", ActorRole: "system",
			Action: "retention.purge", Detail: fmt.Sprintf("kind=%s deleted=%d", kind, n)})
		return err
	})
	return n, err
}

func (s *Store) purgeRemovedPupils(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	type due struct{ id, school string }
	list, err := collect(ctx, s.q, func(r Rows) (due, error) {
		var d due
		return d, r.Scan(&d.id, &d.school)
	}, `SELECT id, school_id FROM pupils WHERE status = 'removed' AND updated_at < $1 ORDER BY updated_at LIMIT $2`, micros(cutoff), batch)
	if err != nil {
		return 0, err
	}
	for _, d := range list {
		if err := s.DeletePupil(ctx, d.id); err != nil {
			return 0, err
		}
		if _, err := s.AppendAudit(ctx, school.AuditEntry{SchoolID: d.school, ActorID: "retention", ActorRole: "system",
			Action: "pupil.erase", SubjectID: d.id, Detail: "retention: removed from the directory and past the grace period"}); err != nil {
			return 0, err
		}
	}
	return int64(len(list)), nil
}

// purgeExpired deletes expired, short-lived records, at most batch rows
// of each table per call (all of them when batch is 0): a backlog (say a
// million expired tokens after a long stop) then goes in many short
// transactions instead of one that holds SQLite's write lock for minutes.
// The caller repeats until nothing is left.
func (s *Store) purgeExpired(ctx context.Context, cutoff, now time.Time, batch int) (int64, error) {
	c, nw := micros(cutoff), micros(now)
	stmts := []struct {
		table, key, cond string
		arg              int64
	}{
		{"enrolment_codes", "hash", `expires_at < $1 OR (used_at > 0 AND used_at < $1)`, c},
		{"guardian_links", "hash", `expires_at < $1 OR (used_at > 0 AND used_at < $1)`, c},
		{"enrolments", "pupil_id", `state IN ('expired', 'denied', 'withdrawn') AND updated_at < $1`, c},
		{"outbox", "id", `status IN ('sent', 'failed') AND created_at < $1`, c},
		{"webauthn_ceremonies", "id", `expires_at < $1`, nw},
		{"sessions", "id_hash", `created_at < $1 - ` + ceremonyKeepMicros + ` AND (expires_at < $1 OR (revoked_at > 0 AND revoked_at < $1))`, nw},
		{"rate_counters", "key", `window_end < $1`, nw},
		{"oidc_tokens", "id", `expires_at < $1`, nw},
		{"logout_notices", "id", `expires_at < $1`, nw},
	}
	var total int64
	for _, st := range stmts {
		q := `DELETE FROM ` + st.table + ` WHERE ` + st.cond
		if batch > 0 {
			q = fmt.Sprintf(`DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT %d)`, st.table, st.key, st.key, st.table, st.cond, batch)
		}
		n, err := s.q.Exec(ctx, q, st.arg)
		if err != nil {
			return 0, err
		}
		total += n
	}
	n, err := s.PruneSAML(ctx)
	if err != nil {
		return 0, err
	}
	return total + n, nil
}
