package postgres

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestTransactionBeginsWithItsFirstStatement: BEGIN goes out with a
// transaction's first statement (one round trip), and that statement is
// inside the transaction whatever its kind (Exec, Query, QueryRow); a
// failed first statement makes Commit report the rollback; an empty
// transaction commits; connections go back to the pool outside any
// transaction.
func TestTransactionBeginsWithItsFirstStatement(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.PostgresSchema(t, "tx"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	b := backend{pool}
	if _, err := pool.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	begin := func() sqlstore.Tx {
		t.Helper()
		tx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}

	// A first write is rolled back with its transaction.
	tx := begin()
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("the first statement outlived its rollback: %d rows", n)
	}

	// A first read (rows) and a later one see the same transaction time.
	tx = begin()
	rows, err := tx.Query(ctx, `SELECT now()`)
	if err != nil {
		t.Fatal(err)
	}
	var t1, t2 time.Time
	for rows.Next() {
		if err := rows.Scan(&t1); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&t2); err != nil {
		t.Fatal(err)
	}
	if !t1.Equal(t2) {
		t.Fatalf("two transactions: now() %v then %v", t1, t2)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil || count() != 1 {
		t.Fatalf("commit: %v, %d rows", err, count())
	}
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("second commit: %v", err)
	}

	// A first QueryRow finding nothing, then a failing first statement.
	tx = begin()
	var id int
	if err := tx.QueryRow(ctx, `SELECT id FROM t WHERE id = 7`).Scan(&id); !errors.Is(err, sqlstore.ErrNoRows) {
		t.Fatalf("no row: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx = begin()
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`); err == nil {
		t.Fatal("a duplicate key was inserted")
	}
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("commit after a failed statement: %v", err)
	}

	// An empty transaction commits.
	if err := begin().Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Every connection went back idle, outside a transaction.
	if st := pool.Stat(); st.AcquiredConns() != 0 {
		t.Fatalf("%d connections still acquired", st.AcquiredConns())
	}
	if n := count(); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

// countingConn counts the writes a client makes on its connection: one
// for each round trip it starts.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// TestDeferredWritesGoWithTheNextStatement: a deferred write goes out
// with the transaction's next statement or with COMMIT, in the same round
// trip (a sign-in's transaction — an update, then a deferred insert — is
// two round trips, a transaction of deferred writes only is one); the
// next statement sees it; a rollback drops it; a deferred write that
// fails makes Commit fail with its error (a unique violation, so
// ErrConflict once classified), rolls the transaction back (nothing of
// it stays) and leaves the connection usable.
func TestDeferredWritesGoWithTheNextStatement(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresSchema(t, "defer"))
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &writes}, nil
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	b := backend{pool}
	if _, err := pool.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO t VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	ids := func() []int {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT id FROM t ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// roundTrips runs fn in a transaction and counts the round trips it
	// and its commit took.
	roundTrips := func(fn func(tx sqlstore.Tx) error) (int64, error) {
		t.Helper()
		tx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before := writes.Load()
		if err := fn(tx); err != nil {
			_ = tx.Rollback(ctx)
			return writes.Load() - before, err
		}
		err = tx.Commit(ctx)
		return writes.Load() - before, err
	}
	deferred := func(tx sqlstore.Tx, q string, args ...any) error {
		d, ok := tx.(sqlstore.Deferrer)
		if !ok {
			t.Fatal("a PostgreSQL transaction cannot defer a write")
		}
		return d.Defer(ctx, nil, q, args...)
	}

	// pgx prepares a statement on a connection the first time it runs
	// there (a round trip of its own): run each once, rolled back.
	for _, q := range []string{`UPDATE t SET n = n + 1 WHERE id = 1`, `INSERT INTO t (id) VALUES (100)`,
		`INSERT INTO t (id) VALUES ($1)`, `SELECT count(*) FROM t WHERE id = 5`} {
		tx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var args []any
		if strings.Contains(q, "$1") {
			args = []any{100}
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// COMMIT in a batch is a prepared statement too.
	if _, err := roundTrips(func(tx sqlstore.Tx) error { return deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 100) }); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM t WHERE id = 100`); err != nil {
		t.Fatal(err)
	}

	// A sign-in's shape: an update whose count matters, then an insert
	// that goes with COMMIT.
	n, err := roundTrips(func(tx sqlstore.Tx) error {
		if c, err := tx.Exec(ctx, `UPDATE t SET n = n + 1 WHERE id = 1`); err != nil || c != 1 {
			t.Fatalf("update: %d rows, %v", c, err)
		}
		return deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 2)
	})
	if err != nil || n != 2 {
		t.Fatalf("update + deferred insert: %d round trips, %v; want 2", n, err)
	}
	// Deferred writes only: BEGIN, the writes and COMMIT in one.
	n, err = roundTrips(func(tx sqlstore.Tx) error {
		if err := deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 3); err != nil {
			return err
		}
		return deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 4)
	})
	if err != nil || n != 1 {
		t.Fatalf("two deferred inserts: %d round trips, %v; want 1", n, err)
	}
	// The next statement sees a deferred write, in the same round trip.
	n, err = roundTrips(func(tx sqlstore.Tx) error {
		if err := deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 5); err != nil {
			return err
		}
		var c int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM t WHERE id = 5`).Scan(&c); err != nil || c != 1 {
			t.Fatalf("read after a deferred insert: %d rows, %v", c, err)
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("deferred insert + read: %d round trips, %v; want 2", n, err)
	}
	if got := ids(); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("rows %v after the commits", got)
	}

	// A rollback drops a deferred write (and one sent before it).
	tx, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (id) VALUES (6)`); err != nil {
		t.Fatal(err)
	}
	if err := deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 7); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 8); !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("defer after rollback: %v", err)
	}

	// A deferred write that fails fails the commit with its error and
	// takes the transaction's other writes with it.
	_, err = roundTrips(func(tx sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t (id) VALUES (9)`); err != nil {
			t.Fatal(err)
		}
		return deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 1) // taken
	})
	if !errors.Is(b.Classify(err), school.ErrConflict) {
		t.Fatalf("commit with a failing deferred insert: %v; want a conflict", err)
	}
	// The same failure reached by the next statement instead, through
	// the deferred write's own error mapping (the second of two).
	tx, err = b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := deferred(tx, `INSERT INTO t (id) VALUES ($1)`, 11); err != nil {
		t.Fatal(err)
	}
	used := errors.New("used before")
	if err := tx.(sqlstore.Deferrer).Defer(ctx, func(err error) error { return errors.Join(used, err) }, `INSERT INTO t (id) VALUES ($1)`, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t (id) VALUES (10)`); !errors.Is(err, used) || !errors.Is(b.Classify(err), school.ErrConflict) {
		t.Fatalf("statement after a failing deferred insert: %v; want its conflict, mapped", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("rows %v after the failures; want 1-5", got)
	}
	// The only connection is back idle and usable.
	if st := pool.Stat(); st.AcquiredConns() != 0 || st.TotalConns() != 1 {
		t.Fatalf("%d acquired, %d connections; want the one connection idle", st.AcquiredConns(), st.TotalConns())
	}
	if err := pool.QueryRow(ctx, `SELECT 1`).Scan(new(int)); err != nil {
		t.Fatal(err)
	}
}
