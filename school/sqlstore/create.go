package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

// insertMany inserts n rows (each ncols values, made by row(i) when its
// batch is sent, so that a large insert never holds all its arguments)
// into table in batches.
func (s *Store) insertMany(ctx context.Context, table, cols string, ncols, n int, row func(i int) []any) error {
	per := max(1, bulkParams/ncols)
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + table + ` (` + cols + `) VALUES `)
		args := make([]any, 0, (end-start)*ncols)
		for i := range end - start {
			r := row(start + i)
			if len(r) != ncols {
				return fmt.Errorf("insert %s: row has %d values, want %d", table, len(r), ncols)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j, v := range r {
				if j > 0 {
					b.WriteByte(',')
				}
				args = append(args, v)
				fmt.Fprintf(&b, "$%d", len(args))
			}
			b.WriteByte(')')
		}
		if _, err := s.q.Exec(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// CreateGuardians implements school.DirectoryStore.
func (s *Store) CreateGuardians(ctx context.Context, gs []school.Guardian) ([]school.Guardian, error) {
	now := s.now()
	out := make([]school.Guardian, len(gs))
	for i, g := range gs {
		if err := g.Validate(); err != nil {
			return nil, err
		}
		g.ID, g.CreatedAt = school.NewID(), now
		out[i] = g
	}
	err := s.tx(ctx, "create guardians", func(t *Store) error {
		return t.insertMany(ctx, "guardians", guardianCols, 6, len(out), func(i int) []any {
			g := out[i]
			return []any{g.ID, g.SchoolID, g.ExternalID, g.Name, g.Email, micros(g.CreatedAt)}
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateClasses implements school.DirectoryStore.
func (s *Store) CreateClasses(ctx context.Context, cs []school.Class) ([]school.Class, error) {
	now := s.now()
	out := make([]school.Class, len(cs))
	for i, c := range cs {
		if err := validClass(c); err != nil {
			return nil, err
		}
		c.ID, c.CreatedAt = school.NewID(), now
		out[i] = c
	}
	err := s.tx(ctx, "create classes", func(t *Store) error {
		return t.insertMany(ctx, "classes", classCols, 5, len(out), func(i int) []any {
			c := out[i]
			return []any{c.ID, c.SchoolID, c.ExternalID, c.Name, micros(c.CreatedAt)}
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateStaffMembers implements school.DirectoryStore. Class links must
// point to classes of the staff member's school.
func (s *Store) CreateStaffMembers(ctx context.Context, sts []school.Staff) ([]school.Staff, error) {
	now := s.now()
	out := make([]school.Staff, len(sts))
	var links [][2]string
	schools := map[string]bool{}
	for i, st := range sts {
		if err := st.Validate(); err != nil {
			return nil, err
		}
		if st.SchoolID == "" && len(st.ClassIDs) > 0 {
			return nil, fmt.Errorf("%w: a staff member of no school has no classes", school.ErrInvalid)
		}
		st.ID, st.CreatedAt = school.NewID(), now
		out[i] = st
		schools[st.SchoolID] = true
		for _, c := range st.ClassIDs {
			links = append(links, [2]string{st.ID, c})
		}
	}
	err := s.tx(ctx, "create staff members", func(t *Store) error {
		err := t.insertMany(ctx, "staff", `id, school_id, external_id, username, name, email, role, password_hash, totp_secret, disabled, created_at, password_expires`, 12, len(out),
			func(i int) []any {
				st := out[i]
				return []any{st.ID, nullable(st.SchoolID), st.ExternalID, st.Username, st.Name, st.Email, string(st.Role), st.PasswordHash,
					st.TOTPSecret, st.Disabled, micros(st.CreatedAt), micros(st.PasswordExpires)}
			})
		if err != nil {
			return err
		}
		if err := t.insertMany(ctx, "staff_classes", "staff_id, class_id", 2, len(links), func(i int) []any { return []any{links[i][0], links[i][1]} }); err != nil {
			return err
		}
		// Links must stay within the school, as setStaffClasses enforces one by one.
		for id := range schools {
			var bad int
			err := t.q.QueryRow(ctx, `SELECT COUNT(*) FROM staff_classes l JOIN staff s ON s.id = l.staff_id JOIN classes c ON c.id = l.class_id
				WHERE s.school_id = $1 AND c.school_id <> s.school_id`, id).Scan(&bad)
			if err != nil {
				return err
			}
			if bad > 0 {
				return fmt.Errorf("%w: a staff member is linked to a class of another school", school.ErrInvalid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StaffIDsByUsername implements school.DirectoryStore.
func (s *Store) StaffIDsByUsername(ctx context.Context, usernames []string) (map[string]string, error) {
	out := make(map[string]string, len(usernames))
	type pair struct{ username, id string }
	for start := 0; start < len(usernames); start += bulkParams {
		batch := usernames[start:min(start+bulkParams, len(usernames))]
		var b strings.Builder
		args := make([]any, len(batch))
		for i, u := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "$%d", i+1)
			args[i] = u
		}
		ps, err := collect(ctx, s.q, func(r Rows) (pair, error) {
			var p pair
			return p, r.Scan(&p.username, &p.id)
		}, `SELECT username, id FROM staff WHERE username IN (`+b.String()+`)`, args...)
		if err != nil {
			return nil, s.fail("staff ids by username", err)
		}
		for _, p := range ps {
			out[p.username] = p.id
		}
	}
	return out, nil
}

// CreatePupils implements school.DirectoryStore. Links must point to
// classes and guardians of the pupil's school.
func (s *Store) CreatePupils(ctx context.Context, ps []school.Pupil) ([]school.Pupil, error) {
	now := s.now()
	out := make([]school.Pupil, len(ps))
	var classLinks, guardianLinks [][2]string
	schools := map[string]bool{}
	for i, p := range ps {
		if p.Status == "" {
			p.Status = school.PupilActive
		}
		if err := p.Validate(); err != nil {
			return nil, err
		}
		p.ID, p.CreatedAt, p.UpdatedAt = school.NewID(), now, now
		out[i] = p
		schools[p.SchoolID] = true
		for _, c := range p.ClassIDs {
			classLinks = append(classLinks, [2]string{p.ID, c})
		}
		for _, g := range p.GuardianIDs {
			guardianLinks = append(guardianLinks, [2]string{p.ID, g})
		}
	}
	pair := func(l [][2]string) func(int) []any { return func(i int) []any { return []any{l[i][0], l[i][1]} } }
	err := s.tx(ctx, "create pupils", func(t *Store) error {
		err := t.insertMany(ctx, "pupils", pupilCols, 10, len(out), func(i int) []any {
			p := out[i]
			return []any{p.ID, p.SchoolID, p.ExternalID, p.GivenName, p.FamilyName, birthText(p.BirthDate), string(p.Status),
				micros(p.QuarantinedAt), micros(p.CreatedAt), micros(p.UpdatedAt)}
		})
		if err != nil {
			return err
		}
		if err := t.insertMany(ctx, "pupil_classes", "pupil_id, class_id", 2, len(classLinks), pair(classLinks)); err != nil {
			return err
		}
		if err := t.insertMany(ctx, "pupil_guardians", "pupil_id, guardian_id", 2, len(guardianLinks), pair(guardianLinks)); err != nil {
			return err
		}
		// Links must stay within the school, as relink enforces one by one.
		for id := range schools {
			var bad int
			err := t.q.QueryRow(ctx, `SELECT
				(SELECT COUNT(*) FROM pupil_classes l JOIN pupils p ON p.id = l.pupil_id JOIN classes c ON c.id = l.class_id
				  WHERE p.school_id = $1 AND c.school_id <> p.school_id) +
				(SELECT COUNT(*) FROM pupil_guardians l JOIN pupils p ON p.id = l.pupil_id JOIN guardians g ON g.id = l.guardian_id
				  WHERE p.school_id = $1 AND g.school_id <> p.school_id)`, id).Scan(&bad)
			if err != nil {
				return err
			}
			if bad > 0 {
				return fmt.Errorf("%w: a pupil is linked to a class or guardian of another school", school.ErrInvalid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendAudits implements school.DirectoryStore.
func (s *Store) AppendAudits(ctx context.Context, es []school.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	chain := es[0].SchoolID
	for _, e := range es {
		if e.Action == "" || e.ActorID == "" {
			return errors.Join(school.ErrInvalid, errors.New("audit entry needs an actor and an action"))
		}
		if e.SchoolID != chain {
			return fmt.Errorf("%w: audit entries of more than one chain", school.ErrInvalid)
		}
	}
	return s.tx(ctx, "append audits", func(t *Store) error {
		if _, err := t.q.Exec(ctx, `INSERT INTO audit_heads (school_id, seq, hash) VALUES ($1, 0, NULL) ON CONFLICT (school_id) DO NOTHING`, chain); err != nil {
			return err
		}
		var head school.ChainHead
		if err := t.q.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE school_id = $1`+t.b.ForUpdate(), chain).Scan(&head.Seq, &head.Hash); err != nil {
			return err
		}
		now := t.now()
		// Rows are chained in order as insertMany asks for them.
		ks := t.auditKeys()
		err := t.insertMany(ctx, "audit_log", auditCols, 12, len(es), func(i int) []any {
			e := es[i]
			if e.Time.IsZero() {
				e.Time = now
			}
			e.Time = e.Time.UTC().Truncate(time.Microsecond)
			e.Seq = head.Seq + 1
			e.PrevHash = head.Hash
			ks.Seal(&e)
			head = school.ChainHead{Seq: e.Seq, Hash: e.Hash}
			return []any{e.SchoolID, e.Seq, micros(e.Time), e.ActorID, e.ActorRole, e.Action, e.SubjectID, e.Detail, e.Remote, e.PrevHash, e.Hash, e.KeyID}
		})
		if err != nil {
			return err
		}
		_, err = t.q.Exec(ctx, `UPDATE audit_heads SET seq = $2, hash = $3 WHERE school_id = $1`, chain, head.Seq, head.Hash)
		return err
	})
}
