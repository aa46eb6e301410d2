package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

const pupilCols = `id, school_id, external_id, given_name, family_name, birth_date, status, quarantined_at, created_at, updated_at`

// pupilColsP is pupilCols qualified with the alias p.
var pupilColsP = "p." + strings.ReplaceAll(pupilCols, ", ", ", p.")

func scanPupil(r Rows) (school.Pupil, error) { return scanPupilRow(r) }

func scanPupilRow(r Row) (school.Pupil, error) {
	var p school.Pupil
	pr := pupilRow{p: &p}
	if err := r.Scan(pr.dest()...); err != nil {
		return p, err
	}
	return p, pr.finish()
}

// pupilRow scans the columns of pupilCols into p: dest gives the scan
// destinations, finish converts the stored forms once scanned.
type pupilRow struct {
	p                             *school.Pupil
	birth, status                 string
	quarantined, created, updated int64
}

func (r *pupilRow) dest() []any {
	p := r.p
	return []any{&p.ID, &p.SchoolID, &p.ExternalID, &p.GivenName, &p.FamilyName, &r.birth, &r.status, &r.quarantined, &r.created, &r.updated}
}

func (r *pupilRow) finish() error {
	p := r.p
	p.Status = school.PupilStatus(r.status)
	p.QuarantinedAt, p.CreatedAt, p.UpdatedAt = fromMicros(r.quarantined), fromMicros(r.created), fromMicros(r.updated)
	if r.birth != "" {
		var err error
		if p.BirthDate, err = time.Parse(time.DateOnly, r.birth); err != nil {
			return fmt.Errorf("pupil %s: stored birth date %q: %w", p.ID, r.birth, err)
		}
	}
	return nil
}

func birthText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// CreatePupil implements school.PupilStore.
func (s *Store) CreatePupil(ctx context.Context, p school.Pupil) (school.Pupil, error) {
	if p.Status == "" {
		p.Status = school.PupilActive
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	p.ID = school.NewID()
	p.CreatedAt = s.now()
	p.UpdatedAt = p.CreatedAt
	err := s.tx(ctx, "create pupil", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO pupils (`+pupilCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			p.ID, p.SchoolID, p.ExternalID, p.GivenName, p.FamilyName, birthText(p.BirthDate), string(p.Status),
			micros(p.QuarantinedAt), micros(p.CreatedAt), micros(p.UpdatedAt))
		if err != nil {
			return err
		}
		return t.setPupilLinks(ctx, p, nil, nil)
	})
	return p, err
}

// setPupilLinks makes the stored links of p equal to p.ClassIDs and
// p.GuardianIDs, given the old ones. Linked classes and guardians must be
// of the pupil's school.
func (s *Store) setPupilLinks(ctx context.Context, p school.Pupil, oldClasses, oldGuardians []string) error {
	if err := s.relink(ctx, "pupil_classes", "class_id", "classes", p.ID, p.SchoolID, oldClasses, p.ClassIDs); err != nil {
		return err
	}
	return s.relink(ctx, "pupil_guardians", "guardian_id", "guardians", p.ID, p.SchoolID, oldGuardians, p.GuardianIDs)
}

// relink adds and removes rows of a link table (pupil_id, col).
func (s *Store) relink(ctx context.Context, table, col, target, pupilID, schoolID string, old, want []string) error {
	for _, id := range want {
		if slices.Contains(old, id) {
			continue
		}
		n, err := s.q.Exec(ctx, `INSERT INTO `+table+` (pupil_id, `+col+`) SELECT $1, id FROM `+target+` WHERE id = $2 AND school_id = $3`, pupilID, id, schoolID)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: %s %s is not of the pupil's school", school.ErrInvalid, target, id)
		}
	}
	for _, id := range old {
		if !slices.Contains(want, id) {
			if _, err := s.q.Exec(ctx, `DELETE FROM `+table+` WHERE pupil_id = $1 AND `+col+` = $2`, pupilID, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// withLinks fills ClassIDs and GuardianIDs of pupils from the link tables;
// where narrows the pupils the links are read for (on table p).
func (s *Store) withLinks(ctx context.Context, pupils []school.Pupil, where string, args ...any) ([]school.Pupil, error) {
	if len(pupils) == 0 {
		return pupils, nil
	}
	idx := make(map[string]int, len(pupils))
	for i, p := range pupils {
		idx[p.ID] = i
	}
	// One query for both kinds of link (kind 0 = class, 1 = guardian),
	// each kind in id order.
	type link struct {
		pupil, other string
		kind         int
	}
	q := `SELECT l.pupil_id, 0, l.class_id FROM pupil_classes l JOIN pupils p ON p.id = l.pupil_id WHERE ` + where + `
		UNION ALL SELECT l.pupil_id, 1, l.guardian_id FROM pupil_guardians l JOIN pupils p ON p.id = l.pupil_id WHERE ` + where + `
		ORDER BY 2, 3`
	if where == schoolPupils {
		// A whole school's links, read through the school's classes
		// and guardians (a pupil links only to those of its school):
		// by class and guardian, the index reads follow the order the
		// links were written in, not one random look-up per pupil.
		q = `SELECT l.pupil_id, 0, l.class_id FROM classes c JOIN pupil_classes l ON l.class_id = c.id WHERE c.school_id = $1
		UNION ALL SELECT l.pupil_id, 1, l.guardian_id FROM guardians g JOIN pupil_guardians l ON l.guardian_id = g.id WHERE g.school_id = $1
		ORDER BY 2, 3`
	}
	links, err := collect(ctx, s.q, func(r Rows) (link, error) {
		var l link
		return l, r.Scan(&l.pupil, &l.kind, &l.other)
	}, q, args...)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		i, ok := idx[l.pupil]
		switch {
		case !ok:
		case l.kind == 0:
			pupils[i].ClassIDs = append(pupils[i].ClassIDs, l.other)
		default:
			pupils[i].GuardianIDs = append(pupils[i].GuardianIDs, l.other)
		}
	}
	return pupils, nil
}

func (s *Store) getPupil(ctx context.Context, where, lock string, args ...any) (school.Pupil, error) {
	p, err := scanPupilRow(s.q.QueryRow(ctx, `SELECT `+pupilCols+` FROM pupils p WHERE `+where+lock, args...))
	if err != nil {
		return p, one(err, "pupil")
	}
	ps, err := s.withLinks(ctx, []school.Pupil{p}, `p.id = $1`, p.ID)
	if err != nil {
		return p, err
	}
	return ps[0], nil
}

// GetPupil implements school.PupilStore.
func (s *Store) GetPupil(ctx context.Context, id string) (school.Pupil, error) {
	p, err := s.getPupil(ctx, `id = $1`, "", id)
	return p, s.fail("get pupil", err)
}

// PupilByExternalID implements school.PupilStore.
func (s *Store) PupilByExternalID(ctx context.Context, schoolID, externalID string) (school.Pupil, error) {
	if externalID == "" {
		return school.Pupil{}, fmt.Errorf("pupil: %w", school.ErrNotFound)
	}
	p, err := s.getPupil(ctx, `school_id = $1 AND external_id = $2`, "", schoolID, externalID)
	return p, s.fail("pupil by external id", err)
}

// schoolPupils selects the pupils of school $1.
const schoolPupils = `p.school_id = $1`

// ListPupils implements school.PupilStore.
func (s *Store) ListPupils(ctx context.Context, f school.PupilFilter) ([]school.Pupil, error) {
	where := schoolPupils
	args := []any{f.SchoolID}
	if f.Status != "" {
		args = append(args, string(f.Status))
		where += fmt.Sprintf(` AND p.status = $%d`, len(args))
	}
	if f.ClassID != "" {
		args = append(args, f.ClassID)
		where += fmt.Sprintf(` AND p.id IN (SELECT pupil_id FROM pupil_classes WHERE class_id = $%d)`, len(args))
	}
	ps, err := collect(ctx, s.q, scanPupil, `SELECT `+pupilCols+` FROM pupils p WHERE `+where+` ORDER BY p.family_name, p.given_name, p.id`, args...)
	if err == nil {
		ps, err = s.withLinks(ctx, ps, where, args...)
	}
	return ps, s.fail("list pupils", err)
}

// UpdatePupil implements school.PupilStore.
func (s *Store) UpdatePupil(ctx context.Context, id string, fn func(school.Pupil) (school.Pupil, error)) (school.Pupil, error) {
	var out school.Pupil
	err := s.tx(ctx, "update pupil", func(t *Store) error {
		old, err := t.getPupil(ctx, `id = $1`, t.b.ForUpdate(), id)
		if err != nil {
			return err
		}
		nw, err := fn(clonePupil(old))
		if err != nil {
			return err
		}
		nw.ID, nw.SchoolID, nw.CreatedAt = old.ID, old.SchoolID, old.CreatedAt
		nw.UpdatedAt = t.now()
		if err := nw.Validate(); err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE pupils SET external_id = $2, given_name = $3, family_name = $4, birth_date = $5, status = $6, quarantined_at = $7, updated_at = $8 WHERE id = $1`,
			nw.ID, nw.ExternalID, nw.GivenName, nw.FamilyName, birthText(nw.BirthDate), string(nw.Status), micros(nw.QuarantinedAt), micros(nw.UpdatedAt))
		if err != nil {
			return err
		}
		out = nw
		return t.setPupilLinks(ctx, nw, old.ClassIDs, old.GuardianIDs)
	})
	return out, err
}

func clonePupil(p school.Pupil) school.Pupil {
	p.ClassIDs = slices.Clone(p.ClassIDs)
	p.GuardianIDs = slices.Clone(p.GuardianIDs)
	return p
}

// DeletePupil implements school.PupilStore.
func (s *Store) DeletePupil(ctx context.Context, id string) error {
	return s.tx(ctx, "delete pupil", func(t *Store) error {
		n, err := t.q.Exec(ctx, `DELETE FROM pupils WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("pupil: %w", school.ErrNotFound)
		}
		// The access log has no foreign key (list views name no pupil).
		if _, err = t.q.Exec(ctx, `DELETE FROM access_log WHERE pupil_id = $1`, id); err != nil {
			return err
		}
		// Client addresses in audit entries about or by the pupil go too;
		// keyed entries do not hash them, so the chain still verifies.
		_, err = t.q.Exec(ctx, `UPDATE audit_log SET remote = '' WHERE remote <> '' AND key_id <> '' AND (subject_id = $1 OR actor_id = $2)`, id, "pupil:"+id)
		return err
	})
}

// GetPupilProfile implements school.PupilStore.
func (s *Store) GetPupilProfile(ctx context.Context, id string) (school.PupilProfile, error) {
	var acc profileRows
	rows, err := s.q.Query(ctx, `SELECT `+profileCols+` FROM `+profileJoins+` WHERE p.id = $1`, id)
	if err != nil {
		return acc.prof, s.fail("pupil profile", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(acc.dest()...); err != nil {
			return acc.prof, s.fail("pupil profile", err)
		}
		if err := acc.add(); err != nil {
			return acc.prof, err
		}
	}
	prof, err := acc.done(rows.Err())
	return prof, s.fail("pupil profile", err)
}

// profileCols and profileJoins read a pupil profile (profileRows scans
// them): the pupil p, the school s, a class cl per row.
var profileCols = pupilColsP + `, s.id, s.code, s.name, s.domain, s.created_at,
	COALESCE(cl.id, ''), COALESCE(cl.external_id, ''), COALESCE(cl.name, ''), COALESCE(cl.created_at, 0)`

const profileJoins = `pupils p JOIN schools s ON s.id = p.school_id
	LEFT JOIN pupil_classes l ON l.pupil_id = p.id LEFT JOIN classes cl ON cl.id = l.class_id`

// profileRows gathers a pupil profile from rows of profileCols (a class
// may repeat when other joins multiply the rows).
type profileRows struct {
	prof                        school.PupilProfile
	found                       bool
	p                           school.Pupil
	pr                          pupilRow
	sc                          school.School
	c                           school.Class
	schoolCreated, classCreated int64
}

// dest returns the scan targets of one row's profileCols.
func (a *profileRows) dest() []any {
	a.p, a.sc, a.c = school.Pupil{}, school.School{}, school.Class{}
	a.pr = pupilRow{p: &a.p}
	return append(a.pr.dest(), &a.sc.ID, &a.sc.Code, &a.sc.Name, &a.sc.Domain, &a.schoolCreated, &a.c.ID, &a.c.ExternalID, &a.c.Name, &a.classCreated)
}

// add takes in the scanned row.
func (a *profileRows) add() error {
	if !a.found {
		if err := a.pr.finish(); err != nil {
			return err
		}
		a.sc.CreatedAt = fromMicros(a.schoolCreated)
		a.prof.Pupil, a.prof.School, a.found = a.p, a.sc, true
	}
	if c := a.c; c.ID != "" && !slices.Contains(a.prof.Pupil.ClassIDs, c.ID) {
		c.SchoolID, c.CreatedAt = a.sc.ID, fromMicros(a.classCreated)
		a.prof.Classes = append(a.prof.Classes, c)
		a.prof.Pupil.ClassIDs = append(a.prof.Pupil.ClassIDs, c.ID)
	}
	return nil
}

// done finishes the profile after the rows (err is rows.Err()): classes in
// id order (sorted here, not by the query: a sort there costs a temporary
// B-tree per read), ErrNotFound when there was no row.
func (a *profileRows) done(err error) (school.PupilProfile, error) {
	if err != nil {
		return a.prof, err
	}
	if !a.found {
		return a.prof, fmt.Errorf("pupil: %w", school.ErrNotFound)
	}
	slices.SortFunc(a.prof.Classes, func(x, y school.Class) int { return strings.Compare(x.ID, y.ID) })
	slices.Sort(a.prof.Pupil.ClassIDs)
	return a.prof, nil
}
