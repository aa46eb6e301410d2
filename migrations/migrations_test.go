package migrations

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"
)

// A migration that fails half way leaves the schema at the previous
// version, with nothing of the failed migration applied.
func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	good := fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE a (id INTEGER);\n-- +goose Down\nDROP TABLE a;\n")},
	}
	if v, err := up(ctx, db, SQLite, good); err != nil || v != 1 {
		t.Fatalf("first migration: %d, %v", v, err)
	}
	bad := fstest.MapFS{
		"00001_a.sql": good["00001_a.sql"],
		"00002_b.sql": {Data: []byte("-- +goose Up\nCREATE TABLE b (id INTEGER);\nINSERT INTO a VALUES (1);\nTHIS IS NOT SQL;\n-- +goose Down\nDROP TABLE b;\n")},
	}
	if _, err := up(ctx, db, SQLite, bad); err == nil {
		t.Fatal("broken migration succeeded")
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table of the failed migration exists (%d, %v)", n, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM a`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows of the failed migration exist (%d, %v)", n, err)
	}
	if v, err := up(ctx, db, SQLite, good); err != nil || v != 1 {
		t.Fatalf("version after failure = %d, %v; want 1", v, err)
	}
}

// Both dialects have the same version numbers.
func TestDialectsMatch(t *testing.T) {
	list := func(d Dialect) []string {
		var names []string
		entries, err := files.ReadDir(string(d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			names = append(names, e.Name()[:5])
		}
		return names
	}
	s, p := list(SQLite), list(Postgres)
	if len(s) != len(p) {
		t.Fatalf("sqlite has %v, postgres %v", s, p)
	}
	for i := range s {
		if s[i] != p[i] {
			t.Fatalf("sqlite has %v, postgres %v", s, p)
		}
	}
}
