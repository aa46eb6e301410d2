package sqlstore

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Counter counts what a store asks of its database: transactions (BEGIN …
// COMMIT/ROLLBACK), single statements run outside a transaction (each its
// own implicit transaction) and statements run inside transactions.
type Counter struct {
	Transactions atomic.Int64
	Statements   atomic.Int64
	InTx         atomic.Int64
	// PerQuery, when set (Track), counts each distinct SQL text.
	perQuery sync.Map // string → *atomic.Int64
	// samples holds, when tracking, the arguments each distinct SQL text
	// first ran with (for EXPLAIN in tests).
	samples sync.Map // string → []any
	track   bool
}

// Track makes c count every distinct statement (see Top).
func (c *Counter) Track() { c.track = true }

// Top returns the n most frequent statements with their counts.
func (c *Counter) Top(n int) []QueryCount {
	var out []QueryCount
	c.perQuery.Range(func(k, v any) bool {
		out = append(out, QueryCount{Query: k.(string), N: v.(*atomic.Int64).Load()})
		return true
	})
	slices.SortFunc(out, func(a, b QueryCount) int { return cmp.Compare(b.N, a.N) })
	return out[:min(n, len(out))]
}

// Sample returns the arguments the statement q (as in Top, without the
// "[tx] " mark) first ran with; false when c does not track or q never ran.
func (c *Counter) Sample(q string) ([]any, bool) {
	v, ok := c.samples.Load(q)
	if !ok {
		return nil, false
	}
	return v.([]any), true
}

// QueryCount is one statement and how often it ran.
type QueryCount struct {
	Query string
	N     int64
}

func (c *Counter) note(q string, inTx bool, args []any) {
	if !c.track {
		return
	}
	if _, ok := c.samples.Load(q); !ok {
		c.samples.LoadOrStore(q, slices.Clone(args))
	}
	if inTx {
		q = "[tx] " + q
	}
	v, ok := c.perQuery.Load(q)
	if !ok {
		v, _ = c.perQuery.LoadOrStore(q, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// CountingBackend wraps a Backend and counts into a Counter; build
// a store with New(CountingBackend{Backend: b, C: c}, opt), or pass Options.Counter.
type CountingBackend struct {
	Backend
	C *Counter
}

// Exec implements Backend.
func (b CountingBackend) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return b.single().Exec(ctx, q, args...)
}

// Query implements Backend.
func (b CountingBackend) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	return b.single().Query(ctx, q, args...)
}

// QueryRow implements Backend.
func (b CountingBackend) QueryRow(ctx context.Context, q string, args ...any) Row {
	return b.single().QueryRow(ctx, q, args...)
}

func (b CountingBackend) single() counted { return counted{b.Backend, &b.C.Statements, b.C, false} }

// Begin implements Backend.
func (b CountingBackend) Begin(ctx context.Context) (Tx, error) {
	b.C.Transactions.Add(1)
	t, err := b.Backend.Begin(ctx)
	if err != nil {
		return nil, err
	}
	ct := countingTx{counted{t, &b.C.InTx, b.C, true}, t}
	if d, ok := t.(Deferrer); ok {
		return countingDeferrer{ct, d}, nil
	}
	return ct, nil
}

// counted runs statements on a connection or transaction and counts them
// into n.
type counted struct {
	conn Conn
	n    *atomic.Int64
	c    *Counter
	inTx bool
}

func (c counted) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	c.n.Add(1)
	c.c.note(q, c.inTx, args)
	return c.conn.Exec(ctx, q, args...)
}

func (c counted) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	c.n.Add(1)
	c.c.note(q, c.inTx, args)
	return c.conn.Query(ctx, q, args...)
}

func (c counted) QueryRow(ctx context.Context, q string, args ...any) Row {
	c.n.Add(1)
	c.c.note(q, c.inTx, args)
	return c.conn.QueryRow(ctx, q, args...)
}

// countingTx counts the statements of one transaction.
type countingTx struct {
	counted
	tx Tx
}

func (t countingTx) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t countingTx) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// countingDeferrer is a countingTx over a transaction that can defer
// writes (Deferrer); it counts the deferred ones too.
type countingDeferrer struct {
	countingTx
	d Deferrer
}

func (t countingDeferrer) Defer(ctx context.Context, mapErr func(error) error, q string, args ...any) error {
	t.n.Add(1)
	t.c.note(q, t.inTx, args)
	return t.d.Defer(ctx, mapErr, q, args...)
}
