package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

// UseSAMLMessageID implements school.SAMLStore: an expired record of the
// id is replaced; a live one makes the insert violate the key, ErrUsed.
// Both statements are deferred writes (on PostgreSQL they go out with
// the COMMIT).
func (s *Store) UseSAMLMessageID(ctx context.Context, issuer, id string, expiresAt time.Time) error {
	return s.tx(ctx, "use saml message id", func(t *Store) error {
		if err := t.write(ctx, "use saml message id", `DELETE FROM saml_message_ids WHERE issuer = $1 AND id = $2 AND expires_at <= $3`,
			issuer, id, micros(t.now())); err != nil {
			return err
		}
		return t.writeOnce(ctx, "use saml message id", "saml message id",
			`INSERT INTO saml_message_ids (issuer, id, expires_at) VALUES ($1, $2, $3)`, issuer, id, micros(expiresAt))
	})
}

const samlFlowCols = `id, kind, data, created_at, expires_at, used_at`

func scanSAMLFlow(r Row) (school.SAMLFlow, error) {
	var f school.SAMLFlow
	var data string
	var created, expires, used int64
	err := r.Scan(&f.ID, &f.Kind, &data, &created, &expires, &used)
	f.Data = []byte(data)
	f.CreatedAt, f.ExpiresAt, f.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return f, err
}

// CreateSAMLFlow implements school.SAMLStore.
func (s *Store) CreateSAMLFlow(ctx context.Context, f school.SAMLFlow) error {
	if f.ID == "" || f.Kind == "" || f.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: saml flow needs an id, a kind and an expiry", school.ErrInvalid)
	}
	return s.tx(ctx, "create saml flow", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO saml_flows (`+samlFlowCols+`) VALUES ($1, $2, $3, $4, $5, 0)`,
			f.ID, f.Kind, string(f.Data), micros(t.now()), micros(f.ExpiresAt))
		return err
	})
}

func (s *Store) checkSAMLFlow(f school.SAMLFlow, err error) (school.SAMLFlow, error) {
	if err != nil {
		return f, one(err, "saml flow")
	}
	switch {
	case !f.UsedAt.IsZero():
		return f, fmt.Errorf("saml flow: %w", school.ErrUsed)
	case !s.now().Before(f.ExpiresAt):
		return f, fmt.Errorf("saml flow: %w", school.ErrExpired)
	}
	return f, nil
}

// GetSAMLFlow implements school.SAMLStore.
func (s *Store) GetSAMLFlow(ctx context.Context, id string) (school.SAMLFlow, error) {
	f, err := s.checkSAMLFlow(scanSAMLFlow(s.q.QueryRow(ctx, `SELECT `+samlFlowCols+` FROM saml_flows WHERE id = $1`, id)))
	return f, s.fail("get saml flow", err)
}

// ConsumeSAMLFlow implements school.SAMLStore.
func (s *Store) ConsumeSAMLFlow(ctx context.Context, id string) (school.SAMLFlow, error) {
	var out school.SAMLFlow
	err := s.tx(ctx, "consume saml flow", func(t *Store) error {
		f, err := t.checkSAMLFlow(scanSAMLFlow(t.q.QueryRow(ctx, `SELECT `+samlFlowCols+` FROM saml_flows WHERE id = $1`+t.b.ForUpdate(), id)))
		if err != nil {
			return err
		}
		now := t.now()
		n, err := t.q.Exec(ctx, `UPDATE saml_flows SET used_at = $2 WHERE id = $1 AND used_at = 0`, id, micros(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("saml flow: %w", school.ErrUsed)
		}
		f.UsedAt = now
		out = f
		return nil
	})
	return out, err
}

const samlKeyCols = `id, sealed_key, cert_der, created_at, retired_at`

// CreateSAMLKey implements school.SAMLStore.
func (s *Store) CreateSAMLKey(ctx context.Context, k school.SAMLKey) (school.SAMLKey, error) {
	if len(k.SealedKey) == 0 || len(k.CertDER) == 0 {
		return k, fmt.Errorf("%w: saml key needs a key and a certificate", school.ErrInvalid)
	}
	k.ID = school.NewID()
	k.CreatedAt = s.now()
	k.RetiredAt = time.Time{}
	err := s.tx(ctx, "create saml key", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO saml_keys (`+samlKeyCols+`) VALUES ($1, $2, $3, $4, 0)`, k.ID, k.SealedKey, k.CertDER, micros(k.CreatedAt))
		return err
	})
	return k, err
}

// ListSAMLKeys implements school.SAMLStore.
func (s *Store) ListSAMLKeys(ctx context.Context) ([]school.SAMLKey, error) {
	out, err := collect(ctx, s.q, func(r Rows) (school.SAMLKey, error) {
		var k school.SAMLKey
		var created, retired int64
		err := r.Scan(&k.ID, &k.SealedKey, &k.CertDER, &created, &retired)
		k.CreatedAt, k.RetiredAt = fromMicros(created), fromMicros(retired)
		return k, err
	}, `SELECT `+samlKeyCols+` FROM saml_keys WHERE retired_at = 0 ORDER BY created_at DESC, id DESC`)
	return out, s.fail("list saml keys", err)
}

// RetireSAMLKey implements school.SAMLStore.
func (s *Store) RetireSAMLKey(ctx context.Context, id string) error {
	return s.tx(ctx, "retire saml key", func(t *Store) error {
		n, err := t.q.Exec(ctx, `UPDATE saml_keys SET retired_at = $2 WHERE id = $1 AND retired_at = 0`, id, micros(t.now()))
		if err == nil && n == 0 {
			return fmt.Errorf("saml key: %w", school.ErrNotFound)
		}
		return err
	})
}

const samlParticipantCols = `id, session_id, pupil_id, platform_id, name_id, name_id_format, session_index, created_at, expires_at`

func scanSAMLParticipant(r Rows) (school.SAMLParticipant, error) {
	var p school.SAMLParticipant
	var created, expires int64
	err := r.Scan(&p.ID, &p.SessionID, &p.PupilID, &p.PlatformID, &p.NameID, &p.NameIDFormat, &p.SessionIndex, &created, &expires)
	p.CreatedAt, p.ExpiresAt = fromMicros(created), fromMicros(expires)
	return p, err
}

// AddSAMLParticipant implements school.SAMLStore.
func (s *Store) AddSAMLParticipant(ctx context.Context, p school.SAMLParticipant) (school.SAMLParticipant, error) {
	if p.SessionID == "" || p.PupilID == "" || p.PlatformID == "" || p.ExpiresAt.IsZero() {
		return p, fmt.Errorf("%w: saml participant needs a session, pupil, platform and expiry", school.ErrInvalid)
	}
	p.ID = school.NewID()
	p.CreatedAt = s.now()
	err := s.write(ctx, "add saml participant", `INSERT INTO saml_participants (`+samlParticipantCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		p.ID, p.SessionID, p.PupilID, p.PlatformID, p.NameID, p.NameIDFormat, p.SessionIndex, micros(p.CreatedAt), micros(p.ExpiresAt))
	return p, err
}

// SAMLParticipants implements school.SAMLStore.
func (s *Store) SAMLParticipants(ctx context.Context, sessionID string) ([]school.SAMLParticipant, error) {
	out, err := collect(ctx, s.q, scanSAMLParticipant, `SELECT `+samlParticipantCols+` FROM saml_participants
		WHERE session_id = $1 AND expires_at > $2 ORDER BY created_at, id`, sessionID, micros(s.now()))
	return out, s.fail("saml participants", err)
}

// SAMLParticipantsByNameID implements school.SAMLStore.
func (s *Store) SAMLParticipantsByNameID(ctx context.Context, platformID, nameID string) ([]school.SAMLParticipant, error) {
	out, err := collect(ctx, s.q, scanSAMLParticipant, `SELECT `+samlParticipantCols+` FROM saml_participants
		WHERE platform_id = $1 AND name_id = $2 AND expires_at > $3 ORDER BY created_at, id`, platformID, nameID, micros(s.now()))
	return out, s.fail("saml participants by name id", err)
}

// DeleteSAMLParticipants implements school.SAMLStore.
func (s *Store) DeleteSAMLParticipants(ctx context.Context, sessionID string) error {
	return s.tx(ctx, "delete saml participants", func(t *Store) error {
		_, err := t.q.Exec(ctx, `DELETE FROM saml_participants WHERE session_id = $1`, sessionID)
		return err
	})
}

// TakeSAMLParticipants implements school.SAMLStore.
func (s *Store) TakeSAMLParticipants(ctx context.Context, f school.SAMLParticipantFilter) ([]school.SAMLParticipant, error) {
	if f.SessionID == "" && f.PupilID == "" && f.SchoolID == "" {
		return nil, fmt.Errorf("%w: a participant filter needs a session, a pupil or a school", school.ErrInvalid)
	}
	var conds []string
	args := []any{micros(s.now())}
	add := func(cond, v string) {
		if v != "" {
			args = append(args, v)
			conds = append(conds, fmt.Sprintf(cond, len(args)))
		}
	}
	add("session_id = $%d", f.SessionID)
	add("pupil_id = $%d", f.PupilID)
	add("platform_id = $%d", f.PlatformID)
	add("pupil_id IN (SELECT id FROM pupils WHERE school_id = $%d)", f.SchoolID)
	where := strings.Join(conds, " AND ")
	var out []school.SAMLParticipant
	err := s.tx(ctx, "take saml participants", func(t *Store) error {
		var err error
		out, err = collect(ctx, t.q, scanSAMLParticipant, `SELECT `+samlParticipantCols+` FROM saml_participants
			WHERE expires_at > $1 AND `+where+` ORDER BY created_at, id`, args...)
		if err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `DELETE FROM saml_participants WHERE `+where+` AND expires_at > $1`, args...)
		return err
	})
	return out, s.fail("take saml participants", err)
}

// pruneSAMLSQL deletes the expired SAML protocol state ($1 is now).
var pruneSAMLSQL = []string{
	`DELETE FROM saml_message_ids WHERE expires_at <= $1`,
	`DELETE FROM saml_flows WHERE expires_at <= $1`,
	`DELETE FROM saml_participants WHERE expires_at <= $1`,
}

// PruneSAML implements school.SAMLStore.
func (s *Store) PruneSAML(ctx context.Context) (int64, error) {
	var total int64
	err := s.tx(ctx, "prune saml", func(t *Store) error {
		total = 0
		now := micros(t.now())
		for _, q := range pruneSAMLSQL {
			n, err := t.q.Exec(ctx, q, now)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, err
}
