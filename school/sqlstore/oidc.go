package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

// nullBytes stores an empty slice as NULL, so unique indexes ignore it.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func joinWords(v []string) string { return strings.Join(v, " ") }

func splitWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

const signingKeyCols = `id, algorithm, generation, sealed_key, public_key, created_at, not_before`

func scanSigningKey(r Rows) (school.OIDCSigningKey, error) {
	var k school.OIDCSigningKey
	var created, notBefore int64
	err := r.Scan(&k.ID, &k.Algorithm, &k.Generation, &k.SealedKey, &k.PublicKey, &created, &notBefore)
	k.CreatedAt, k.NotBefore = fromMicros(created), fromMicros(notBefore)
	return k, err
}

// AddOIDCSigningKey implements school.OIDCStore.
func (s *Store) AddOIDCSigningKey(ctx context.Context, k school.OIDCSigningKey) (school.OIDCSigningKey, error) {
	if k.ID == "" || k.Algorithm == "" || k.Generation < 1 || len(k.SealedKey) == 0 || len(k.PublicKey) == 0 {
		return k, fmt.Errorf("%w: signing key needs an id, algorithm, generation and key material", school.ErrInvalid)
	}
	k.CreatedAt = s.now()
	if k.NotBefore.IsZero() {
		k.NotBefore = k.CreatedAt
	}
	err := s.tx(ctx, "add signing key", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO oidc_signing_keys (`+signingKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			k.ID, k.Algorithm, k.Generation, k.SealedKey, k.PublicKey, micros(k.CreatedAt), micros(k.NotBefore))
		return err
	})
	return k, err
}

// ListOIDCSigningKeys implements school.OIDCStore.
func (s *Store) ListOIDCSigningKeys(ctx context.Context) ([]school.OIDCSigningKey, error) {
	out, err := collect(ctx, s.q, scanSigningKey, `SELECT `+signingKeyCols+` FROM oidc_signing_keys ORDER BY algorithm, generation DESC`)
	return out, s.fail("list signing keys", err)
}

// DeleteOIDCSigningKey implements school.OIDCStore.
func (s *Store) DeleteOIDCSigningKey(ctx context.Context, id string) error {
	return s.tx(ctx, "delete signing key", func(t *Store) error {
		n, err := t.q.Exec(ctx, `DELETE FROM oidc_signing_keys WHERE id = $1`, id)
		if err == nil && n == 0 {
			return fmt.Errorf("signing key: %w", school.ErrNotFound)
		}
		return err
	})
}

const tokenCols = `id, kind, hash, platform_id, pupil_id, session_ref, auth_request_id, family_id, subject, scopes, auth_time, amr, acr, created_at, expires_at, used_at, revoked_at`

func scanToken(r Rows) (school.OIDCToken, error) { return scanTokenRow(r) }

func scanTokenRow(r Row) (school.OIDCToken, error) {
	var tr tokenRow
	if err := r.Scan(tr.dest()...); err != nil {
		return tr.t, err
	}
	return tr.finish(), nil
}

// tokenRow scans tokenCols.
type tokenRow struct {
	t                                       school.OIDCToken
	scopes, amr                             string
	authTime, created, expires, used, revok int64
}

func (r *tokenRow) dest() []any {
	t := &r.t
	return []any{&t.ID, &t.Kind, &t.Hash, &t.PlatformID, &t.PupilID, &t.SessionRef, &t.AuthRequestID, &t.FamilyID, &t.Subject,
		&r.scopes, &r.authTime, &r.amr, &t.ACR, &r.created, &r.expires, &r.used, &r.revok}
}

func (r *tokenRow) finish() school.OIDCToken {
	t := r.t
	t.Scopes, t.AMR = splitWords(r.scopes), splitWords(r.amr)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = fromMicros(r.authTime), fromMicros(r.created), fromMicros(r.expires)
	t.UsedAt, t.RevokedAt = fromMicros(r.used), fromMicros(r.revok)
	return t
}

// CreateOIDCToken implements school.OIDCStore.
func (s *Store) CreateOIDCToken(ctx context.Context, tk school.OIDCToken) (school.OIDCToken, error) {
	switch {
	case tk.Kind != school.TokenAccess && tk.Kind != school.TokenRefresh:
		return tk, fmt.Errorf("%w: token kind %q", school.ErrInvalid, tk.Kind)
	case tk.Kind == school.TokenRefresh && len(tk.Hash) == 0:
		return tk, fmt.Errorf("%w: a refresh token needs a hash", school.ErrInvalid)
	case tk.PlatformID == "" || tk.PupilID == "" || tk.Subject == "" || tk.ExpiresAt.IsZero():
		return tk, fmt.Errorf("%w: token needs a platform, pupil, subject and expiry", school.ErrInvalid)
	}
	tk.CreatedAt = s.now()
	if tk.ID == "" {
		tk.ID = school.NewLogID(tk.CreatedAt)
	}
	// A token issued from an authorization code names the code
	// (code_id, unique): a second redemption violates the index and is
	// ErrUsed, so the code's single use costs no statement of its own;
	// on PostgreSQL the insert goes out with the COMMIT.
	// (A token with a code has no hash: the code's is its only unique
	// key besides the random id.) Other tokens' conflicts (a refresh
	// token's hash) stay ErrConflict.
	var codeID any
	used := ""
	if tk.CodeID != "" {
		codeID, used = tk.CodeID, "authorization code"
	}
	err := s.tx(ctx, "create token", func(t *Store) error {
		return t.writeOnce(ctx, "create token", used, `INSERT INTO oidc_tokens (`+tokenCols+`, code_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, 0, $16)`,
			tk.ID, tk.Kind, nullBytes(tk.Hash), tk.PlatformID, tk.PupilID, tk.SessionRef, tk.AuthRequestID, tk.FamilyID, tk.Subject,
			joinWords(tk.Scopes), micros(tk.AuthTime), joinWords(tk.AMR), tk.ACR, micros(tk.CreatedAt), micros(tk.ExpiresAt), codeID)
	})
	return tk, err
}

// GetOIDCToken implements school.OIDCStore.
func (s *Store) GetOIDCToken(ctx context.Context, id string) (school.OIDCToken, error) {
	t, err := scanTokenRow(s.q.QueryRow(ctx, `SELECT `+tokenCols+` FROM oidc_tokens WHERE id = $1`, id))
	return t, s.fail("get token", one(err, "token"))
}

// OIDCTokenByHash implements school.OIDCStore.
func (s *Store) OIDCTokenByHash(ctx context.Context, hash []byte) (school.OIDCToken, error) {
	if len(hash) == 0 {
		return school.OIDCToken{}, fmt.Errorf("token: %w", school.ErrNotFound)
	}
	t, err := scanTokenRow(s.q.QueryRow(ctx, `SELECT `+tokenCols+` FROM oidc_tokens WHERE hash = $1`, hash))
	return t, s.fail("token by hash", one(err, "token"))
}

// UseOIDCRefreshToken implements school.OIDCStore.
func (s *Store) UseOIDCRefreshToken(ctx context.Context, id string) error {
	return s.tx(ctx, "use refresh token", func(t *Store) error {
		now := micros(t.now())
		n, err := t.q.Exec(ctx, `UPDATE oidc_tokens SET used_at = $2 WHERE id = $1 AND kind = 'refresh' AND used_at = 0 AND revoked_at = 0 AND expires_at > $2`, id, now)
		if err != nil || n == 1 {
			return err
		}
		tk, err := scanTokenRow(t.q.QueryRow(ctx, `SELECT `+tokenCols+` FROM oidc_tokens WHERE id = $1 AND kind = 'refresh'`, id))
		switch {
		case err != nil:
			return one(err, "refresh token")
		case !tk.UsedAt.IsZero() || !tk.RevokedAt.IsZero():
			return fmt.Errorf("refresh token: %w", school.ErrUsed)
		default:
			return fmt.Errorf("refresh token: %w", school.ErrExpired)
		}
	})
}

// tokenWhere builds the WHERE clause of a token filter, starting at
// placeholder $first.
func tokenWhere(f school.OIDCTokenFilter, first int) (string, []any, error) {
	var conds []string
	var args []any
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			conds = append(conds, fmt.Sprintf("%s = $%d", col, first+len(args)-1))
		}
	}
	add("id", f.ID)
	add("pupil_id", f.PupilID)
	add("platform_id", f.PlatformID)
	add("session_ref", f.SessionRef)
	add("family_id", f.FamilyID)
	add("subject", f.Subject)
	if f.SchoolID != "" {
		args = append(args, f.SchoolID)
		conds = append(conds, fmt.Sprintf("pupil_id IN (SELECT id FROM pupils WHERE school_id = $%d)", first+len(args)-1))
	}
	switch {
	case len(conds) == 0:
		return "", nil, fmt.Errorf("%w: empty token filter", school.ErrInvalid)
	case (f.FamilyID != "" || f.SessionRef != "") && f.PupilID == "":
		// Found through the pupil's index: the family and session have
		// none of their own.
		return "", nil, fmt.Errorf("%w: a token filter by family or session names the pupil", school.ErrInvalid)
	case f.Subject != "" && f.PlatformID == "":
		return "", nil, fmt.Errorf("%w: a token filter by subject names the platform", school.ErrInvalid)
	}
	return strings.Join(conds, " AND "), args, nil
}

// RevokeOIDCTokens implements school.OIDCStore.
func (s *Store) RevokeOIDCTokens(ctx context.Context, f school.OIDCTokenFilter) (int, error) {
	where, args, err := tokenWhere(f, 2)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.tx(ctx, "revoke tokens", func(t *Store) error {
		var err error
		n, err = t.q.Exec(ctx, `UPDATE oidc_tokens SET revoked_at = $1 WHERE revoked_at = 0 AND `+where, append([]any{micros(t.now())}, args...)...)
		return err
	})
	return int(n), err
}

// ListOIDCTokens implements school.OIDCStore.
func (s *Store) ListOIDCTokens(ctx context.Context, f school.OIDCTokenFilter) ([]school.OIDCToken, error) {
	first := 2
	if f.Inactive {
		first = 1
	}
	where, args, err := tokenWhere(f, first)
	if err != nil {
		return nil, err
	}
	if !f.Inactive {
		where = `revoked_at = 0 AND used_at = 0 AND expires_at > $1 AND ` + where
		args = append([]any{micros(s.now())}, args...)
	}
	out, err := collect(ctx, s.q, scanToken, `SELECT `+tokenCols+` FROM oidc_tokens WHERE `+where+` ORDER BY created_at, id`, args...)
	return out, s.fail("list tokens", err)
}

const releaseCols = `id, pupil_id, platform_id, platform_name, protocol, via, claims, time`

func scanRelease(r Rows) (school.Release, error) {
	var rel school.Release
	var protocol, claims string
	var at int64
	err := r.Scan(&rel.ID, &rel.PupilID, &rel.PlatformID, &rel.PlatformName, &protocol, &rel.Via, &claims, &at)
	if err != nil {
		return rel, err
	}
	rel.Protocol, rel.Time = school.Protocol(protocol), fromMicros(at)
	if err := json.Unmarshal([]byte(claims), &rel.Claims); err != nil {
		return rel, fmt.Errorf("release %s: stored claims: %w", rel.ID, err)
	}
	return rel, nil
}

// AddRelease implements school.OIDCStore.
func (s *Store) AddRelease(ctx context.Context, r school.Release) (school.Release, error) {
	if r.PupilID == "" || r.PlatformID == "" || r.Via == "" {
		return r, fmt.Errorf("%w: release needs a pupil, a platform and a channel", school.ErrInvalid)
	}
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	r.ID = school.NewLogID(r.Time)
	if r.Claims == nil {
		r.Claims = []string{}
	}
	claims, err := json.Marshal(r.Claims)
	if err != nil {
		return r, err
	}
	err = s.write(ctx, "add release", `INSERT INTO releases (`+releaseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ID, r.PupilID, r.PlatformID, r.PlatformName, string(r.Protocol), r.Via, string(claims), micros(r.Time))
	return r, err
}

// ListReleases implements school.OIDCStore.
func (s *Store) ListReleases(ctx context.Context, pupilID string) ([]school.Release, error) {
	out, err := collect(ctx, s.q, scanRelease, `SELECT `+releaseCols+` FROM releases WHERE pupil_id = $1 ORDER BY time DESC, id`, pupilID)
	return out, s.fail("list releases", err)
}

// PruneOIDC implements school.OIDCStore.
func (s *Store) PruneOIDC(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	err := s.tx(ctx, "prune oidc", func(t *Store) error {
		total = 0
		c := micros(cutoff)
		for _, q := range []string{
			`DELETE FROM oidc_tokens WHERE expires_at < $1`,
			`DELETE FROM logout_notices WHERE expires_at < $1`,
		} {
			n, err := t.q.Exec(ctx, q, c)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, err
}
