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
	"time"

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
	// temp_store(MEMORY) keeps statement journals (which every multi-row
	// INSERT inside a transaction writes) in memory instead of spilling
	// them to temporary files, and a 16 MiB page cache a connection
	// (SQLite's default is 2 MiB) holds a large sync transaction's pages
	// and one school's rows without re-reading them from the file.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)" +
		"&_pragma=temp_store(MEMORY)&_pragma=cache_size(-16384)&_txlock=immediate"
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
	return &Store{Store: sqlstore.New(&backend{db: db, writer: make(chan struct{}, 1)}, opt), db: db}, nil
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
//
// Writers of this process queue on a Go semaphore (writer) before they
// take SQLite's write lock: SQLite's own busy handler polls with sleeps of
// 1–100 ms, which under concurrent logins costs more latency than the
// writes themselves. Other processes (an `elevid admin` command) are still
// covered by the busy timeout.
type backend struct {
	db      *sql.DB
	writer  chan struct{}  // held by this process's current writer
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

// writerWait bounds how long a writer queues on the semaphore; after that
// it goes on to SQLite's busy handling (so a mistake that writes outside a
// transaction while holding one fails as before instead of hanging).
const writerWait = 10 * time.Second

// lockWriter takes the writer semaphore and returns its release (a no-op
// when the wait timed out).
func (b *backend) lockWriter(ctx context.Context) (func(), error) {
	select {
	case b.writer <- struct{}{}:
	default:
		t := time.NewTimer(writerWait)
		defer t.Stop()
		select {
		case b.writer <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return func() {}, nil
		}
	}
	var once sync.Once
	return func() { once.Do(func() { <-b.writer }) }, nil
}

// writes reports whether a statement run outside a transaction may write.
func writes(q string) bool {
	q = strings.TrimSpace(q)
	return len(q) < 6 || !strings.EqualFold(q[:6], "SELECT")
}

func (b *backend) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return 0, err
	}
	if writes(q) {
		unlock, err := b.lockWriter(ctx)
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	return execSQL(ctx, stmtExecer{st}, q, args...)
}
func (b *backend) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	unlock := func() {}
	if writes(q) {
		if unlock, err = b.lockWriter(ctx); err != nil {
			return nil, err
		}
	}
	r, err := st.QueryContext(ctx, args...)
	if err != nil {
		unlock()
		return nil, err
	}
	return rows{r, unlock}, nil
}
func (b *backend) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return errRow{err}
	}
	unlock := func() {}
	if writes(q) {
		if unlock, err = b.lockWriter(ctx); err != nil {
			return errRow{err}
		}
	}
	return row{st.QueryRowContext(ctx, args...), unlock}
}
func (b *backend) Begin(ctx context.Context) (sqlstore.Tx, error) {
	unlock, err := b.lockWriter(ctx)
	if err != nil {
		return nil, err
	}
	t, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		unlock()
		return nil, err
	}
	return &tx{t: t, b: b, unlock: unlock}, nil
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
	return rows{Rows: r}, nil
}

type tx struct {
	t      *sql.Tx
	b      *backend
	unlock func() // releases the writer semaphore
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
func (t *tx) Commit(context.Context) error   { defer t.unlock(); return t.t.Commit() }
func (t *tx) Rollback(context.Context) error { defer t.unlock(); return t.t.Rollback() }

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

type rows struct {
	*sql.Rows
	unlock func() // nil, or releases the writer semaphore
}

func (r rows) Close() {
	_ = r.Rows.Close()
	if r.unlock != nil {
		r.unlock()
	}
}

type row struct {
	r      *sql.Row
	unlock func()
}

func (r row) Scan(dest ...any) error {
	defer r.unlock()
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return err
}

// BeginBulk implements sqlstore.BulkBeginner: a transaction on a
// connection of its own with a page cache large enough that inserting
// millions of rows with random keys does not spill dirty pages to the WAL
// over and over, and with statement journals in memory (each multi-row
// INSERT inside a transaction writes one; in a file that was a third of
// the load's time). Both must be set before BEGIN; both are reset before
// the connection goes back to the pool.
func (b *backend) BeginBulk(ctx context.Context) (sqlstore.Tx, error) {
	unlock, err := b.lockWriter(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		unlock()
		return nil, err
	}
	release := func() {
		_, _ = conn.ExecContext(context.Background(), `PRAGMA temp_store = DEFAULT`)
		_, _ = conn.ExecContext(context.Background(), `PRAGMA cache_size = -2000`)
		conn.Close()
		unlock()
	}
	for _, q := range []string{`PRAGMA cache_size = -524288`, `PRAGMA temp_store = MEMORY`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			release()
			return nil, err
		}
	}
	t, err := conn.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, err
	}
	return &tx{t: t, b: b, unlock: release}, nil
}
