package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elevid/elevid/internal/testenv"
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
