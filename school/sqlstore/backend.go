package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/elevid/elevid/school"
)

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is a single-row result; Scan returns ErrNoRows when there is none.
type Row interface {
	Scan(dest ...any) error
}

// ErrNoRows is returned by Row.Scan when the query matched nothing.
var ErrNoRows = errors.New("sqlstore: no rows")

// Conn runs statements, on the pool or inside a transaction.
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Tx is a transaction.
type Tx interface {
	Conn
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Deferrer is a transaction that can hold back a write whose only result
// is its error and send it with the transaction's next statement or its
// COMMIT, in the same round trip (PostgreSQL). Its error, passed through
// mapErr when that is not nil, is then that statement's or the commit's,
// and it ends the transaction.
type Deferrer interface {
	Defer(ctx context.Context, mapErr func(error) error, query string, args ...any) error
}

// Backend is one database.
type Backend interface {
	Conn
	Begin(ctx context.Context) (Tx, error)
	Ping(ctx context.Context) error
	Close() error
	// ForUpdate is the row-lock suffix for SELECTs inside updaters
	// (" FOR UPDATE" on PostgreSQL; SQLite's writer lock makes it "").
	ForUpdate() string
	// WritesInWith reports whether a statement's WITH clause may hold an
	// UPDATE … RETURNING whose rows the statement goes on to use
	// (PostgreSQL), so that two dependent writes are one statement.
	WritesInWith() bool
	// Classify maps a driver error to a sentinel error of package school
	// (ErrConflict for unique violations, ErrInvalid for foreign-key
	// violations) or returns it unchanged.
	Classify(err error) error
	// Retryable reports whether a transaction that failed with err may
	// succeed when run again (serialization failure, deadlock, busy).
	Retryable(err error) bool
	// IsDatabaseError reports whether err (or an error it wraps) came from
	// the database driver, as opposed to an error of the caller's own.
	IsDatabaseError(err error) bool
}

// Options tune a Store.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnError, when set, is told of every unexpected database error (for
	// metrics); sentinel outcomes such as ErrNotFound are not errors here.
	OnError func(op string, err error)
	// MaxAttempts bounds transaction retries; 10 when zero.
	MaxAttempts int
	// Counter, when set, counts the transactions and statements the store
	// runs (for metrics and the load test).
	Counter *Counter
	// AuditKeys returns the audit chain's keys (school.AuditKeys: the
	// first keys new entries); it is called at each append and check, so
	// it may be wired before the secrets are loaded. Without it (or with
	// no keys) entries are written unkeyed, which only tests do.
	AuditKeys func() school.AuditKeys
}

// Store implements school.Store.
type Store struct {
	b     Backend
	q     Conn // b, or the transaction when inTx
	inTx  bool
	opt   Options
	after *[]func(context.Context) // AfterCommit hooks of the transaction
}

var _ school.Store = (*Store)(nil)

// New returns a Store over b.
func New(b Backend, opt Options) *Store {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxAttempts == 0 {
		opt.MaxAttempts = 10
	}
	if opt.Counter != nil {
		b = CountingBackend{Backend: b, C: opt.Counter}
	}
	return &Store{b: b, q: b, opt: opt}
}

// Backend returns the backend, for packages that add their own queries.
func (s *Store) Backend() Backend { return s.b }

// Ping implements school.Store.
func (s *Store) Ping(ctx context.Context) error { return s.b.Ping(ctx) }

// Close implements school.Store.
func (s *Store) Close() error { return s.b.Close() }

func (s *Store) now() time.Time { return s.opt.Now().UTC().Truncate(time.Microsecond) }

// InTx implements school.Store.
func (s *Store) InTx(ctx context.Context, fn func(q school.Queries) error) error {
	return s.tx(ctx, "tx", func(t *Store) error { return fn(t) })
}

// tx runs fn in a transaction, retrying on retryable errors with jittered
// backoff, or joins the current transaction.
func (s *Store) tx(ctx context.Context, op string, fn func(t *Store) error) error {
	if s.inTx {
		return fn(s)
	}
	var fromFn bool
	err := s.retry(ctx, func() error {
		var err error
		fromFn, err = s.try(ctx, fn)
		return err
	})
	if fromFn && err != nil && !s.b.IsDatabaseError(err) {
		// The caller's own error (e.g. "consent does not cover the
		// platform"): returned as it is, not counted as a store error.
		return err
	}
	return s.fail(op, err)
}

// retry runs attempt until it succeeds, fails with an error the backend
// does not call retryable (busy, serialization failure, deadlock), or
// MaxAttempts are used, with a short randomized backoff in between; it
// returns the last error.
func (s *Store) retry(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || !s.b.Retryable(err) || n >= s.opt.MaxAttempts || ctx.Err() != nil {
			return err
		}
		backoff := time.Duration(n*n) * time.Millisecond
		backoff += time.Duration(rand.Int64N(int64(backoff) + 1))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// exec runs one statement that writes: joined to the transaction when
// inside one, else on its own (no BEGIN … COMMIT, which would cost two
// round trips more), retried like a transaction.
func (s *Store) exec(ctx context.Context, op, q string, args ...any) (int64, error) {
	var n int64
	err := s.retry(ctx, func() error {
		var err error
		n, err = s.q.Exec(ctx, q, args...)
		return err
	})
	return n, s.fail(op, err)
}

// write runs a statement whose only result is its error. Inside a
// transaction whose backend can defer it (Deferrer) it goes out with the
// next statement or the COMMIT, and a failure comes from there: only for
// writes whose failure should end the transaction. Elsewhere it runs at
// once, retried like exec.
func (s *Store) write(ctx context.Context, op, q string, args ...any) error {
	return s.deferred(ctx, op, nil, q, args...)
}

// writeOnce is write for an insert that records a single use (of a code,
// a message id): a unique violation means the thing was used before, and
// is ErrUsed, "what: used". With what empty it is write.
func (s *Store) writeOnce(ctx context.Context, op, what, q string, args ...any) error {
	if what == "" {
		return s.write(ctx, op, q, args...)
	}
	return s.deferred(ctx, op, func(err error) error {
		if errors.Is(s.b.Classify(err), school.ErrConflict) {
			return fmt.Errorf("%s: %w", what, school.ErrUsed)
		}
		return err
	}, q, args...)
}

func (s *Store) deferred(ctx context.Context, op string, mapErr func(error) error, q string, args ...any) error {
	if d, ok := s.q.(Deferrer); ok && s.inTx {
		return s.fail(op, d.Defer(ctx, mapErr, q, args...))
	}
	_, err := s.exec(ctx, op, q, args...)
	if err != nil && mapErr != nil {
		err = mapErr(err)
	}
	return err
}

// try runs fn in one transaction; fromFn reports whether err came from fn
// (rather than from beginning or committing).
func (s *Store) try(ctx context.Context, fn func(t *Store) error) (fromFn bool, err error) {
	t, err := s.b.Begin(ctx)
	if err != nil {
		return false, err
	}
	var after []func(context.Context)
	child := &Store{b: s.b, q: t, inTx: true, opt: s.opt, after: &after}
	defer func() {
		if p := recover(); p != nil {
			_ = t.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	if err = fn(child); err != nil {
		_ = t.Rollback(context.WithoutCancel(ctx))
		return true, err
	}
	if err := t.Commit(ctx); err != nil {
		return false, err
	}
	for _, fn := range after {
		fn(context.WithoutCancel(ctx))
	}
	return false, nil
}

// AfterCommit implements school.Queries.
func (s *Store) AfterCommit(fn func(ctx context.Context)) {
	if !s.inTx {
		fn(context.Background())
		return
	}
	*s.after = append(*s.after, fn)
}

// fail reports unexpected errors to OnError and returns err classified.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	err = s.b.Classify(err)
	for _, e := range []error{school.ErrNotFound, school.ErrConflict, school.ErrInvalid, school.ErrExpired, school.ErrUsed, school.ErrLocked, school.ErrChainBroken, context.Canceled} {
		if errors.Is(err, e) {
			return err
		}
	}
	if s.opt.OnError != nil {
		s.opt.OnError(op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// one scans a single row, mapping ErrNoRows to school.ErrNotFound.
func one(err error, what string) error {
	if errors.Is(err, ErrNoRows) {
		return fmt.Errorf("%s: %w", what, school.ErrNotFound)
	}
	return err
}

// micros converts a time to stored Unix microseconds (0 for zero).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros converts stored Unix microseconds back (0 to the zero time).
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// scanString scans a row of one text column.
func scanString(r Rows) (string, error) {
	var v string
	return v, r.Scan(&v)
}

// collect runs query and scans every row with scan.
func collect[T any](ctx context.Context, q Conn, scan func(Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
