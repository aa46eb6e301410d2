// Package postgres is ElevID's production store on PostgreSQL through
// github.com/jackc/pgx/v5 (pgxpool). Several ElevID nodes may share one
// database. Transactions run at READ COMMITTED with row locks on the rows
// an updater changes; serialization failures and deadlocks are retried by
// package sqlstore, which holds the SQL.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/elevid/elevid/migrations"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// Store is a PostgreSQL store.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn (postgres://…). Without a
// pool_max_conns in the DSN the pool holds 16 connections. It does not
// migrate; call Migrate.
func Open(ctx context.Context, dsn string, opt sqlstore.Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad DSN: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") && cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &Store{Store: sqlstore.New(backend{pool}, opt), pool: pool}, nil
}

// Migrate applies pending migrations and returns the schema version.
func (s *Store) Migrate(ctx context.Context) (int64, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	return migrations.Up(ctx, db, migrations.Postgres)
}

// Pool returns the connection pool, for tests that must tamper with rows.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type conn struct{ q querier }

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}
func (c conn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return c.q.Query(ctx, q, args...)
}
func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return row{c.q.QueryRow(ctx, q, args...)}
}

type backend struct{ pool *pgxpool.Pool }

func (b backend) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return conn{b.pool}.Exec(ctx, q, args...)
}
func (b backend) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return conn{b.pool}.Query(ctx, q, args...)
}
func (b backend) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return conn{b.pool}.QueryRow(ctx, q, args...)
}
func (b backend) Begin(ctx context.Context) (sqlstore.Tx, error) {
	c, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &tx{c: c}, nil
}
func (b backend) Ping(ctx context.Context) error { return b.pool.Ping(ctx) }
func (b backend) Close() error                   { b.pool.Close(); return nil }
func (b backend) ForUpdate() string              { return " FOR UPDATE" }
func (b backend) WritesInWith() bool             { return true }

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func (b backend) Classify(err error) error {
	switch pgCode(err) {
	case "23505":
		return fmt.Errorf("%w: %v", school.ErrConflict, err)
	case "23503":
		return fmt.Errorf("%w: refers to a missing record: %v", school.ErrInvalid, err)
	case "22P02", "22023", "23514", "23502":
		return fmt.Errorf("%w: %v", school.ErrInvalid, err)
	}
	return err
}

func (b backend) IsDatabaseError(err error) bool {
	var pg *pgconn.PgError
	var conn *pgconn.ConnectError
	var nerr net.Error
	return errors.As(err, &pg) || errors.As(err, &conn) || errors.As(err, &nerr) || errors.Is(err, pgx.ErrTxClosed) || pgconn.Timeout(err)
}

func (b backend) Retryable(err error) bool {
	switch pgCode(err) {
	case "40001", "40P01":
		return true
	}
	return false
}

// tx is a transaction on one pooled connection that sends statements
// together where it can: BEGIN goes out with the transaction's first
// statement, and a write the caller holds back (Defer) goes out with the
// next statement or with COMMIT, in one round trip (a pgx batch) instead
// of one each. A login flow's two transactions take four round trips
// instead of seven (eight in the whole flow instead of eleven), a SAML
// answer's one instead of five.
type tx struct {
	c    *pgxpool.Conn // nil once committed or rolled back
	sent bool          // BEGIN has gone out
	held []heldStmt    // deferred writes not yet sent
}

type heldStmt struct {
	q      string
	args   []any
	mapErr func(error) error
}

// Defer implements sqlstore.Deferrer: q is held back and sent with the
// transaction's next statement or its COMMIT; its error is theirs.
func (t *tx) Defer(_ context.Context, mapErr func(error) error, q string, args ...any) error {
	if t.c == nil {
		return pgx.ErrTxClosed
	}
	t.held = append(t.held, heldStmt{q, args, mapErr})
	return nil
}

// ahead reports whether statements must go out before the next one:
// BEGIN, or deferred writes.
func (t *tx) ahead() bool { return !t.sent || len(t.held) > 0 }

// queueAhead queues what must go out before the next statement and
// returns the deferred writes among it (they come last).
func (t *tx) queueAhead(b *pgx.Batch) []heldStmt {
	if !t.sent {
		b.Queue("BEGIN")
	}
	held := t.held
	for _, h := range held {
		b.Queue(h.q, h.args...)
	}
	t.sent, t.held = true, nil
	return held
}

// send sends what is ahead (BEGIN, deferred writes) and then q in one
// batch and reads the results of what was ahead; the caller reads q's
// and closes the batch. An error of a statement ahead is returned, the
// batch closed.
func (t *tx) send(ctx context.Context, q string, args ...any) (pgx.BatchResults, error) {
	if t.c == nil {
		return nil, pgx.ErrTxClosed
	}
	var b pgx.Batch
	held := t.queueAhead(&b)
	b.Queue(q, args...)
	br := t.c.SendBatch(ctx, &b)
	for i := range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			if j := i - (b.Len() - 1 - len(held)); j >= 0 && held[j].mapErr != nil {
				err = held[j].mapErr(err)
			}
			return nil, err
		}
	}
	return br, nil
}

func (t *tx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.execTag(ctx, q, args...)
	return tag.RowsAffected(), err
}

// execTag runs q, with what is ahead of it, and returns its command tag.
func (t *tx) execTag(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error) {
	if !t.ahead() {
		return t.c.Exec(ctx, q, args...)
	}
	br, err := t.send(ctx, q, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *tx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	if !t.ahead() {
		return conn{t.c}.Query(ctx, q, args...)
	}
	br, err := t.send(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *tx) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	if !t.ahead() {
		return conn{t.c}.QueryRow(ctx, q, args...)
	}
	br, err := t.send(ctx, q, args...)
	if err != nil {
		return errRow{err}
	}
	return batchRow{r: br.QueryRow(), br: br}
}

// Commit sends the deferred writes with COMMIT, in one round trip. When
// one of them fails, PostgreSQL skips the rest of the batch, COMMIT too:
// the transaction is rolled back here and that error returned.
func (t *tx) Commit(ctx context.Context) error {
	if t.c == nil {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if !t.sent && len(t.held) == 0 {
		return nil // nothing was sent: nothing to commit
	}
	tag, err := t.execTag(ctx, "COMMIT")
	if err == nil && tag.String() == "ROLLBACK" {
		// PostgreSQL answers COMMIT of a failed transaction by rolling
		// it back.
		return pgx.ErrTxCommitRollback
	}
	if err != nil && t.c.Conn().PgConn().TxStatus() != 'I' {
		_, _ = t.c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}

// Rollback drops the deferred writes and rolls back what was sent.
func (t *tx) Rollback(ctx context.Context) error {
	if t.c == nil {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if !t.sent {
		return nil
	}
	_, err := t.c.Exec(ctx, "ROLLBACK")
	return err
}

// release gives the connection back (pgxpool closes one left inside a
// transaction).
func (t *tx) release() {
	t.c.Release()
	t.c, t.held = nil, nil
}

// CopyFrom implements sqlstore.Copier with PostgreSQL's COPY, several
// times faster than multi-row INSERTs for a bulk load.
func (t *tx) CopyFrom(ctx context.Context, table string, cols []string, n int, row func(i int) []any) error {
	if t.c == nil {
		return pgx.ErrTxClosed
	}
	if t.ahead() { // COPY cannot join a batch: what is ahead goes first
		var b pgx.Batch
		t.queueAhead(&b)
		if err := t.c.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
	}
	i := 0
	_, err := t.c.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		return row(i - 1), nil
	}))
	return err
}

// batchRows are the rows of a transaction's first statement: closing
// them closes the batch.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	_ = r.br.Close()
}

// batchRow is the row of a transaction's first statement.
type batchRow struct {
	r  pgx.Row
	br pgx.BatchResults
}

func (r batchRow) Scan(dest ...any) error {
	err := row{r.r}.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// errRow is a Row whose statement could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return err
}
