package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/elevid/elevid/school"
)

// ownerTables says where the passkeys of one owner kind live: the owners'
// table, their handles' table, and the column (of both the handles and
// the credentials table) holding the owner's id. A credential row names
// its owner by owner_kind and that column; the other kind's column is
// NULL, so each kind keeps its foreign key (erasing a pupil or a staff
// member erases their passkeys).
type ownerTables struct {
	owners, handles, otherHandles, column string
	// insertOwner selects, from the owners' table, the credential's
	// pupil_id, staff_id and school_id; insertWhere picks the owner ($3)
	// and checks the credential's school ($4).
	insertOwner, insertWhere string
}

var ownerTablesOf = map[school.OwnerKind]ownerTables{
	school.OwnerPupil: {owners: "pupils", handles: "pupil_handles", otherHandles: "staff_handles", column: "pupil_id",
		insertOwner: "id, NULL, school_id", insertWhere: "id = $3 AND school_id = $4"},
	school.OwnerStaff: {owners: "staff", handles: "staff_handles", otherHandles: "pupil_handles", column: "staff_id",
		insertOwner: "NULL, id, NULL", insertWhere: "id = $3 AND $4 = ''"},
}

func tablesOf(kind school.OwnerKind) (ownerTables, error) {
	t, ok := ownerTablesOf[kind]
	if !ok {
		return t, fmt.Errorf("%w: passkey owner kind %q", school.ErrInvalid, kind)
	}
	return t, nil
}

// UserHandle implements school.PasskeyStore.
func (s *Store) UserHandle(ctx context.Context, o school.Owner) ([]byte, error) {
	tb, err := tablesOf(o.Kind)
	if err != nil {
		return nil, err
	}
	get := `SELECT handle FROM ` + tb.handles + ` WHERE ` + tb.column + ` = $1`
	var h []byte
	err = s.q.QueryRow(ctx, get, o.ID).Scan(&h)
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, ErrNoRows) {
		return nil, s.fail("user handle", err)
	}
	err = s.tx(ctx, "user handle", func(t *Store) error {
		var n int64
		if err := t.q.QueryRow(ctx, `SELECT COUNT(*) FROM `+tb.owners+` WHERE id = $1`, o.ID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s: %w", o.Kind, school.ErrNotFound)
		}
		// 64 random bytes do not collide; the guard against the other
		// kind's handles makes the separation a property of the store
		// anyway.
		for range 3 {
			if _, err := t.q.Exec(ctx, `INSERT INTO `+tb.handles+` (`+tb.column+`, handle) SELECT $1, $2
				WHERE NOT EXISTS (SELECT 1 FROM `+tb.otherHandles+` WHERE handle = $2) ON CONFLICT (`+tb.column+`) DO NOTHING`,
				o.ID, school.NewSecret(64)); err != nil {
				return err
			}
			err := t.q.QueryRow(ctx, get, o.ID).Scan(&h)
			if !errors.Is(err, ErrNoRows) {
				return err
			}
		}
		return errors.New("no fresh user handle")
	})
	return h, err
}

// OwnerByHandle implements school.PasskeyStore.
func (s *Store) OwnerByHandle(ctx context.Context, kind school.OwnerKind, handle []byte) (string, error) {
	tb, err := tablesOf(kind)
	if err != nil {
		return "", err
	}
	var id string
	err = s.q.QueryRow(ctx, `SELECT `+tb.column+` FROM `+tb.handles+` WHERE handle = $1`, handle).Scan(&id)
	return id, s.fail("owner by handle", one(err, "user handle"))
}

// credentialFields are the stored fields of a credential after its id,
// owner and school, in scan order.
const credentialFields = `public_key, attestation_format, aaguid, sign_count, backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at, revoked_at`

// credentialCols returns the columns scanCredentialRow reads, of the
// credentials table aliased a ("" or "c.").
func credentialCols(a string) string {
	return a + "id, " + a + "owner_kind, COALESCE(" + a + "pupil_id, " + a + "staff_id), COALESCE(" + a + "school_id, ''), " +
		a + strings.ReplaceAll(credentialFields, ", ", ", "+a)
}

var credentialSelect = `SELECT ` + credentialCols("") + ` FROM credentials`

func scanCredential(r Rows) (school.Credential, error) { return scanCredentialRow(r) }

func scanCredentialRow(r Row) (school.Credential, error) {
	var c school.Credential
	var kind, transports string
	var count, created, used, revoked int64
	err := r.Scan(&c.ID, &kind, &c.Owner.ID, &c.SchoolID, &c.PublicKey, &c.AttestationFormat, &c.AAGUID, &count,
		&c.BackupEligible, &c.BackupState, &c.CloneWarning, &transports, &c.Label, &created, &used, &revoked)
	c.Owner.Kind = school.OwnerKind(kind)
	c.SignCount = uint32(count)
	if transports != "" {
		c.Transports = strings.Split(transports, ",")
	}
	c.CreatedAt, c.LastUsedAt, c.RevokedAt = fromMicros(created), fromMicros(used), fromMicros(revoked)
	return c, err
}

func validCredential(c school.Credential) error {
	if _, err := tablesOf(c.Owner.Kind); err != nil {
		return err
	}
	switch {
	case len(c.ID) == 0 || len(c.ID) > 1023:
		return fmt.Errorf("%w: credential id must be 1–1023 bytes", school.ErrInvalid)
	case len(c.PublicKey) == 0:
		return fmt.Errorf("%w: credential has no public key", school.ErrInvalid)
	case c.Owner.ID == "":
		return fmt.Errorf("%w: credential has no owner", school.ErrInvalid)
	case (c.Owner.Kind == school.OwnerPupil) != (c.SchoolID != ""):
		return fmt.Errorf("%w: a pupil's credential needs the pupil's school, a staff member's none", school.ErrInvalid)
	case len(c.Label) > 100:
		return fmt.Errorf("%w: credential label longer than 100 characters", school.ErrInvalid)
	}
	for _, tr := range c.Transports {
		if strings.Contains(tr, ",") {
			return fmt.Errorf("%w: transport %q", school.ErrInvalid, tr)
		}
	}
	return nil
}

// AddCredential implements school.PasskeyStore.
func (s *Store) AddCredential(ctx context.Context, c school.Credential) (school.Credential, error) {
	if err := validCredential(c); err != nil {
		return c, err
	}
	tb := ownerTablesOf[c.Owner.Kind]
	c.CreatedAt = s.now()
	err := s.tx(ctx, "add credential", func(t *Store) error {
		n, err := t.q.Exec(ctx, `INSERT INTO credentials (id, owner_kind, pupil_id, staff_id, school_id, `+credentialFields+`)
			SELECT $1, $2, `+tb.insertOwner+`, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 FROM `+tb.owners+` WHERE `+tb.insertWhere,
			c.ID, string(c.Owner.Kind), c.Owner.ID, c.SchoolID, c.PublicKey, c.AttestationFormat, c.AAGUID, int64(c.SignCount),
			c.BackupEligible, c.BackupState, c.CloneWarning, strings.Join(c.Transports, ","), c.Label,
			micros(c.CreatedAt), micros(c.LastUsedAt), micros(c.RevokedAt))
		if err == nil && n == 0 {
			return fmt.Errorf("%w: %s %s (school %q) does not exist", school.ErrInvalid, c.Owner.Kind, c.Owner.ID, c.SchoolID)
		}
		return err
	})
	return c, err
}

// GetCredential implements school.PasskeyStore.
func (s *Store) GetCredential(ctx context.Context, kind school.OwnerKind, id []byte) (school.Credential, error) {
	c, err := scanCredentialRow(s.q.QueryRow(ctx, credentialSelect+` WHERE id = $1 AND owner_kind = $2`, id, string(kind)))
	return c, s.fail("get credential", one(err, "credential"))
}

// ListCredentials implements school.PasskeyStore.
func (s *Store) ListCredentials(ctx context.Context, o school.Owner, includeRevoked bool) ([]school.Credential, error) {
	tb, err := tablesOf(o.Kind)
	if err != nil {
		return nil, err
	}
	q := credentialSelect + ` WHERE ` + tb.column + ` = $1`
	if !includeRevoked {
		q += ` AND revoked_at = 0`
	}
	out, err := collect(ctx, s.q, scanCredential, q+` ORDER BY created_at, id`, o.ID)
	return out, s.fail("list credentials", err)
}

// UpdateCredential implements school.PasskeyStore.
func (s *Store) UpdateCredential(ctx context.Context, kind school.OwnerKind, id []byte, fn func(school.Credential) (school.Credential, error)) (school.Credential, error) {
	var out school.Credential
	err := s.tx(ctx, "update credential", func(t *Store) error {
		old, err := scanCredentialRow(t.q.QueryRow(ctx, credentialSelect+` WHERE id = $1 AND owner_kind = $2`+t.b.ForUpdate(), id, string(kind)))
		if err != nil {
			return one(err, "credential")
		}
		nw, err := fn(old)
		if err != nil {
			return err
		}
		nw.ID, nw.Owner, nw.SchoolID, nw.PublicKey, nw.CreatedAt = old.ID, old.Owner, old.SchoolID, old.PublicKey, old.CreatedAt
		if err := validCredential(nw); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE credentials SET sign_count = $2, backup_eligible = $3, backup_state = $4, clone_warning = $5,
			transports = $6, label = $7, last_used_at = $8, revoked_at = $9, aaguid = $10, attestation_format = $11 WHERE id = $1`,
			nw.ID, int64(nw.SignCount), nw.BackupEligible, nw.BackupState, nw.CloneWarning, strings.Join(nw.Transports, ","),
			nw.Label, micros(nw.LastUsedAt), micros(nw.RevokedAt), nw.AAGUID, nw.AttestationFormat)
		out = nw
		return err
	})
	return out, err
}

// DeleteCredential implements school.PasskeyStore.
func (s *Store) DeleteCredential(ctx context.Context, o school.Owner, id []byte) error {
	tb, err := tablesOf(o.Kind)
	if err != nil {
		return err
	}
	n, err := s.q.Exec(ctx, `DELETE FROM credentials WHERE id = $1 AND `+tb.column+` = $2`, id, o.ID)
	if err == nil && n == 0 {
		err = fmt.Errorf("credential: %w", school.ErrNotFound)
	}
	return s.fail("delete credential", err)
}

// PasskeyLogin implements school.PasskeyStore.
func (s *Store) PasskeyLogin(ctx context.Context, handle, credentialID []byte) (school.Pupil, school.Credential, error) {
	var p school.Pupil
	pr := pupilRow{p: &p}
	c, err := scanCredentialRow(prefixRow{s.q.QueryRow(ctx, `SELECT `+pupilColsP+`, `+credentialCols("c.")+`
		FROM pupil_handles h JOIN pupils p ON p.id = h.pupil_id JOIN credentials c ON c.id = $2 AND c.pupil_id = h.pupil_id
		WHERE h.handle = $1`, handle, credentialID), pr.dest()})
	if err != nil {
		return p, c, s.fail("passkey login", one(err, "credential of the user handle"))
	}
	return p, c, pr.finish()
}

// PasskeyLoginConsent implements school.PasskeyStore: PasskeyLogin's
// query with the consent state's columns and joins (one row per guardian).
func (s *Store) PasskeyLoginConsent(ctx context.Context, handle, credentialID []byte, platformID string) (school.Pupil, school.Credential, school.ConsentState, error) {
	var (
		p   school.Pupil
		c   school.Credential
		pr  = pupilRow{p: &p}
		acc = consentRows{platformID: platformID}
	)
	rows, err := s.q.Query(ctx, passkeyConsentQuery, handle, credentialID, platformID)
	if err != nil {
		return p, c, acc.st, s.fail("passkey login", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err = scanCredentialRow(scanFunc(func(dest ...any) error {
			return rows.Scan(append(append(pr.dest(), dest...), acc.dest()...)...)
		}))
		if err != nil {
			return p, c, acc.st, s.fail("passkey login", err)
		}
		acc.st.PupilID, acc.st.SchoolID = p.ID, p.SchoolID
		if err := acc.add(pr.status); err != nil {
			return p, c, acc.st, s.fail("passkey login", err)
		}
	}
	if _, err := acc.done(rows.Err()); err != nil {
		if errors.Is(err, school.ErrNotFound) {
			err = fmt.Errorf("credential of the user handle: %w", school.ErrNotFound)
		}
		return p, c, acc.st, s.fail("passkey login", err)
	}
	return p, c, acc.st, s.fail("passkey login", pr.finish())
}

// passkeyConsentQuery names the credential cr: c is the consent state's.
var passkeyConsentQuery = `SELECT ` + pupilColsP + `, ` + credentialCols("cr.") + `, ` + strings.ReplaceAll(consentStateCols, "$2", "$3") + `
	FROM pupil_handles h JOIN pupils p ON p.id = h.pupil_id JOIN credentials cr ON cr.id = $2 AND cr.pupil_id = h.pupil_id
	` + strings.ReplaceAll(consentStateJoins, "$2", "$3") + `
	WHERE h.handle = $1`

// RecordCredentialUse implements school.PasskeyStore.
func (s *Store) RecordCredentialUse(ctx context.Context, id []byte, use school.CredentialUse) error {
	n, err := s.q.Exec(ctx, `UPDATE credentials SET sign_count = $2, clone_warning = (clone_warning OR $3), backup_state = $4, last_used_at = $5 WHERE id = $1`,
		id, int64(use.SignCount), use.CloneWarning, use.BackupState, micros(use.At))
	if err == nil && n == 0 {
		err = fmt.Errorf("credential: %w", school.ErrNotFound)
	}
	return s.fail("record credential use", err)
}
