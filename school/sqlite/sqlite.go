// Package sqlite is ElevID's embedded, zero-setup store: a single SQLite
// file through modernc.org/sqlite (pure Go, no cgo), in WAL mode with
// foreign keys on, a busy timeout and immediate (writer-locking)
// transactions. The SQL itself lives in package sqlstore.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/elevid/elevid/migrations"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// Store is a migrated-on-demand SQLite store.
type Store struct {
	*sqlstore.Store
	db *sql.DB
}

// Open opens (creating if needed) the SQLite database at path. It does not
// migrate; call Migrate.
func Open(ctx context.Context, path string, opt sqlstore.Options) (*Store, error) {
	path = strings.TrimPrefix(path, "sqlite://")
	path = strings.TrimPrefix(path, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		return nil, fmt.Errorf("sqlite: give a plain file path, not options (%q)", path[i:])
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &Store{Store: sqlstore.New(&backend{db: db}, opt), db: db}, nil
}

// Migrate applies pending migrations and returns the schema version.
func (s *Store) Migrate(ctx context.Context) (int64, error) {
	return migrations.Up(ctx, s.db, migrations.SQLite)
}

// DB returns the underlying database, for tests that must tamper with rows.
func (s *Store) DB() *sql.DB { return s.db }

// backend keeps one prepared statement per distinct query: SQLite spends
// much of a short query's time parsing it, and the store's queries are a
// small, fixed set.
type backend struct {
	db      *sql.DB
	stmts   sync.Map       // query → *sql.Stmt
	warming sync.Map       // query → true once a background prepare started
	warmers sync.WaitGroup // background prepares, waited for by Close
}

func (b *backend) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if v, ok := b.stmts.Load(q); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := b.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if v, loaded := b.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

func (b *backend) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return 0, err
	}
	return execSQL(ctx, stmtExecer{st}, q, args...)
}
func (b *backend) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return querySQL(ctx, stmtExecer{st}, q, args...)
}
func (b *backend) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return row{st.QueryRowContext(ctx, args...)}
}
func (b *backend) Begin(ctx context.Context) (sqlstore.Tx, error) {
	t, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &tx{t: t, b: b}, nil
}
func (b *backend) Ping(ctx context.Context) error {
	var one int
	return b.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}
func (b *backend) Close() error {
	b.warmers.Wait()
	b.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return b.db.Close()
}
func (b *backend) ForUpdate() string { return "" }

func code(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func (b *backend) Classify(err error) error {
	switch code(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %v", school.ErrConflict, err)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w: refers to a missing record: %v", school.ErrInvalid, err)
	}
	return err
}

func (b *backend) IsDatabaseError(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) || errors.Is(err, driver.ErrBadConn)
}

func (b *backend) Retryable(err error) bool {
	c := code(err) & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func execSQL(ctx context.Context, e execer, q string, args ...any) (int64, error) {
	res, err := e.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func querySQL(ctx context.Context, e execer, q string, args ...any) (sqlstore.Rows, error) {
	r, err := e.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

type tx struct {
	t *sql.Tx
	b *backend
}

// execer returns the shared prepared statement bound to this transaction
// when there is one. A query not yet prepared runs unprepared here and is
// prepared for next time in the background: preparing on the pool from
// inside a transaction would wait for a second connection while holding
// the writer lock, and with every connection in a transaction that waits
// forever.
func (t *tx) execer(ctx context.Context, q string) execer {
	if v, ok := t.b.stmts.Load(q); ok {
		return stmtExecer{t.t.StmtContext(ctx, v.(*sql.Stmt))}
	}
	if _, warming := t.b.warming.LoadOrStore(q, true); !warming {
		t.b.warmers.Go(func() { _, _ = t.b.stmt(context.Background(), q) })
	}
	return t.t
}

func (t *tx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return execSQL(ctx, t.execer(ctx, q), q, args...)
}
func (t *tx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return querySQL(ctx, t.execer(ctx, q), q, args...)
}
func (t *tx) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	rows, err := t.execer(ctx, q).QueryContext(ctx, q, args...)
	if err != nil {
		return errRow{err}
	}
	return &firstRow{rows: rows}
}
func (t *tx) Commit(context.Context) error   { return t.t.Commit() }
func (t *tx) Rollback(context.Context) error { return t.t.Rollback() }

// stmtExecer runs a prepared statement through the execer interface (the
// query text is already bound).
type stmtExecer struct{ st *sql.Stmt }

func (e stmtExecer) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return e.st.ExecContext(ctx, args...)
}
func (e stmtExecer) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return e.st.QueryContext(ctx, args...)
}

// firstRow scans the first row of rows, like sql.Row.
type firstRow struct{ rows *sql.Rows }

func (r *firstRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sqlstore.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

// errRow is a Row whose query could not even be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type rows struct{ *sql.Rows }

func (r rows) Close() { _ = r.Rows.Close() }

type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return err
}
