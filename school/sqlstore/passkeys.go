package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

// SaveCeremony implements school.CeremonyStore.
func (s *Store) SaveCeremony(ctx context.Context, c school.Ceremony) error {
	if c.ID == "" || len(c.Data) == 0 || c.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: ceremony needs an id, data and an expiry", school.ErrInvalid)
	}
	_, err := s.q.Exec(ctx, `INSERT INTO webauthn_ceremonies (id, kind, subject_id, ref, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		c.ID, string(c.Kind), c.SubjectID, c.Ref, c.Data, micros(s.now()), micros(c.ExpiresAt))
	return s.fail("save ceremony", err)
}

// ConsumeCeremony implements school.CeremonyStore.
func (s *Store) ConsumeCeremony(ctx context.Context, id string) (school.Ceremony, error) {
	var c school.Ceremony
	var kind string
	var created, expires int64
	// One statement: of concurrent consumers exactly one gets the row.
	err := s.q.QueryRow(ctx, `DELETE FROM webauthn_ceremonies WHERE id = $1 RETURNING id, kind, subject_id, ref, data, created_at, expires_at`, id).
		Scan(&c.ID, &kind, &c.SubjectID, &c.Ref, &c.Data, &created, &expires)
	if err != nil {
		return c, s.fail("consume ceremony", one(err, "ceremony"))
	}
	c.Kind, c.CreatedAt, c.ExpiresAt = school.CeremonyKind(kind), fromMicros(created), fromMicros(expires)
	if !s.now().Before(c.ExpiresAt) {
		return school.Ceremony{}, fmt.Errorf("ceremony: %w", school.ErrExpired)
	}
	return c, nil
}

const codeCols = `hash, pupil_id, school_id, created_by, created_at, expires_at, used_at, locator`

func scanCodeRow(r Row) (school.EnrolmentCode, error) {
	var c school.EnrolmentCode
	var created, expires, used int64
	err := r.Scan(&c.Hash, &c.PupilID, &c.SchoolID, &c.CreatedBy, &created, &expires, &used, &c.Locator)
	c.CreatedAt, c.ExpiresAt, c.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return c, err
}

// CreateEnrolmentCode implements school.EnrolmentCodeStore.
func (s *Store) CreateEnrolmentCode(ctx context.Context, c school.EnrolmentCode) (school.EnrolmentCode, error) {
	if len(c.Hash) != 32 || c.PupilID == "" {
		return c, fmt.Errorf("%w: an enrolment code needs a SHA-256 hash and a pupil", school.ErrInvalid)
	}
	c.CreatedAt = s.now()
	if !c.ExpiresAt.After(c.CreatedAt) {
		return c, fmt.Errorf("%w: enrolment code expires before it is issued", school.ErrInvalid)
	}
	err := s.tx(ctx, "create enrolment code", func(t *Store) error {
		p, err := scanPupilRow(t.q.QueryRow(ctx, `SELECT `+pupilCols+` FROM pupils p WHERE id = $1`+t.b.ForUpdate(), c.PupilID))
		if err != nil {
			return one(err, "pupil")
		}
		if p.Status != school.PupilActive {
			return fmt.Errorf("%w: pupil is %s", school.ErrInvalid, p.Status)
		}
		ok, err := t.EnrolmentAllowed(ctx, p.ID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: enrolment of the pupil is not allowed (no consent)", school.ErrInvalid)
		}
		c.SchoolID = p.SchoolID
		// A new code supersedes the pupil's unused ones: they expire now
		// (so that a pupil typing the old card is told so, and is not
		// counted as a guesser).
		if _, err := t.q.Exec(ctx, `UPDATE enrolment_codes SET expires_at = $2 WHERE pupil_id = $1 AND used_at = 0 AND expires_at > $2`, p.ID, micros(c.CreatedAt)); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `INSERT INTO enrolment_codes (`+codeCols+`) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)`,
			c.Hash, c.PupilID, c.SchoolID, c.CreatedBy, micros(c.CreatedAt), micros(c.ExpiresAt), c.Locator)
		return err
	})
	return c, err
}

func (s *Store) checkCode(c school.EnrolmentCode) error {
	switch {
	case !c.UsedAt.IsZero():
		return fmt.Errorf("enrolment code: %w", school.ErrUsed)
	case !s.now().Before(c.ExpiresAt):
		return fmt.Errorf("enrolment code: %w", school.ErrExpired)
	}
	return nil
}

// EnrolmentCodeByHash implements school.EnrolmentCodeStore.
func (s *Store) EnrolmentCodeByHash(ctx context.Context, hash []byte) (school.EnrolmentCode, error) {
	c, err := scanCodeRow(s.q.QueryRow(ctx, `SELECT `+codeCols+` FROM enrolment_codes WHERE hash = $1`, hash))
	if err != nil {
		return c, s.fail("enrolment code", one(err, "enrolment code"))
	}
	return c, s.checkCode(c)
}

// ConsumeEnrolmentCode implements school.EnrolmentCodeStore.
func (s *Store) ConsumeEnrolmentCode(ctx context.Context, hash []byte) (school.EnrolmentCode, error) {
	now := s.now()
	// The conditional UPDATE is the atomic step: only one caller sees a
	// row changed.
	n, err := s.q.Exec(ctx, `UPDATE enrolment_codes SET used_at = $2 WHERE hash = $1 AND used_at = 0 AND expires_at > $2`, hash, micros(now))
	if err != nil {
		return school.EnrolmentCode{}, s.fail("consume enrolment code", err)
	}
	c, err := scanCodeRow(s.q.QueryRow(ctx, `SELECT `+codeCols+` FROM enrolment_codes WHERE hash = $1`, hash))
	if err != nil {
		return c, s.fail("consume enrolment code", one(err, "enrolment code"))
	}
	if n == 0 {
		if err := s.checkCode(c); err != nil {
			return c, err
		}
		return c, fmt.Errorf("enrolment code: %w", school.ErrUsed)
	}
	return c, nil
}

// LiveEnrolmentCodes implements school.EnrolmentCodeStore.
func (s *Store) LiveEnrolmentCodes(ctx context.Context, locator string) ([]school.EnrolmentCode, error) {
	if locator == "" {
		return nil, nil
	}
	out, err := collect(ctx, s.q, scanCode, `SELECT `+codeCols+` FROM enrolment_codes WHERE locator = $1 AND used_at = 0 AND expires_at > $2 ORDER BY created_at`,
		locator, micros(s.now()))
	return out, s.fail("live enrolment codes", err)
}

func scanCode(r Rows) (school.EnrolmentCode, error) { return scanCodeRow(r) }

// PendingEnrolmentCode implements school.EnrolmentCodeStore.
func (s *Store) PendingEnrolmentCode(ctx context.Context, pupilID string) (bool, error) {
	var n int64
	err := s.q.QueryRow(ctx, `SELECT COUNT(*) FROM enrolment_codes WHERE pupil_id = $1 AND used_at = 0 AND expires_at > $2`,
		pupilID, micros(s.now())).Scan(&n)
	return n > 0, s.fail("pending enrolment code", err)
}

const sessionCols = `id_hash, kind, subject_id, school_id, created_at, last_seen_at, expires_at, idle_timeout, auth_time, amr, acr, user_verified, credential_id, user_agent, revoked_at, revoke_reason`

func scanSession(r Rows) (school.Session, error) { return scanSessionRow(r) }

func scanSessionRow(r Row) (school.Session, error) {
	var ss school.Session
	var kind, amr string
	var created, seen, expires, idle, auth, revoked int64
	err := r.Scan(&ss.Ref, &kind, &ss.SubjectID, &ss.SchoolID, &created, &seen, &expires, &idle, &auth, &amr, &ss.ACR,
		&ss.UserVerified, &ss.CredentialID, &ss.UserAgent, &revoked, &ss.RevokeReason)
	ss.Kind = school.SessionKind(kind)
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	ss.IdleTimeout = time.Duration(idle) * time.Microsecond
	ss.AuthTime, ss.RevokedAt = fromMicros(auth), fromMicros(revoked)
	if amr != "" {
		ss.AMR = strings.Split(amr, " ")
	}
	return ss, err
}

// CreateSession implements school.SessionStore.
func (s *Store) CreateSession(ctx context.Context, ss school.Session) (school.Session, error) {
	ss, args, err := s.newSession(ss)
	if err != nil {
		return ss, err
	}
	// Inside a transaction the insert may go out with the COMMIT: a
	// second session of one ceremony fails there, ErrConflict.
	return ss, s.write(ctx, "create session", `INSERT INTO sessions (`+sessionCols+`, ceremony) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, '', $15)`, args...)
}

// SignIn implements school.SessionStore. On PostgreSQL the credential's
// update and the session's insert are one statement (joined to the
// transaction when inside one): the insert takes its row from the
// update's RETURNING, so a credential that is gone makes no session (0
// rows: ErrNotFound). SQLite runs the two in a transaction.
func (s *Store) SignIn(ctx context.Context, use school.CredentialUse, ss school.Session) (school.Session, error) {
	if len(ss.CredentialID) == 0 {
		return ss, fmt.Errorf("%w: a sign-in names its credential", school.ErrInvalid)
	}
	if !s.b.WritesInWith() {
		err := s.tx(ctx, "sign in", func(t *Store) error {
			if err := t.RecordCredentialUse(ctx, ss.CredentialID, use); err != nil {
				return err
			}
			var err error
			ss, err = t.CreateSession(ctx, ss)
			return err
		})
		return ss, err
	}
	ss, args, err := s.newSession(ss)
	if err != nil {
		return ss, err
	}
	args = append(args, int64(use.SignCount), use.CloneWarning, use.BackupState, micros(use.At))
	n, err := s.exec(ctx, "sign in", `WITH used AS (
		UPDATE credentials SET sign_count = $16, clone_warning = (clone_warning OR $17), backup_state = $18, last_used_at = $19
		WHERE id = $13 RETURNING id)
		INSERT INTO sessions (`+sessionCols+`, ceremony)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::bigint, $10::text, $11::text,
			$12::boolean, used.id, $14::text, 0, '', $15::text FROM used`, args...)
	if err == nil && n == 0 {
		err = fmt.Errorf("credential: %w", school.ErrNotFound)
	}
	return ss, err
}

// newSession checks and completes a new session (id, ref, times) and
// returns the arguments $1 … $15 of its insert.
func (s *Store) newSession(ss school.Session) (school.Session, []any, error) {
	if !ss.Kind.Valid() || ss.SubjectID == "" || ss.ExpiresAt.IsZero() {
		return ss, nil, fmt.Errorf("%w: a session needs a kind, a subject and an expiry", school.ErrInvalid)
	}
	ss.ID = school.NewID() + school.NewID() // 256 random bits
	ss.Ref = school.SessionRef(ss.ID)
	ss.CreatedAt = s.now()
	ss.LastSeenAt = ss.CreatedAt
	if ss.AuthTime.IsZero() {
		ss.AuthTime = ss.CreatedAt
	}
	ss.RevokedAt, ss.RevokeReason = time.Time{}, ""
	if len(ss.UserAgent) > 200 {
		ss.UserAgent = ss.UserAgent[:200]
	}
	var ceremony any
	if ss.Ceremony != "" {
		ceremony = ss.Ceremony
	}
	return ss, []any{ss.Ref, string(ss.Kind), ss.SubjectID, ss.SchoolID, micros(ss.CreatedAt), micros(ss.LastSeenAt), micros(ss.ExpiresAt),
		ss.IdleTimeout.Microseconds(), micros(ss.AuthTime), strings.Join(ss.AMR, " "), ss.ACR, ss.UserVerified, ss.CredentialID, ss.UserAgent, ceremony}, nil
}

// ceremonyKeepMicros is school.CeremonyMaxAge in the store's microseconds.
var ceremonyKeepMicros = fmt.Sprint(school.CeremonyMaxAge.Microseconds())

// touchEvery is how stale LastSeenAt may get before TouchSession writes.
const touchEvery = time.Minute

// TouchSession implements school.SessionStore.
func (s *Store) TouchSession(ctx context.Context, id string) (school.Session, error) {
	ref := school.SessionRef(id)
	ss, err := scanSessionRow(s.q.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id_hash = $1`, ref))
	if err != nil {
		return ss, s.fail("touch session", one(err, "session"))
	}
	return s.touch(ctx, ss)
}

// TouchSessionConsent implements school.SessionStore: the session's row
// joined to the consent state's query with its subject as the pupil.
func (s *Store) TouchSessionConsent(ctx context.Context, id, platformID string) (school.Session, school.ConsentState, error) {
	rows, err := s.q.Query(ctx, sessionConsentQuery, school.SessionRef(id), platformID)
	if err != nil {
		return school.Session{}, school.ConsentState{}, s.fail("touch session", err)
	}
	defer rows.Close()
	var (
		ss    school.Session
		found bool
		acc   = consentRows{platformID: platformID} // acc.found: the subject is a pupil
	)
	for rows.Next() {
		var status string
		ss, err = scanSessionRow(scanFunc(func(dest ...any) error {
			return rows.Scan(append(dest, append([]any{&acc.st.SchoolID, &status}, acc.dest()...)...)...)
		}))
		if err != nil {
			return school.Session{}, school.ConsentState{}, s.fail("touch session", err)
		}
		found, acc.st.PupilID = true, ss.SubjectID
		if status == "" {
			continue // the subject is no pupil: the LEFT JOIN found none
		}
		if err := acc.add(status); err != nil {
			return school.Session{}, school.ConsentState{}, s.fail("touch session", err)
		}
	}
	if err := rows.Err(); err != nil {
		return school.Session{}, school.ConsentState{}, s.fail("touch session", err)
	}
	if !found {
		return school.Session{}, school.ConsentState{}, fmt.Errorf("session: %w", school.ErrNotFound)
	}
	if ss, err = s.touch(ctx, ss); err != nil {
		return school.Session{}, school.ConsentState{}, err
	}
	if !acc.found {
		return ss, school.ConsentState{}, nil
	}
	return ss, acc.st, nil
}

var sessionConsentQuery = `SELECT s.` + strings.ReplaceAll(sessionCols, ", ", ", s.") + `, COALESCE(p.school_id, ''), COALESCE(p.status, ''), ` + consentStateCols + `
	FROM sessions s LEFT JOIN pupils p ON p.id = s.subject_id
	` + consentStateJoins + `
	WHERE s.id_hash = $1`

// scanFunc is a Row of a scan function.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// touch checks that the session read is usable now and records its use
// (at most once every touchEvery).
func (s *Store) touch(ctx context.Context, ss school.Session) (school.Session, error) {
	now := s.now()
	switch {
	case !ss.RevokedAt.IsZero():
		return school.Session{}, fmt.Errorf("session: %w", school.ErrNotFound)
	case !ss.ActiveAt(now):
		return school.Session{}, fmt.Errorf("session: %w", school.ErrExpired)
	}
	if now.Sub(ss.LastSeenAt) >= touchEvery {
		if _, err := s.q.Exec(ctx, `UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2`, ss.Ref, micros(now)); err != nil {
			return ss, s.fail("touch session", err)
		}
		ss.LastSeenAt = now
	}
	return ss, nil
}

// ListSessions implements school.SessionStore.
func (s *Store) ListSessions(ctx context.Context, subjectID string) ([]school.Session, error) {
	now := s.now()
	all, err := collect(ctx, s.q, scanSession, `SELECT `+sessionCols+` FROM sessions WHERE subject_id = $1 AND revoked_at = 0 AND expires_at > $2 ORDER BY created_at DESC, id_hash`,
		subjectID, micros(now))
	if err != nil {
		return nil, s.fail("list sessions", err)
	}
	out := all[:0]
	for _, ss := range all {
		if ss.ActiveAt(now) {
			out = append(out, ss)
		}
	}
	return out, nil
}

// RevokeSession implements school.SessionStore.
func (s *Store) RevokeSession(ctx context.Context, subjectID, ref, reason string) error {
	n, err := s.q.Exec(ctx, `UPDATE sessions SET revoked_at = $3, revoke_reason = $4 WHERE id_hash = $1 AND subject_id = $2 AND revoked_at = 0`,
		ref, subjectID, micros(s.now()), reason)
	if err == nil && n == 0 {
		err = fmt.Errorf("session: %w", school.ErrNotFound)
	}
	return s.fail("revoke session", err)
}

// RevokeSessions implements school.SessionStore.
func (s *Store) RevokeSessions(ctx context.Context, subjectID, reason string) (int, error) {
	now := micros(s.now())
	n, err := s.q.Exec(ctx, `UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE subject_id = $1 AND revoked_at = 0 AND expires_at > $2`,
		subjectID, now, reason)
	return int(n), s.fail("revoke sessions", err)
}

// ExpiredPupilSessions implements school.SessionStore.
func (s *Store) ExpiredPupilSessions(ctx context.Context, now time.Time, limit int) ([]school.Session, error) {
	if limit <= 0 {
		limit = 100
	}
	n := micros(now)
	out, err := collect(ctx, s.q, scanSession, `SELECT `+sessionCols+` FROM sessions
		WHERE revoked_at = 0 AND kind = 'pupil' AND (expires_at <= $1 OR (idle_timeout > 0 AND last_seen_at + idle_timeout <= $1))
		ORDER BY expires_at, id_hash LIMIT `+fmt.Sprint(limit), n)
	return out, s.fail("expired pupil sessions", err)
}

// HitRate implements school.RateStore.
func (s *Store) HitRate(ctx context.Context, key string, window time.Duration) (int, error) {
	now := s.now()
	var n int64
	// One statement, so concurrent hits on all nodes count exactly.
	err := s.q.QueryRow(ctx, `INSERT INTO rate_counters (key, window_start, window_end, count) VALUES ($1, $2, $3, 1)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN rate_counters.window_end <= excluded.window_start THEN 1 ELSE rate_counters.count + 1 END,
			window_start = CASE WHEN rate_counters.window_end <= excluded.window_start THEN excluded.window_start ELSE rate_counters.window_start END,
			window_end = CASE WHEN rate_counters.window_end <= excluded.window_start THEN excluded.window_end ELSE rate_counters.window_end END
		RETURNING count`, key, micros(now), micros(now.Add(window))).Scan(&n)
	return int(n), s.fail("hit rate", err)
}

// RateCount implements school.RateStore.
func (s *Store) RateCount(ctx context.Context, key string, window time.Duration) (int, error) {
	var n int64
	err := s.q.QueryRow(ctx, `SELECT count FROM rate_counters WHERE key = $1 AND window_end > $2`, key, micros(s.now())).Scan(&n)
	if errors.Is(err, ErrNoRows) {
		return 0, nil
	}
	return int(n), s.fail("rate count", err)
}

// PurgeAuthnState implements school.AuthnStore.
func (s *Store) PurgeAuthnState(ctx context.Context, cutoff time.Time) (int64, error) {
	c := micros(cutoff)
	var total int64
	err := s.tx(ctx, "purge authn state", func(t *Store) error {
		total = 0
		for _, q := range []string{
			`DELETE FROM webauthn_ceremonies WHERE expires_at < $1`,
			`DELETE FROM enrolment_codes WHERE expires_at < $1`,
			// Rows younger than school.CeremonyMaxAge stay: their
			// ceremony must not be replayable.
			`DELETE FROM sessions WHERE created_at < $1 - ` + ceremonyKeepMicros + ` AND ((revoked_at <> 0 AND revoked_at < $1) OR (expires_at < $1 AND (kind <> 'pupil' OR expires_at < $1 - 86400000000)))`,
			`DELETE FROM rate_counters WHERE window_end < $1`,
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
