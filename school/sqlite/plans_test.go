package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestRetentionUsesIndexes: every statement of the retention job finds
// its rows through an index: SQLite's plan has no SCAN (of a table or a
// whole index) and no sort. With a million release rows a scan took
// 150 ms on every call; with 100,000 enrolments 20 ms on every batch of
// a token backlog, which shrank the batches to a few rows.
func TestRetentionUsesIndexes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range sqlstore.RetentionStatements() {
		args := []any{int64(1)}
		if strings.Contains(q, "$2") {
			args = append(args, 500)
		}
		rows, err := st.DB().QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN ") || strings.Contains(line, "TEMP B-TREE") {
				t.Errorf("%s\n  plan: %s", q, strings.Join(plan, "; "))
				break
			}
		}
	}
}
