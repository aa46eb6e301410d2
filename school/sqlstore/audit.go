package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

const auditCols = `school_id, seq, time, actor_id, actor_role, action, subject_id, detail, remote, prev_hash, hash, key_id`

func scanAudit(r Rows) (school.AuditEntry, error) {
	var e school.AuditEntry
	var t int64
	err := r.Scan(&e.SchoolID, &e.Seq, &t, &e.ActorID, &e.ActorRole, &e.Action, &e.SubjectID, &e.Detail, &e.Remote, &e.PrevHash, &e.Hash, &e.KeyID)
	e.Time = fromMicros(t)
	return e, err
}

// AppendAudit implements school.AuditStore. The chain head row is locked
// (PostgreSQL) or covered by SQLite's writer lock, so appends serialize.
func (s *Store) AppendAudit(ctx context.Context, e school.AuditEntry) (school.AuditEntry, error) {
	if e.Action == "" || e.ActorID == "" {
		return e, errors.Join(school.ErrInvalid, errors.New("audit entry needs an actor and an action"))
	}
	err := s.tx(ctx, "append audit", func(t *Store) error {
		if _, err := t.q.Exec(ctx, `INSERT INTO audit_heads (school_id, seq, hash) VALUES ($1, 0, NULL) ON CONFLICT (school_id) DO NOTHING`, e.SchoolID); err != nil {
			return err
		}
		var head school.ChainHead
		if err := t.q.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE school_id = $1`+t.b.ForUpdate(), e.SchoolID).Scan(&head.Seq, &head.Hash); err != nil {
			return err
		}
		if e.Time.IsZero() {
			e.Time = t.now()
		}
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
		e.Seq = head.Seq + 1
		e.PrevHash = head.Hash
		t.auditKeys().Seal(&e)
		if _, err := t.q.Exec(ctx, `INSERT INTO audit_log (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			e.SchoolID, e.Seq, micros(e.Time), e.ActorID, e.ActorRole, e.Action, e.SubjectID, e.Detail, e.Remote, e.PrevHash, e.Hash, e.KeyID); err != nil {
			return err
		}
		_, err := t.q.Exec(ctx, `UPDATE audit_heads SET seq = $2, hash = $3 WHERE school_id = $1`, e.SchoolID, e.Seq, e.Hash)
		return err
	})
	return e, err
}

// ListAudit implements school.AuditStore; entries come newest first.
func (s *Store) ListAudit(ctx context.Context, f school.AuditFilter) ([]school.AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + auditCols + ` FROM audit_log WHERE school_id = $1 AND seq > $2`
	args := []any{f.SchoolID, f.AfterSeq}
	if f.SubjectID != "" {
		q += ` AND subject_id = $4`
	}
	q += ` ORDER BY seq DESC LIMIT $3`
	args = append(args, f.Limit)
	if f.SubjectID != "" {
		args = append(args, f.SubjectID)
	}
	out, err := collect(ctx, s.q, scanAudit, q, args...)
	return out, s.fail("list audit", err)
}

func (s *Store) auditKeys() school.AuditKeys {
	if s.opt.AuditKeys == nil {
		return nil
	}
	return s.opt.AuditKeys()
}

// VerifyAudit implements school.AuditStore.
func (s *Store) VerifyAudit(ctx context.Context, schoolID string, anchors ...school.AuditAnchor) error {
	var head school.ChainHead
	err := s.q.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE school_id = $1`, schoolID).Scan(&head.Seq, &head.Hash)
	if err != nil && !errors.Is(err, ErrNoRows) {
		return s.fail("verify audit", err)
	}
	entries, err := collect(ctx, s.q, scanAudit, `SELECT `+auditCols+` FROM audit_log WHERE school_id = $1 ORDER BY seq`, schoolID)
	if err != nil {
		return s.fail("verify audit", err)
	}
	if err := school.VerifyChain(entries, head, s.auditKeys()); err != nil {
		return err
	}
	for _, a := range anchors {
		if a.SchoolID != schoolID {
			continue
		}
		if err := school.CheckAnchor(entries, a); err != nil {
			return err
		}
	}
	return nil
}

// AuditHeads implements school.AuditStore.
func (s *Store) AuditHeads(ctx context.Context) ([]school.AuditAnchor, error) {
	out, err := collect(ctx, s.q, func(r Rows) (school.AuditAnchor, error) {
		var a school.AuditAnchor
		return a, r.Scan(&a.SchoolID, &a.Seq, &a.Hash)
	}, `SELECT school_id, seq, hash FROM audit_heads WHERE seq > 0 ORDER BY school_id`)
	return out, s.fail("audit heads", err)
}

// RekeyAudit implements school.AuditStore: one transaction per chain,
// with the chain head locked, so appends wait and nothing is lost.
func (s *Store) RekeyAudit(ctx context.Context) (int, error) {
	ks := s.auditKeys()
	if len(ks) == 0 {
		return 0, nil
	}
	chains, err := collect(ctx, s.q, scanString, `SELECT DISTINCT school_id FROM audit_log WHERE key_id = ''`)
	if err != nil {
		return 0, s.fail("rekey audit", err)
	}
	total := 0
	var broken []error
	for _, chain := range chains {
		err := s.tx(ctx, "rekey audit", func(t *Store) error {
			var head school.ChainHead
			if err := t.q.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE school_id = $1`+t.b.ForUpdate(), chain).Scan(&head.Seq, &head.Hash); err != nil {
				return err
			}
			entries, err := collect(ctx, t.q, scanAudit, `SELECT `+auditCols+` FROM audit_log WHERE school_id = $1 ORDER BY seq`, chain)
			if err != nil {
				return err
			}
			if err := school.VerifyLegacyChain(entries, head, ks); err != nil {
				return fmt.Errorf("chain %q: %w", chain, err)
			}
			var prev []byte
			for _, e := range entries {
				e.PrevHash = prev
				ks.Seal(&e)
				if _, err := t.q.Exec(ctx, `UPDATE audit_log SET prev_hash = $3, hash = $4, key_id = $5 WHERE school_id = $1 AND seq = $2`,
					chain, e.Seq, e.PrevHash, e.Hash, e.KeyID); err != nil {
					return err
				}
				prev = e.Hash
			}
			_, err = t.q.Exec(ctx, `UPDATE audit_heads SET hash = $2 WHERE school_id = $1`, chain, prev)
			if err == nil {
				total += len(entries)
			}
			return err
		})
		if errors.Is(err, school.ErrChainBroken) {
			broken = append(broken, err)
			continue
		}
		if err != nil {
			return total, err
		}
	}
	return total, errors.Join(broken...)
}

// GetSetting implements school.SettingStore.
func (s *Store) GetSetting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.q.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	return v, s.fail("get setting", one(err, "setting "+key))
}

// EnsureSetting implements school.SettingStore.
func (s *Store) EnsureSetting(ctx context.Context, key string, value []byte) ([]byte, error) {
	var v []byte
	err := s.tx(ctx, "ensure setting", func(t *Store) error {
		if _, err := t.q.Exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
			return err
		}
		return t.q.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	})
	return v, err
}

// TryLock implements school.LockStore.
func (s *Store) TryLock(ctx context.Context, name, owner string, ttl time.Duration) error {
	return s.tx(ctx, "try lock", func(t *Store) error {
		now := t.now()
		n, err := t.q.Exec(ctx, `INSERT INTO locks (name, owner, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE locks.owner = excluded.owner OR locks.expires_at <= $4`,
			name, owner, micros(now.Add(ttl)), micros(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return school.ErrLocked
		}
		return nil
	})
}

// Unlock implements school.LockStore.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	return s.tx(ctx, "unlock", func(t *Store) error {
		_, err := t.q.Exec(ctx, `DELETE FROM locks WHERE name = $1 AND owner = $2`, name, owner)
		return err
	})
}
