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
			n, err = t.purgeExpired(ctx, cutoff, now)
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

// purgeExpired deletes small, short-lived records in one go: they are
// bounded by their own lifetimes, so no batching is needed. Protocol state
// is pruned by the protocols' own prune methods.
func (s *Store) purgeExpired(ctx context.Context, cutoff, now time.Time) (int64, error) {
	c, nw := micros(cutoff), micros(now)
	stmts := []struct {
		q    string
		args []any
	}{
		{`DELETE FROM enrolment_codes WHERE expires_at < $1 OR (used_at > 0 AND used_at < $1)`, []any{c}},
		{`DELETE FROM guardian_links WHERE expires_at < $1 OR (used_at > 0 AND used_at < $1)`, []any{c}},
		{`DELETE FROM enrolments WHERE state IN ('expired', 'denied', 'withdrawn') AND updated_at < $1`, []any{c}},
		{`DELETE FROM outbox WHERE status IN ('sent', 'failed') AND created_at < $1`, []any{c}},
		{`DELETE FROM webauthn_ceremonies WHERE expires_at < $1`, []any{nw}},
		{`DELETE FROM sessions WHERE created_at < $1 - ` + ceremonyKeepMicros + ` AND (expires_at < $1 OR (revoked_at > 0 AND revoked_at < $1))`, []any{nw}},
		{`DELETE FROM rate_counters WHERE window_end < $1`, []any{nw}},
	}
	var total int64
	for _, st := range stmts {
		n, err := s.q.Exec(ctx, st.q, st.args...)
		if err != nil {
			return 0, err
		}
		total += n
	}
	n, err := s.PruneOIDC(ctx, now)
	if err != nil {
		return 0, err
	}
	total += n
	if n, err = s.PruneSAML(ctx); err != nil {
		return 0, err
	}
	return total + n, nil
}
