package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestRetentionUsesIndexes: every statement of the retention job can find
// its rows through an index. The tables are empty here, where a
// sequential scan is cheapest, so the planner is told to avoid one
// (enable_seqscan = off); a plan that still scans a table sequentially
// has no index to use. (A sort of a batch's keys for the semi-join is
// fine: it sorts at most the batch.)
func TestRetentionUsesIndexes(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, testenv.PostgresSchema(t, "plans"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := st.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, q := range sqlstore.RetentionStatements() {
		args := []any{int64(1)}
		if strings.Contains(q, "$2") {
			args = append(args, 500)
		}
		rows, err := conn.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, strings.TrimSpace(line))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for _, line := range plan {
			if strings.Contains(line, "Seq Scan") {
				t.Errorf("%s\n  plan:\n    %s", q, strings.Join(plan, "\n    "))
				break
			}
		}
	}
}
