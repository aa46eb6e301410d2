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
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/elevid/elevid/migrations"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// cacheSize is every connection's page cache (PRAGMA cache_size: negative
// is KiB).
const cacheSize = "-16384"

// Store is a migrated-on-demand SQLite store.
type Store struct {
	*sqlstore.Store
	b *backend
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
		"&_pragma=temp_store(MEMORY)&_pragma=cache_size(" + cacheSize + ")&_txlock=immediate"
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
	// This process's writes all go through one connection of their own
	// (see backend).
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	b := &backend{db: db, w: w, writer: make(chan struct{}, 1)}
	return &Store{Store: sqlstore.New(b, opt), b: b}, nil
}

// Migrate applies pending migrations and returns the schema version.
func (s *Store) Migrate(ctx context.Context) (int64, error) {
	return migrations.Up(ctx, s.b.db, migrations.SQLite)
}

// DB returns the underlying database, for tests that must tamper with rows.
func (s *Store) DB() *sql.DB { return s.b.db }

// backend keeps one prepared statement per distinct query: SQLite spends
// much of a short query's time parsing it, and the store's queries are a
// small, fixed set.
//
// Writers of this process queue on a Go semaphore (writer) before they
// take SQLite's write lock: SQLite's own busy handler polls with sleeps of
// 1–100 ms, which under concurrent logins costs more latency than the
// writes themselves. Other processes (an `elevid admin` command) are still
// covered by the busy timeout.
//
// The writer that holds the semaphore writes through a connection of its
// own (w, a pool of one): in WAL mode a connection drops its whole page
// cache whenever another connection has committed since its last read,
// so with writes spread over the pool every transaction re-read the pages
// it touched (pread, checksums, page allocation: a tenth of the server's
// CPU in a login flow). Only w commits, so its cache stays
// warm; reads outside transactions use the pool (db). Brief transactions
// that queue for the writer commit together (group.go).
type backend struct {
	db      *sql.DB        // readers
	w       *sql.DB        // the writer's own connection
	writer  chan struct{}  // held by this process's current writer
	stmts   stmtCache      // prepared on db
	wstmts  stmtCache      // prepared on w
	warmers sync.WaitGroup // background prepares, waited for by Close

	waiting atomic.Int32 // writers queued on the semaphore
	open    *group       // w's open group transaction (group.go); the semaphore holder's
	commits atomic.Int64 // group COMMITs, for tests
	// warmReads counts brief reads run on the writer's connection, for tests.
	warmReads atomic.Int64
}

// stmtCache keeps one prepared statement per query for one *sql.DB.
type stmtCache struct {
	m       sync.Map // query → *sql.Stmt
	warming sync.Map // query → true once a background prepare started
}

func (c *stmtCache) get(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	if v, ok := c.m.Load(q); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if v, loaded := c.m.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

func (c *stmtCache) close() {
	c.m.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
}

// writerWait bounds how long a writer queues on the semaphore; after that
// it goes on to SQLite's busy handling (so a mistake that writes outside a
// transaction while holding one fails as before instead of hanging).
const writerWait = 10 * time.Second

// lockWriter takes the writer semaphore and returns its release and the
// database to write through: the writer's connection, or the pool (and a
// no-op release) when the wait timed out. A transaction joins the open
// group (join); anything else commits an open group first.
func (b *backend) lockWriter(ctx context.Context, join bool) (func(), *sql.DB, *stmtCache, error) {
	select {
	case b.writer <- struct{}{}:
	default:
		b.waiting.Add(1)
		t := time.NewTimer(writerWait)
		defer t.Stop()
		select {
		case b.writer <- struct{}{}:
			b.waiting.Add(-1)
		case <-ctx.Done():
			b.waiting.Add(-1)
			return nil, nil, nil, ctx.Err()
		case <-t.C:
			b.waiting.Add(-1)
			return func() {}, b.db, &b.stmts, nil
		}
	}
	if !join {
		b.endGroup(false)
	}
	return b.unlockWriter(), b.w, &b.wstmts, nil
}

// unlockWriter returns the release of the writer semaphore, which the
// caller holds; calling it again does nothing.
func (b *backend) unlockWriter() func() {
	var once sync.Once
	return func() { once.Do(func() { <-b.writer }) }
}

// idleWriter takes the writer semaphore for a brief read when nobody
// holds it, no group transaction is open on the writer's connection and
// no writer queues. A reading connection drops its whole page cache
// whenever another connection has committed since its last read, so
// under sign-in load every read on the pool re-reads each page it
// touches (a consent state's join: some thirty pages, a pread each); the
// writer's connection made the last commit itself and keeps its cache.
func (b *backend) idleWriter() bool {
	select {
	case b.writer <- struct{}{}:
		if b.open != nil || b.waiting.Load() > 0 {
			<-b.writer
			return false
		}
		b.warmReads.Add(1)
		return true
	default:
		return false
	}
}

// writes reports whether a statement run outside a transaction may write.
func writes(q string) bool {
	q = strings.TrimSpace(q)
	return len(q) < 6 || !strings.EqualFold(q[:6], "SELECT")
}

// prepared returns q prepared on the database it runs on: the writer's
// connection (with the semaphore held until release) when it may write,
// or when it is a brief read (school.Brief) and the writer is idle; else
// the pool.
func (b *backend) prepared(ctx context.Context, q string) (st *sql.Stmt, release func(), err error) {
	db, cache, release := b.db, &b.stmts, func() {}
	if writes(q) {
		if release, db, cache, err = b.lockWriter(ctx, false); err != nil {
			return nil, nil, err
		}
	} else if school.IsBrief(ctx) && b.idleWriter() {
		db, cache, release = b.w, &b.wstmts, b.unlockWriter()
	}
	if st, err = cache.get(ctx, db, q); err != nil {
		release()
		return nil, nil, err
	}
	return st, release, nil
}

func (b *backend) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	st, unlock, err := b.prepared(ctx, q)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return execSQL(ctx, stmtExecer{st}, q, args...)
}
func (b *backend) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	st, unlock, err := b.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	r, err := st.QueryContext(ctx, args...)
	if err != nil {
		unlock()
		return nil, err
	}
	return rows{r, unlock}, nil
}
func (b *backend) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	st, unlock, err := b.prepared(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return row{st.QueryRowContext(ctx, args...), unlock}
}
func (b *backend) Begin(ctx context.Context) (sqlstore.Tx, error) {
	join := school.IsBrief(ctx)
	unlock, db, cache, err := b.lockWriter(ctx, join)
	if err != nil {
		return nil, err
	}
	if !join || db != b.w { // not brief, or the wait for the writer timed out: a transaction of its own
		t, err := db.BeginTx(ctx, nil)
		if err != nil {
			unlock()
			return nil, err
		}
		return &tx{t: t, b: b, db: db, stmts: cache, unlock: unlock}, nil
	}
	g, err := b.joinGroup()
	if err != nil {
		unlock()
		return nil, err
	}
	t := &tx{t: g.t, b: b, db: db, stmts: cache, unlock: unlock, g: g}
	// Every member, the first too, runs in a savepoint: releasing it
	// fails if SQLite ended the transaction under it (an I/O error the
	// member's code let pass), where a later member's SAVEPOINT would
	// otherwise begin a new transaction without a word.
	if _, err := t.Exec(ctx, `SAVEPOINT member`); err != nil {
		b.endGroup(true)
		unlock()
		return nil, err
	}
	return t, nil
}
func (b *backend) Ping(ctx context.Context) error {
	var one int
	return b.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}
func (b *backend) Close() error {
	if unlock, _, _, err := b.lockWriter(context.Background(), false); err == nil {
		unlock() // an open group is committed
	}
	b.warmers.Wait()
	b.stmts.close()
	b.wstmts.close()
	return errors.Join(b.w.Close(), b.db.Close())
}
func (b *backend) ForUpdate() string  { return "" }
func (b *backend) WritesInWith() bool { return false }

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
	return errors.As(err, &e) || errors.Is(err, errGroupAborted) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) || errors.Is(err, driver.ErrBadConn)
}

func (b *backend) Retryable(err error) bool {
	if errors.Is(err, errGroupAborted) {
		return true
	}
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
	db     *sql.DB    // the database t runs on
	stmts  *stmtCache // statements prepared on db
	unlock func()     // releases the writer semaphore
	g      *group     // the group t is a member of (a savepoint in g.t), or nil
	ended  bool
}

// execer returns the shared prepared statement bound to this transaction
// when there is one. A query not yet prepared runs unprepared here and is
// prepared for next time in the background: preparing on the pool from
// inside a transaction would wait for a second connection while holding
// the writer lock, and with every connection in a transaction that waits
// forever.
func (t *tx) execer(ctx context.Context, q string) execer {
	if t.ended {
		return endedTx{}
	}
	if v, ok := t.stmts.m.Load(q); ok {
		return stmtExecer{t.t.StmtContext(ctx, v.(*sql.Stmt))}
	}
	if _, warming := t.stmts.warming.LoadOrStore(q, true); !warming {
		db, c := t.db, t.stmts
		t.b.warmers.Go(func() { _, _ = c.get(context.Background(), db, q) })
	}
	return t.t
}

// stmtCtx is the context a statement of t runs with. In a group a
// cancelled request must not interrupt its statement: SQLite rolls back
// the whole transaction when a write inside it is interrupted, the other
// members' writes with it.
func (t *tx) stmtCtx(ctx context.Context) context.Context {
	if t.g != nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t *tx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	ctx = t.stmtCtx(ctx)
	return execSQL(ctx, t.execer(ctx, q), q, args...)
}
func (t *tx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	ctx = t.stmtCtx(ctx)
	return querySQL(ctx, t.execer(ctx, q), q, args...)
}
func (t *tx) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	ctx = t.stmtCtx(ctx)
	rows, err := t.execer(ctx, q).QueryContext(ctx, q, args...)
	if err != nil {
		return errRow{err}
	}
	return &firstRow{rows: rows}
}

// Commit of a group member releases its savepoint into the group, hands
// the group on or commits it (handOn), and returns the group's COMMIT
// result.
func (t *tx) Commit(ctx context.Context) error {
	if t.ended {
		return sql.ErrTxDone
	}
	if t.g == nil {
		t.ended = true
		defer t.unlock()
		return t.t.Commit()
	}
	if _, err := t.Exec(ctx, `RELEASE member`); err != nil {
		t.abort()
		return err
	}
	t.ended = true
	t.g.members++
	if g := t.b.handOn(t.g, t.unlock); g != nil {
		return t.b.wait(g)
	}
	return t.g.err
}

// Rollback of a group member undoes its savepoint only; the group goes on
// (or commits the others' writes).
func (t *tx) Rollback(ctx context.Context) error {
	if t.ended {
		return sql.ErrTxDone
	}
	if t.g == nil {
		t.ended = true
		defer t.unlock()
		return t.t.Rollback()
	}
	_, err := t.Exec(ctx, `ROLLBACK TO member`)
	if err == nil {
		_, err = t.Exec(ctx, `RELEASE member`)
	}
	if err != nil { // SQLite ended the transaction itself (an I/O error, say)
		t.abort()
		return err
	}
	t.ended = true
	t.b.handOn(t.g, t.unlock)
	return nil
}

// abort rolls back t's whole group: its other members get errGroupAborted
// and run again.
func (t *tx) abort() {
	t.ended = true
	t.b.endGroup(true)
	t.unlock()
}

// endedTx is what statements of a finished transaction run on.
type endedTx struct{}

func (endedTx) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	return nil, sql.ErrTxDone
}
func (endedTx) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	return nil, sql.ErrTxDone
}

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

// BeginBulk implements sqlstore.BulkBeginner: a transaction on the
// writer's connection with a page cache large enough that inserting
// millions of rows with random keys does not spill dirty pages to the WAL
// over and over (statement journals are in memory on every connection:
// temp_store). The cache is set before BEGIN and reset before the
// connection goes back.
func (b *backend) BeginBulk(ctx context.Context) (sqlstore.Tx, error) {
	unlock, db, cache, err := b.lockWriter(ctx, false)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		unlock()
		return nil, err
	}
	release := func() {
		_, _ = conn.ExecContext(context.Background(), `PRAGMA cache_size = `+cacheSize)
		conn.Close()
		unlock()
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -524288`); err != nil {
		release()
		return nil, err
	}
	t, err := conn.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, err
	}
	return &tx{t: t, b: b, db: db, stmts: cache, unlock: release}, nil
}
