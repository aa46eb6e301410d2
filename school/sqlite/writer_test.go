package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// dataVersion is SQLite's PRAGMA data_version on db's one connection: it
// changes when another connection has committed since the last call.
func dataVersion(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRow(`PRAGMA data_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWritesGoThroughTheWriterConnection: every write of the process —
// transactions, single statements, bulk loads — commits on the writer's
// own connection, so its page cache is never dropped because another
// connection of the process committed; reads use the pool.
func TestWritesGoThroughTheWriterConnection(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil { // through the pool, before the watch
		t.Fatal(err)
	}
	b := st.b
	before := dataVersion(t, b.w)

	sc, err := st.CreateSchool(ctx, school.School{Code: "s1", Name: "S", Domain: "s.example.dk"}) // a transaction
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, `UPDATE schools SET name = 'T' WHERE id = $1`, sc.ID); err != nil { // a single statement
		t.Fatal(err)
	}
	bulk, err := b.BeginBulk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bulk.Exec(ctx, `UPDATE schools SET name = 'U' WHERE id = $1`, sc.ID); err != nil {
		t.Fatal(err)
	}
	if err := bulk.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dataVersion(t, b.w); got != before {
		t.Fatalf("another connection committed: data_version %d → %d", before, got)
	}
	var cache int64
	if err := b.w.QueryRow(`PRAGMA cache_size`).Scan(&cache); err != nil || cache != -16384 {
		t.Fatalf("writer's cache after a bulk load: %d, %v; want -16384", cache, err)
	}
	// The check can fail: a commit through the pool changes it.
	if _, err := st.DB().Exec(`UPDATE schools SET name = 'V' WHERE id = ?`, sc.ID); err != nil {
		t.Fatal(err)
	}
	if got := dataVersion(t, b.w); got == before {
		t.Fatal("data_version did not see a commit through the pool")
	}
}
