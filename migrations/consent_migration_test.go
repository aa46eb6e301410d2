package migrations

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/elevid/elevid/internal/testenv"
)

// Migration 13 carries existing consents over as consents to the
// attributes the platform had when they were given (its attributes at
// migration time), turns legacy every-platform decisions into one per
// platform, puts each old justification into both languages and
// activates every existing platform for every existing school.
func TestConsentMigration(t *testing.T) { eachDialect(t, testConsentMigration) }

// eachDialect runs test on a fresh database of each dialect (PostgreSQL
// when ELEVID_TEST_POSTGRES is set), with a goose provider of its
// migrations that has applied none.
func eachDialect(t *testing.T, test func(*testing.T, *sql.DB, *goose.Provider)) {
	run := func(t *testing.T, d Dialect, driver, dsn string) {
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		gd := goose.DialectSQLite3
		if d == Postgres {
			gd = goose.DialectPostgres
		}
		p, err := goose.NewProvider(gd, db, FS(d))
		if err != nil {
			t.Fatal(err)
		}
		test(t, db, p)
	}
	t.Run("sqlite", func(t *testing.T) {
		run(t, SQLite, "sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_pragma=foreign_keys(1)")
	})
	t.Run("postgres", func(t *testing.T) {
		run(t, Postgres, "pgx", testenv.PostgresSchema(t, "m"))
	})
}

func testConsentMigration(t *testing.T, db *sql.DB, p *goose.Provider) {
	ctx := context.Background()
	if _, err := p.UpTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO schools (id, code, name, domain, created_at) VALUES ('s1', 'one', 'Skole', 'one.dk', 1), ('s2', 'two', 'Skole 2', 'two.dk', 1)`)
	exec(`INSERT INTO pupils (id, school_id, given_name, status, created_at, updated_at) VALUES ('p1', 's1', 'Ida', 'active', 1, 1)`)
	exec(`INSERT INTO guardians (id, school_id, name, created_at) VALUES ('g1', 's1', 'Mor', 1), ('g2', 's1', 'Far', 1)`)
	exec(`INSERT INTO pupil_guardians (pupil_id, guardian_id) VALUES ('p1', 'g1'), ('p1', 'g2')`)
	exec(`INSERT INTO platforms (id, name, protocol, client_id, attributes, subject_type, created_at, updated_at) VALUES
		('mf', 'MF', 'oidc', 'mf', '[{"name":"given_name","justification":"Læreren ser fornavnet"},{"name":"groups","justification":"Klassen"}]', 'pairwise', 1, 1),
		('ob', 'OB', 'saml', 'https://ob', '[]', 'pairwise', 1, 1)`)
	exec(`INSERT INTO consents (id, pupil_id, guardian_id, platform_id, decision, decided_at, withdrawn_at) VALUES
		('c1', 'p1', 'g1', 'mf', 'granted', 5, 0),
		('c2', 'p1', 'g1', 'ob', 'denied', 5, 0),
		('c3', 'p1', 'g2', NULL, 'granted', 4, 0)`)
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}

	type grant struct {
		Name            string `json:"name"`
		JustificationDA string `json:"justification_da"`
		JustificationEN string `json:"justification_en"`
	}
	decode := func(s string) []grant {
		t.Helper()
		var g []grant
		if err := json.Unmarshal([]byte(s), &g); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return g
	}
	var attrs string
	if err := db.QueryRowContext(ctx, `SELECT attributes FROM platforms WHERE id = 'mf'`).Scan(&attrs); err != nil {
		t.Fatal(err)
	}
	want := []grant{{"given_name", "Læreren ser fornavnet", "Læreren ser fornavnet"}, {"groups", "Klassen", "Klassen"}}
	if g := decode(attrs); len(g) != 2 || g[0] != want[0] || g[1] != want[1] {
		t.Fatalf("platform attributes = %s", attrs)
	}
	rows, err := db.QueryContext(ctx, `SELECT guardian_id, platform_id, decision, attributes, refused FROM consents WHERE pupil_id = 'p1' ORDER BY guardian_id, platform_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var g, pf, dec, a, r string
		var platform sql.NullString
		if err := rows.Scan(&g, &platform, &dec, &a, &r); err != nil {
			t.Fatal(err)
		}
		pf = platform.String
		names := []string{}
		for _, x := range decode(a) {
			if x.JustificationDA == "" || x.JustificationEN == "" {
				t.Fatalf("consent %s/%s attribute without the justification shown: %s", g, pf, a)
			}
			names = append(names, x.Name)
		}
		got = append(got, g+"/"+pf+"/"+dec+"/"+strings.Join(names, ",")+"/"+r)
	}
	wantRows := []string{
		"g1/mf/granted/given_name,groups/[]", // the platform's attributes at migration time
		"g1/ob/denied//[]",
		"g2/mf/granted/given_name,groups/[]", // the legacy every-platform grant, per platform
		"g2/ob/granted//[]",
	}
	if strings.Join(got, " ") != strings.Join(wantRows, " ") {
		t.Fatalf("consents after migration:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM platform_activations WHERE activated_by = 'migration'`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("activations = %d, %v; want every platform for every school (4)", n, err)
	}
}
