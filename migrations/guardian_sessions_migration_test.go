package migrations

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/pressly/goose/v3"
)

// Migration 40 moves guardians' sessions into the sessions table as kind
// guardian (hash, guardian, school, times kept) and drops their table;
// its Down moves the unended ones back.
func TestGuardianSessionsMigration(t *testing.T) {
	onBothDialects(t, testGuardianSessionsMigration)
}

func testGuardianSessionsMigration(t *testing.T, db *sql.DB, p *goose.Provider) {
	ctx := context.Background()
	if _, err := p.UpTo(ctx, 39); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows := func(q string) []string {
		t.Helper()
		rs, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var s string
			if err := rs.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	exec(`INSERT INTO schools (id, code, name, domain, created_at) VALUES ('s1', 'one', 'Skole', 'one.dk', 1)`)
	exec(`INSERT INTO guardians (id, school_id, name, created_at) VALUES ('g1', 's1', 'Mor', 1), ('g2', 's1', 'Far', 1)`)
	exec(`INSERT INTO guardian_sessions (id_hash, guardian_id, created_at, expires_at) VALUES ('h1', 'g1', 100, 200), ('h2', 'g2', 150, 250)`)
	exec(`INSERT INTO sessions (id_hash, kind, subject_id, school_id, created_at, last_seen_at, expires_at, auth_time) VALUES ('hp', 'pupil', 'p1', 's1', 1, 1, 2, 1)`)
	if _, err := p.UpTo(ctx, 40); err != nil {
		t.Fatal(err)
	}
	got := rows(`SELECT id_hash || ' ' || kind || ' ' || subject_id || ' ' || school_id || ' ' || created_at || ' ' || last_seen_at || ' ' ||
		expires_at || ' ' || idle_timeout || ' ' || auth_time || ' ' || revoked_at FROM sessions ORDER BY id_hash`)
	want := []string{"h1 guardian g1 s1 100 100 200 0 100 0", "h2 guardian g2 s1 150 150 250 0 150 0", "hp pupil p1 s1 1 1 2 0 1 0"}
	if !slices.Equal(got, want) {
		t.Fatalf("sessions after Up = %q, want %q", got, want)
	}
	if _, err := db.ExecContext(ctx, `SELECT 1 FROM guardian_sessions`); err == nil {
		t.Fatal("guardian_sessions still exists after Up")
	}

	// Down: a revoked guardian session does not go back, nor does one
	// of a guardian that is gone; pupils' sessions stay.
	exec(`UPDATE sessions SET revoked_at = 300 WHERE id_hash = 'h2'`)
	exec(`INSERT INTO sessions (id_hash, kind, subject_id, school_id, created_at, last_seen_at, expires_at, auth_time) VALUES ('h3', 'guardian', 'gone', 's1', 1, 1, 2, 1)`)
	if _, err := p.DownTo(ctx, 39); err != nil {
		t.Fatal(err)
	}
	if got := rows(`SELECT id_hash || ' ' || guardian_id || ' ' || created_at || ' ' || expires_at FROM guardian_sessions ORDER BY id_hash`); !slices.Equal(got, []string{"h1 g1 100 200"}) {
		t.Fatalf("guardian_sessions after Down = %q", got)
	}
	if got := rows(`SELECT id_hash FROM sessions ORDER BY id_hash`); !slices.Equal(got, []string{"hp"}) {
		t.Fatalf("sessions after Down = %q", got)
	}
	// And up again.
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rows(`SELECT id_hash FROM sessions WHERE kind = 'guardian'`); !slices.Equal(got, []string{"h1"}) {
		t.Fatalf("guardian sessions after Up again = %q", got)
	}
}
