package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/elevid/elevid/school"
)

const platformCols = `id, name, protocol, client_id, settings, attributes, subject_type, subject_type_reason, created_at, updated_at`

func scanPlatform(r Rows) (school.Platform, error) { return scanPlatformRow(r) }

func scanPlatformRow(r Row) (school.Platform, error) {
	var p school.Platform
	var protocol, settings, attrs, subject string
	var created, updated int64
	err := r.Scan(&p.ID, &p.Name, &protocol, &p.ClientID, &settings, &attrs, &subject, &p.SubjectTypeReason, &created, &updated)
	if err != nil {
		return p, err
	}
	p.Protocol, p.SubjectType = school.Protocol(protocol), school.SubjectType(subject)
	p.Settings = []byte(settings)
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := grantMemo.decode(attrs, &p.Attributes); err != nil {
		return p, fmt.Errorf("platform %s: stored attributes: %w", p.ID, err)
	}
	return p, nil
}

func platformArgs(p school.Platform) ([]any, error) {
	if len(p.Settings) == 0 {
		p.Settings = []byte("{}")
	}
	if !json.Valid(p.Settings) {
		return nil, fmt.Errorf("%w: platform settings are not JSON", school.ErrInvalid)
	}
	if p.Attributes == nil {
		p.Attributes = []school.AttributeGrant{}
	}
	attrs, err := json.Marshal(p.Attributes)
	if err != nil {
		return nil, err
	}
	return []any{p.ID, p.Name, string(p.Protocol), p.ClientID, string(p.Settings), string(attrs), string(p.SubjectType), p.SubjectTypeReason, micros(p.CreatedAt), micros(p.UpdatedAt)}, nil
}

// CreatePlatform implements school.PlatformStore.
func (s *Store) CreatePlatform(ctx context.Context, p school.Platform) (school.Platform, error) {
	if p.SubjectType == "" {
		p.SubjectType = school.SubjectPairwise
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	p.ID = school.NewID()
	p.CreatedAt = s.now()
	p.UpdatedAt = p.CreatedAt
	args, err := platformArgs(p)
	if err != nil {
		return p, err
	}
	err = s.tx(ctx, "create platform", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO platforms (`+platformCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
		return err
	})
	return p, err
}

// GetPlatform implements school.PlatformStore.
func (s *Store) GetPlatform(ctx context.Context, id string) (school.Platform, error) {
	p, err := scanPlatformRow(s.q.QueryRow(ctx, `SELECT `+platformCols+` FROM platforms WHERE id = $1`, id))
	return p, s.fail("get platform", one(err, "platform"))
}

// PlatformByClientID implements school.PlatformStore.
func (s *Store) PlatformByClientID(ctx context.Context, clientID string) (school.Platform, error) {
	p, err := scanPlatformRow(s.q.QueryRow(ctx, `SELECT `+platformCols+` FROM platforms WHERE client_id = $1`, clientID))
	return p, s.fail("platform by client id", one(err, "platform"))
}

// ListPlatforms implements school.PlatformStore.
func (s *Store) ListPlatforms(ctx context.Context) ([]school.Platform, error) {
	out, err := collect(ctx, s.q, scanPlatform, `SELECT `+platformCols+` FROM platforms ORDER BY name, id`)
	return out, s.fail("list platforms", err)
}

// UpdatePlatform implements school.PlatformStore.
func (s *Store) UpdatePlatform(ctx context.Context, id string, fn func(school.Platform) (school.Platform, error)) (school.Platform, error) {
	var out school.Platform
	err := s.tx(ctx, "update platform", func(t *Store) error {
		old, err := scanPlatformRow(t.q.QueryRow(ctx, `SELECT `+platformCols+` FROM platforms WHERE id = $1`+t.b.ForUpdate(), id))
		if err != nil {
			return one(err, "platform")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.ID, nw.CreatedAt, nw.UpdatedAt = old.ID, old.CreatedAt, t.now()
		if err := nw.Validate(); err != nil {
			return err
		}
		args, err := platformArgs(nw)
		if err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE platforms SET name = $2, protocol = $3, client_id = $4, settings = $5, attributes = $6, subject_type = $7, subject_type_reason = $8, updated_at = $10 WHERE id = $1 AND created_at = $9`, args...)
		out = nw
		return err
	})
	return out, err
}

// DeletePlatform implements school.PlatformStore.
func (s *Store) DeletePlatform(ctx context.Context, id string) error {
	return s.tx(ctx, "delete platform", func(t *Store) error {
		n, err := t.q.Exec(ctx, `DELETE FROM platforms WHERE id = $1`, id)
		if err == nil && n == 0 {
			return fmt.Errorf("platform: %w", school.ErrNotFound)
		}
		return err
	})
}

// EnrolmentAllowed and ReleaseAllowed (school.ConsentStore) are in consent.go.
