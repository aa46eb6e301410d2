package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/bench"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestFillThenLogin fills a store with the size test's rows (a small
// size) after Prepare, checks what landed where, and runs the login
// bench on it: the filler must not break the fixture's flows.
func TestFillThenLogin(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			s := startServer(t, db)
			f, err := bench.Prepare(ctx, s.st, "localhost", s.origin, 4)
			if err != nil {
				t.Fatal(err)
			}
			size := bench.Size{Pupils: 2100, Releases: 3000, ExpiredTokens: 1500}
			counts, err := bench.Fill(ctx, s.st, size)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"schools": 1, "platform_activations": 1, "classes": 84, "pupils": 2100, "guardians": 4200,
				"pupil_classes": 2100, "pupil_guardians": 4200, "enrolments": 2100, "consents": 2100, "pupil_handles": 2100,
				"credentials": 2100, "releases": 3000, "oidc_tokens": 1500}
			for k, v := range want {
				if counts[k] != v {
					t.Errorf("%s: %d rows, want %d", k, counts[k], v)
				}
			}
			// The bench school holds its 4 fixture pupils and the first
			// 2,000 filler pupils; the other 100 are in a school of their own.
			sch, err := s.st.SchoolByCode(ctx, "bench")
			if err != nil {
				t.Fatal(err)
			}
			pupils, err := s.st.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(pupils) != 2004 {
				t.Errorf("bench school has %d pupils, want 2004", len(pupils))
			}
			schools, err := s.st.ListSchools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(schools) != 2 {
				t.Fatalf("%d schools, want 2", len(schools))
			}
			other := schools[0]
			if other.ID == sch.ID {
				other = schools[1]
			}
			op, err := s.st.ListPupils(ctx, school.PupilFilter{SchoolID: other.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(op) != 100 {
				t.Errorf("filler school has %d pupils, want 100", len(op))
			}
			p := op[0]
			if p.Status != school.PupilActive || len(p.ClassIDs) != 1 || len(p.GuardianIDs) != 2 {
				t.Errorf("filler pupil %+v: want active, one class, two guardians", p)
			}
			pf, err := s.st.PlatformByClientID(ctx, f.ClientID)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := s.st.ConsentState(ctx, p.ID, pf.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !cs.CoversPlatform(pf.ID) || len(cs.Consents) != 1 {
				t.Errorf("filler pupil's consent state %+v: want the platform covered by one consent", cs)
			}
			releases := 0
			for _, p := range append(pupils, op...) {
				rs, err := s.st.ListReleases(ctx, p.ID)
				if err != nil {
					t.Fatal(err)
				}
				releases += len(rs)
			}
			if releases != size.Releases {
				t.Errorf("%d releases over the pupils, want %d", releases, size.Releases)
			}
			res, err := bench.Run(ctx, bench.Config{BaseURL: s.url, Fixture: f, Concurrency: 2, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Flows == 0 || res.Errors > 0 {
				t.Fatalf("after the fill: %d flows, %d errors (%s)", res.Flows, res.Errors, res.FirstError)
			}
		})
	}
}

// TestFillTimeOrder checks that the filler's release log and tokens lie
// as the server leaves them: written in time order (SQLite's rowid) with
// time-ordered ids (school.NewLogID), so that the retention job's deletes
// of the oldest rows touch neighbouring pages, as they do in production.
func TestFillTimeOrder(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, "sqlite", "fill", "")
	st := sqlstore.New(b, sqlstore.Options{})
	if _, err := bench.Prepare(ctx, st, "localhost", "http://localhost:1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := bench.Fill(ctx, st, bench.Size{Pupils: 50, Releases: 500, ExpiredTokens: 500}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT id, time FROM releases ORDER BY rowid",
		"SELECT id, created_at FROM oidc_tokens ORDER BY rowid",
	} {
		rows, err := b.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		n, lastID, lastAt := 0, "", int64(0)
		for rows.Next() {
			var id string
			var at int64
			if err := rows.Scan(&id, &at); err != nil {
				t.Fatal(err)
			}
			if want := school.NewLogID(time.UnixMicro(at))[:12]; id[:12] != want {
				t.Fatalf("%s: row %d: id %s is not time-ordered (want prefix %s)", q, n, id, want)
			}
			if at < lastAt || id < lastID {
				t.Fatalf("%s: row %d (%s, %d) comes after (%s, %d)", q, n, id, at, lastID, lastAt)
			}
			n, lastID, lastAt = n+1, id, at
		}
		rows.Close()
		if err := rows.Err(); err != nil || n != 500 {
			t.Fatalf("%s: %d rows, err %v", q, n, err)
		}
	}
}
