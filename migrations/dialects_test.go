package migrations

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/elevid/elevid/internal/testenv"
)

// onBothDialects runs fn on an empty SQLite database and on an empty
// schema of the ELEVID_TEST_POSTGRES database (skipped without it), each
// with a goose provider over that dialect's migrations, none applied.
func onBothDialects(t *testing.T, fn func(t *testing.T, db *sql.DB, p *goose.Provider)) {
	for _, c := range []struct {
		d      Dialect
		driver string
		goose  goose.Dialect
		dsn    func(t *testing.T) string
	}{
		{SQLite, "sqlite", goose.DialectSQLite3, func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "m.db") + "?_pragma=foreign_keys(1)"
		}},
		{Postgres, "pgx", goose.DialectPostgres, func(t *testing.T) string { return testenv.PostgresSchema(t, "m") }},
	} {
		t.Run(string(c.d), func(t *testing.T) {
			db, err := sql.Open(c.driver, c.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			p, err := goose.NewProvider(c.goose, db, FS(c.d))
			if err != nil {
				t.Fatal(err)
			}
			fn(t, db, p)
		})
	}
}
