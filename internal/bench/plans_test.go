package bench_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/bench"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestLoginFlowPlans runs the complete pupil login flow on a store filled
// like the size test (smaller), then asks the database for the plan of
// every statement the flow ran, with the arguments it ran with: none may
// scan a table (SQLite: "SCAN t" without an index; PostgreSQL, with
// sequential scans priced out: "Seq Scan"), so the flow's cost does not
// grow with pupils, release-log rows or expired tokens. go test -v logs
// every plan.
func TestLoginFlowPlans(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			b := openBackend(t, db, "plans", "")
			counter := &sqlstore.Counter{}
			st := sqlstore.New(b, sqlstore.Options{Counter: counter})
			srv := startHTTP(t, st, counter)
			f, err := bench.Prepare(ctx, st, "localhost", srv.origin, 8)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bench.Fill(ctx, st, bench.Size{Pupils: 2100, Releases: 3000, ExpiredTokens: 3000}); err != nil {
				t.Fatal(err)
			}
			counter.Track() // from here on: the flows' statements only
			res, err := bench.Run(ctx, bench.Config{BaseURL: srv.url, Fixture: f, Concurrency: 2, Duration: 300 * time.Millisecond, Counter: counter})
			if err != nil || res.Flows == 0 || res.Errors > 0 {
				t.Fatalf("flows %d, errors %d, err %v", res.Flows, res.Errors, err)
			}
			stmts := counter.Top(1000)
			if len(stmts) < 5 {
				t.Fatalf("only %d distinct statements were tracked", len(stmts))
			}
			var scans []string
			for _, qc := range stmts {
				q := strings.TrimPrefix(qc.Query, "[tx] ")
				args, ok := counter.Sample(q)
				if !ok {
					t.Fatalf("no arguments recorded for %q", q)
				}
				plan, err := explain(ctx, db, b, q, args)
				if err != nil {
					t.Fatalf("explain %q: %v", q, err)
				}
				t.Logf("%s\n    %s", oneLine(q), strings.Join(plan, "\n    "))
				for _, line := range plan {
					if scanLine(db, line) {
						scans = append(scans, fmt.Sprintf("%s: %s", oneLine(q), line))
					}
				}
			}
			if len(scans) > 0 {
				t.Errorf("%d statements of the login flow scan a table:\n%s", len(scans), strings.Join(scans, "\n"))
			}
		})
	}
}

var (
	sqliteScan = regexp.MustCompile(`^SCAN (\w+)`)
	pgSeqScan  = regexp.MustCompile(`Seq Scan on (\w+)`)
)

// scanLine reports whether a plan line reads a whole table. SQLite's
// "SCAN t USING (COVERING) INDEX i" reads a whole index and counts too.
func scanLine(db, line string) bool {
	if db == "sqlite" {
		m := sqliteScan.FindStringSubmatch(strings.TrimSpace(line))
		return m != nil && m[1] != "CONSTANT"
	}
	return pgSeqScan.MatchString(line)
}

// explain returns the plan of q run with args: EXPLAIN QUERY PLAN on
// SQLite; on PostgreSQL EXPLAIN in a transaction that prices sequential
// scans out, so a scan in the plan means no index can serve q.
func explain(ctx context.Context, db string, b sqlstore.Backend, q string, args []any) ([]string, error) {
	var plan []string
	if db == "sqlite" {
		rows, err := b.Query(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				return nil, err
			}
			plan = append(plan, detail)
		}
		return plan, rows.Err()
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		plan = append(plan, line)
	}
	return plan, rows.Err()
}

func oneLine(q string) string {
	s := strings.Join(strings.Fields(q), " ")
	if len(s) > 140 {
		s = s[:140] + "…"
	}
	return s
}
