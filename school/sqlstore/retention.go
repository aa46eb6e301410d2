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
			n, err = t.q.Exec(ctx, purgeReleasesSQL, micros(cutoff), batch)
		case school.PurgeAccess:
			// Client addresses in (keyed) audit entries expire with the
			// access log; the entries stay and still verify.
			if _, err = t.q.Exec(ctx, clearAuditRemoteSQL, micros(cutoff)); err != nil {
				return err
			}
			n, err = t.q.Exec(ctx, purgeAccessSQL, micros(cutoff), batch)
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
	}, removedPupilsSQL, micros(cutoff), batch)
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

// The retention job's statements. Each finds what is due through an
// index (migration 00042; TestRetentionUsesIndexes shows the plans), so a
// call that finds nothing costs a few index probes and a backlog's
// batches do not re-read the table.
const (
	purgeReleasesSQL    = `DELETE FROM releases WHERE id IN (SELECT id FROM releases WHERE time < $1 ORDER BY time LIMIT $2)`
	clearAuditRemoteSQL = `UPDATE audit_log SET remote = '' WHERE remote <> '' AND key_id <> '' AND time < $1`
	purgeAccessSQL      = `DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE time < $1 ORDER BY time LIMIT $2)`
	removedPupilsSQL    = `SELECT id, school_id FROM pupils WHERE status = 'removed' AND updated_at < $1 ORDER BY updated_at LIMIT $2`
)

// expired lists the short-lived records purgeExpired deletes: per table,
// its key and the conditions under which a row is due, one per index
// that finds them ($1 is the cutoff, or now when byNow).
var expired = []struct {
	table, key, cond string
	byNow            bool
}{
	{"enrolment_codes", "hash", `expires_at < $1`, false},
	{"enrolment_codes", "hash", `used_at > 0 AND used_at < $1`, false},
	{"guardian_links", "hash", `expires_at < $1`, false},
	{"guardian_links", "hash", `used_at > 0 AND used_at < $1`, false},
	{"enrolments", "pupil_id", `state IN ('expired', 'denied', 'withdrawn') AND updated_at < $1`, false},
	{"outbox", "id", `status IN ('sent', 'failed') AND created_at < $1`, false},
	{"webauthn_ceremonies", "id", `expires_at < $1`, true},
	// Sessions younger than school.CeremonyMaxAge stay: their ceremony
	// must not be replayable.
	{"sessions", "id_hash", `expires_at < $1 AND created_at < $1 - ` + ceremonyKeepMicros, true},
	{"sessions", "id_hash", `revoked_at > 0 AND revoked_at < $1 AND created_at < $1 - ` + ceremonyKeepMicros, true},
	{"rate_counters", "key", `window_end < $1`, true},
	{"oidc_tokens", "id", `expires_at < $1`, true},
	{"logout_notices", "id", `expires_at < $1`, true},
}

// expiredSQL is the statement deleting at most batch rows of table that
// meet cond (all of them when batch is 0).
func expiredSQL(table, key, cond string, batch int) string {
	if batch <= 0 {
		return `DELETE FROM ` + table + ` WHERE ` + cond
	}
	return fmt.Sprintf(`DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT %d)`, table, key, key, table, cond, batch)
}

// RetentionStatements returns every statement the retention job runs,
// with batches of 500 (for the test of their query plans).
func RetentionStatements() []string {
	out := []string{purgeReleasesSQL, clearAuditRemoteSQL, purgeAccessSQL, removedPupilsSQL}
	for _, e := range expired {
		out = append(out, expiredSQL(e.table, e.key, e.cond, 500))
	}
	return append(out, pruneSAMLSQL...)
}

// purgeExpired deletes expired, short-lived records, at most batch rows
// of each table per call (all of them when batch is 0): a backlog (say a
// million expired tokens after a long stop) then goes in many short
// transactions instead of one that holds SQLite's write lock for minutes.
// The caller repeats until nothing is left.
func (s *Store) purgeExpired(ctx context.Context, cutoff, now time.Time, batch int) (int64, error) {
	var total int64
	for _, e := range expired {
		arg := micros(cutoff)
		if e.byNow {
			arg = micros(now)
		}
		n, err := s.q.Exec(ctx, expiredSQL(e.table, e.key, e.cond, batch), arg)
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
