package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

const enrolmentCols = `pupil_id, school_id, state, consent_rule, age, flagged, started_by, created_at, updated_at, expires_at`

// prefixRow scans the leading columns of a row into first, the rest into
// the destinations its scanner gives.
type prefixRow struct {
	r     Row
	first []any
}

func (p prefixRow) Scan(dest ...any) error { return p.r.Scan(append(p.first, dest...)...) }

func scanEnrolment(r Rows) (school.Enrolment, error) { return scanEnrolmentRow(r) }

func scanEnrolmentRow(r Row) (school.Enrolment, error) {
	var e school.Enrolment
	var state, rule string
	var age int64
	var created, updated, expires int64
	err := r.Scan(&e.PupilID, &e.SchoolID, &state, &rule, &age, &e.Flagged, &e.StartedBy, &created, &updated, &expires)
	e.State, e.Rule, e.Age = school.EnrolmentState(state), school.ConsentRule(rule), int(age)
	e.CreatedAt, e.UpdatedAt, e.ExpiresAt = fromMicros(created), fromMicros(updated), fromMicros(expires)
	return e, err
}

// PutEnrolment implements school.ConsentFlowStore.
func (s *Store) PutEnrolment(ctx context.Context, e school.Enrolment) (school.Enrolment, error) {
	if e.PupilID == "" || e.State == "" || e.Rule == "" {
		return e, fmt.Errorf("%w: enrolment needs a pupil, a state and a rule", school.ErrInvalid)
	}
	err := s.tx(ctx, "put enrolment", func(t *Store) error {
		var schoolID string
		if err := t.q.QueryRow(ctx, `SELECT school_id FROM pupils WHERE id = $1`, e.PupilID).Scan(&schoolID); err != nil {
			if errors.Is(err, ErrNoRows) {
				return fmt.Errorf("%w: unknown pupil", school.ErrInvalid)
			}
			return err
		}
		e.SchoolID = schoolID
		e.CreatedAt = t.now()
		e.UpdatedAt = e.CreatedAt
		if _, err := t.q.Exec(ctx, `DELETE FROM enrolments WHERE pupil_id = $1`, e.PupilID); err != nil {
			return err
		}
		_, err := t.q.Exec(ctx, `INSERT INTO enrolments (`+enrolmentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.PupilID, e.SchoolID, string(e.State), string(e.Rule), e.Age, e.Flagged, e.StartedBy,
			micros(e.CreatedAt), micros(e.UpdatedAt), micros(e.ExpiresAt))
		return err
	})
	return e, err
}

// GetEnrolment implements school.ConsentFlowStore.
func (s *Store) GetEnrolment(ctx context.Context, pupilID string) (school.Enrolment, error) {
	e, err := scanEnrolmentRow(s.q.QueryRow(ctx, `SELECT `+enrolmentCols+` FROM enrolments WHERE pupil_id = $1`, pupilID))
	return e, s.fail("get enrolment", one(err, "enrolment"))
}

// UpdateEnrolment implements school.ConsentFlowStore.
func (s *Store) UpdateEnrolment(ctx context.Context, pupilID string, fn func(school.Enrolment) (school.Enrolment, error)) (school.Enrolment, error) {
	var out school.Enrolment
	err := s.tx(ctx, "update enrolment", func(t *Store) error {
		old, err := scanEnrolmentRow(t.q.QueryRow(ctx, `SELECT `+enrolmentCols+` FROM enrolments WHERE pupil_id = $1`+t.b.ForUpdate(), pupilID))
		if err != nil {
			return one(err, "enrolment")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.PupilID, nw.SchoolID, nw.Rule, nw.Age, nw.Flagged, nw.StartedBy, nw.CreatedAt = old.PupilID, old.SchoolID, old.Rule, old.Age, old.Flagged, old.StartedBy, old.CreatedAt
		nw.UpdatedAt = t.now()
		_, err = t.q.Exec(ctx, `UPDATE enrolments SET state = $2, expires_at = $3, updated_at = $4 WHERE pupil_id = $1`,
			pupilID, string(nw.State), micros(nw.ExpiresAt), micros(nw.UpdatedAt))
		out = nw
		return err
	})
	return out, err
}

// ListEnrolments implements school.ConsentFlowStore.
func (s *Store) ListEnrolments(ctx context.Context, schoolID string) ([]school.Enrolment, error) {
	out, err := collect(ctx, s.q, scanEnrolment, `SELECT `+enrolmentCols+` FROM enrolments WHERE school_id = $1 ORDER BY created_at, pupil_id`, schoolID)
	return out, s.fail("list enrolments", err)
}

const consentCols = `id, pupil_id, guardian_id, platform_id, decision, attributes, refused, decided_at, withdrawn_at, verified_subject`

func scanConsent(r Rows) (school.Consent, error) {
	var c school.Consent
	var guardian, platform *string
	var attrs, refused string
	var decided, withdrawn int64
	if err := r.Scan(&c.ID, &c.PupilID, &guardian, &platform, &c.Decision, &attrs, &refused, &decided, &withdrawn, &c.VerifiedSubject); err != nil {
		return c, err
	}
	if guardian != nil {
		c.GuardianID = *guardian
	}
	if platform != nil {
		c.PlatformID = *platform
	}
	c.DecidedAt, c.WithdrawnAt = fromMicros(decided), fromMicros(withdrawn)
	return c, decodeConsentAttrs(&c, attrs, refused)
}

// decodeConsentAttrs reads the stored JSON of a consent's attributes and
// refusals.
func decodeConsentAttrs(c *school.Consent, attrs, refused string) error {
	if attrs != "" {
		if err := grantMemo.decode(attrs, &c.Attributes); err != nil {
			return fmt.Errorf("consent %s: stored attributes: %w", c.ID, err)
		}
	}
	if refused != "" {
		if err := refusalMemo.decode(refused, &c.Refused); err != nil {
			return fmt.Errorf("consent %s: stored refusals: %w", c.ID, err)
		}
	}
	return nil
}

func jsonText[T any](v []T) (string, error) {
	if v == nil {
		v = []T{}
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// SetConsent implements school.ConsentFlowStore.
func (s *Store) SetConsent(ctx context.Context, c school.Consent) (school.Consent, error) {
	switch {
	case c.PupilID == "" || c.GuardianID == "" || c.PlatformID == "":
		return c, fmt.Errorf("%w: a consent needs a pupil, a guardian and a platform", school.ErrInvalid)
	case c.Decision != school.DecisionGranted && c.Decision != school.DecisionDenied && c.Decision != school.DecisionWithdrawn:
		return c, fmt.Errorf("%w: consent decision %q", school.ErrInvalid, c.Decision)
	}
	c.ID = school.NewID()
	c.DecidedAt = s.now()
	c.WithdrawnAt = time.Time{}
	if c.Decision == school.DecisionWithdrawn {
		c.WithdrawnAt = c.DecidedAt
	}
	for _, a := range c.Attributes {
		if a.Name == "" {
			return c, fmt.Errorf("%w: a consented attribute needs a name", school.ErrInvalid)
		}
	}
	err := s.tx(ctx, "set consent", func(t *Store) error {
		if c.Attributes == nil && c.Decision == school.DecisionGranted {
			pf, err := scanPlatformRow(t.q.QueryRow(ctx, `SELECT `+platformCols+` FROM platforms WHERE id = $1`, c.PlatformID))
			if err != nil {
				return one(err, "platform")
			}
			c.Attributes = pf.Attributes
		}
		attrs, err := jsonText(c.Attributes)
		if err != nil {
			return err
		}
		refused, err := jsonText(c.Refused)
		if err != nil {
			return err
		}
		if _, err := t.q.Exec(ctx, `DELETE FROM consents WHERE pupil_id = $1 AND guardian_id = $2 AND platform_id = $3`,
			c.PupilID, c.GuardianID, c.PlatformID); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `INSERT INTO consents (`+consentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			c.ID, c.PupilID, c.GuardianID, c.PlatformID, c.Decision, attrs, refused, micros(c.DecidedAt), micros(c.WithdrawnAt), c.VerifiedSubject)
		return err
	})
	return c, err
}

// ListConsents implements school.ConsentFlowStore.
func (s *Store) ListConsents(ctx context.Context, pupilID string) ([]school.Consent, error) {
	out, err := collect(ctx, s.q, scanConsent, `SELECT `+consentCols+` FROM consents WHERE pupil_id = $1 ORDER BY decided_at, id`, pupilID)
	return out, s.fail("list consents", err)
}

// ClearConsents implements school.ConsentFlowStore.
func (s *Store) ClearConsents(ctx context.Context, pupilID string) (int, error) {
	var n int64
	err := s.tx(ctx, "clear consents", func(t *Store) error {
		var err error
		n, err = t.q.Exec(ctx, `DELETE FROM consents WHERE pupil_id = $1`, pupilID)
		return err
	})
	return int(n), err
}

// ConsentState implements school.ConsentFlowStore: one query reads the
// pupil, the flow, the guardians on record with their decisions about
// platformID and the school's activation of it. Decisions of guardians no
// longer on record, and decisions about other platforms, are not read
// (school.ConsentCovers ignores them): one row per guardian, however many
// platforms the guardians have decided on.
func (s *Store) ConsentState(ctx context.Context, pupilID, platformID string) (school.ConsentState, error) {
	st, err := s.consentState(ctx, pupilID, platformID)
	return st, s.fail("consent state", err)
}

func (s *Store) consentState(ctx context.Context, pupilID, platformID string) (school.ConsentState, error) {
	acc := consentRows{st: school.ConsentState{PupilID: pupilID}, platformID: platformID}
	rows, err := s.q.Query(ctx, `SELECT p.school_id, p.status, `+consentStateCols+`
		FROM pupils p `+consentStateJoins+`
		WHERE p.id = $1`, pupilID, platformID)
	if err != nil {
		return acc.st, err
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		if err := rows.Scan(append([]any{&acc.st.SchoolID, &status}, acc.dest()...)...); err != nil {
			return acc.st, err
		}
		if err := acc.add(status); err != nil {
			return acc.st, err
		}
	}
	return acc.done(rows.Err())
}

// consentStateCols and consentStateJoins are the consent state's part of
// a query on pupils p with $2 the platform (consentRows scans them).
const (
	consentStateCols = `COALESCE(e.state, ''), COALESCE(e.consent_rule, ''),
			(SELECT COUNT(*) FROM platform_activations a WHERE a.school_id = p.school_id AND a.platform_id = $2),
			COALESCE((SELECT pf.attributes FROM platforms pf WHERE pf.id = $2), ''),
			COALESCE(g.guardian_id, ''), COALESCE(c.id, ''), COALESCE(c.platform_id, ''), COALESCE(c.decision, ''),
			COALESCE(c.attributes, ''), COALESCE(c.refused, ''), COALESCE(c.withdrawn_at, 0)`
	consentStateJoins = `LEFT JOIN enrolments e ON e.pupil_id = p.id
		LEFT JOIN pupil_guardians g ON g.pupil_id = p.id
		LEFT JOIN consents c ON c.pupil_id = p.id AND c.guardian_id = g.guardian_id AND c.platform_id = $2`
)

// consentRows gathers a consent state from rows of consentStateCols (a
// consent may repeat when other joins multiply the rows).
type consentRows struct {
	st         school.ConsentState
	platformID string
	found      bool
	row        struct {
		state, rule, pfAttrs, guardian, id, platform, decision, attrs, refused string
		activated, withdrawn                                                   int64
	}
}

func (a *consentRows) dest() []any {
	r := &a.row
	return []any{&r.state, &r.rule, &r.activated, &r.pfAttrs, &r.guardian, &r.id, &r.platform, &r.decision, &r.attrs, &r.refused, &r.withdrawn}
}

// add takes in the scanned row, with the pupil's status.
func (a *consentRows) add(status string) error {
	r, st := &a.row, &a.st
	if !a.found && r.pfAttrs != "" {
		st.PlatformFound = true
		if err := grantMemo.decode(r.pfAttrs, &st.Attributes); err != nil {
			return fmt.Errorf("platform %s: stored attributes: %w", a.platformID, err)
		}
	}
	a.found = true
	st.PupilStatus, st.Enrolment, st.Rule, st.Activated = school.PupilStatus(status), school.EnrolmentState(r.state), school.ConsentRule(r.rule), r.activated > 0
	if r.guardian != "" && !slices.Contains(st.Guardians, r.guardian) {
		st.Guardians = append(st.Guardians, r.guardian)
	}
	if r.id != "" && !slices.ContainsFunc(st.Consents, func(c school.Consent) bool { return c.ID == r.id }) {
		c := school.Consent{ID: r.id, PupilID: st.PupilID, GuardianID: r.guardian, PlatformID: r.platform,
			Decision: r.decision, WithdrawnAt: fromMicros(r.withdrawn)}
		if err := decodeConsentAttrs(&c, r.attrs, r.refused); err != nil {
			return err
		}
		st.Consents = append(st.Consents, c)
	}
	return nil
}

// done finishes the state after the rows (err is rows.Err()).
func (a *consentRows) done(err error) (school.ConsentState, error) {
	if err != nil {
		return a.st, err
	}
	if !a.found {
		return a.st, fmt.Errorf("pupil: %w", school.ErrNotFound)
	}
	return a.st, nil
}

// ReleaseInputs implements school.ConsentFlowStore: the consent state's
// query with the school and the pupil's classes joined in.
func (s *Store) ReleaseInputs(ctx context.Context, pupilID, platformID string) (school.PupilProfile, school.ConsentState, error) {
	prof, st, err := s.releaseInputs(ctx, pupilID, platformID)
	return prof, st, s.fail("release inputs", err)
}

func (s *Store) releaseInputs(ctx context.Context, pupilID, platformID string) (school.PupilProfile, school.ConsentState, error) {
	rows, err := s.q.Query(ctx, `SELECT `+profileCols+`, `+consentStateCols+`
		FROM `+profileJoins+`
		`+consentStateJoins+`
		WHERE p.id = $1`, pupilID, platformID)
	if err != nil {
		return school.PupilProfile{}, school.ConsentState{PupilID: pupilID}, err
	}
	return scanReleaseInputs(rows, pupilID, platformID, nil)
}

// TokenReleaseInputs implements school.OIDCStore: the token's row joined
// to ReleaseInputs' query, the platform being the token's.
func (s *Store) TokenReleaseInputs(ctx context.Context, tokenID string) (school.OIDCToken, school.PupilProfile, school.ConsentState, error) {
	var tok school.OIDCToken
	rows, err := s.q.Query(ctx, tokenInputsQuery, tokenID)
	if err != nil {
		return tok, school.PupilProfile{}, school.ConsentState{}, s.fail("token release inputs", err)
	}
	var tr tokenRow
	prof, st, err := scanReleaseInputs(rows, "", "", &tr)
	if err == nil {
		tok = tr.finish()
	}
	if errors.Is(err, school.ErrNotFound) {
		err = fmt.Errorf("token: %w", school.ErrNotFound)
	}
	return tok, prof, st, s.fail("token release inputs", err)
}

var tokenInputsQuery = `SELECT t.` + strings.ReplaceAll(tokenCols, ", ", ", t.") + `, ` + profileCols + `, ` +
	strings.ReplaceAll(consentStateCols, "$2", "t.platform_id") + `
	FROM oidc_tokens t JOIN ` + strings.Replace(profileJoins, "pupils p ", "pupils p ON p.id = t.pupil_id ", 1) + `
	` + strings.ReplaceAll(consentStateJoins, "$2", "t.platform_id") + `
	WHERE t.id = $1`

// scanReleaseInputs gathers a profile and consent state from rows of
// profileCols and consentStateCols, preceded by tokenCols when tok is
// given (pupilID and platformID are then the token's).
func scanReleaseInputs(rows Rows, pupilID, platformID string, tok *tokenRow) (school.PupilProfile, school.ConsentState, error) {
	var prof profileRows
	acc := consentRows{st: school.ConsentState{PupilID: pupilID}, platformID: platformID}
	defer rows.Close()
	for rows.Next() {
		dest := append(prof.dest(), acc.dest()...)
		if tok != nil {
			dest = append(tok.dest(), dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return prof.prof, acc.st, err
		}
		if tok != nil {
			acc.st.PupilID, acc.platformID = tok.t.PupilID, tok.t.PlatformID
		}
		if err := prof.add(); err != nil {
			return prof.prof, acc.st, err
		}
		acc.st.SchoolID = prof.prof.Pupil.SchoolID
		if err := acc.add(prof.pr.status); err != nil {
			return prof.prof, acc.st, err
		}
	}
	st, err := acc.done(rows.Err())
	if err != nil {
		return prof.prof, st, err
	}
	p, err := prof.done(nil)
	return p, st, err
}

// EnrolmentAllowed implements school.ConsentStore: the pupil is active and
// the enrolment flow is consented, code_issued or enrolled (which it only
// reaches while a consent under the flow's rule covers some platform).
func (s *Store) EnrolmentAllowed(ctx context.Context, pupilID string) (bool, error) {
	st, err := s.consentState(ctx, pupilID, "")
	if errors.Is(err, school.ErrNotFound) {
		return false, nil
	}
	return err == nil && st.EnrolmentAllows(), s.fail("enrolment allowed", err)
}

// ReleaseAllowed implements school.ConsentStore: enrolment is allowed, the
// pupil's school activated the platform and the flow's consent rule
// covers it (school.ConsentState.CoversPlatform).
func (s *Store) ReleaseAllowed(ctx context.Context, pupilID, platformID string) (bool, error) {
	st, err := s.consentState(ctx, pupilID, platformID)
	if errors.Is(err, school.ErrNotFound) {
		return false, nil
	}
	return err == nil && st.CoversPlatform(platformID), s.fail("release allowed", err)
}

// SetPlatformActivation implements school.ConsentFlowStore.
func (s *Store) SetPlatformActivation(ctx context.Context, a school.PlatformActivation, active bool) (bool, error) {
	if a.SchoolID == "" || a.PlatformID == "" {
		return false, fmt.Errorf("%w: an activation needs a school and a platform", school.ErrInvalid)
	}
	var changed bool
	err := s.tx(ctx, "set platform activation", func(t *Store) error {
		var n int64
		if err := t.q.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM schools WHERE id = $1) + (SELECT COUNT(*) FROM platforms WHERE id = $2)`,
			a.SchoolID, a.PlatformID).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("school or platform: %w", school.ErrNotFound)
		}
		var err error
		if active {
			n, err = t.q.Exec(ctx, `INSERT INTO platform_activations (school_id, platform_id, activated_by, activated_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				a.SchoolID, a.PlatformID, a.ActivatedBy, micros(t.now()))
		} else {
			n, err = t.q.Exec(ctx, `DELETE FROM platform_activations WHERE school_id = $1 AND platform_id = $2`, a.SchoolID, a.PlatformID)
		}
		changed = n > 0
		return err
	})
	return changed, err
}

func scanActivation(r Rows) (school.PlatformActivation, error) {
	var a school.PlatformActivation
	var at int64
	err := r.Scan(&a.SchoolID, &a.PlatformID, &a.ActivatedBy, &at)
	a.ActivatedAt = fromMicros(at)
	return a, err
}

// ListPlatformActivations implements school.ConsentFlowStore.
func (s *Store) ListPlatformActivations(ctx context.Context, schoolID string) ([]school.PlatformActivation, error) {
	out, err := collect(ctx, s.q, scanActivation, `SELECT school_id, platform_id, activated_by, activated_at FROM platform_activations
		WHERE ($1 = '' OR school_id = $1) ORDER BY school_id, platform_id`, schoolID)
	return out, s.fail("list platform activations", err)
}

// GuardiansByEmail implements school.ConsentFlowStore.
func (s *Store) GuardiansByEmail(ctx context.Context, email string) ([]school.Guardian, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return nil, nil
	}
	out, err := collect(ctx, s.q, scanGuardian, `SELECT `+guardianCols+` FROM guardians WHERE LOWER(email) = $1 ORDER BY created_at, id`, email)
	return out, s.fail("guardians by email", err)
}
