package oidcbench

import (
	"context"
	"sync/atomic"

	"github.com/elevid/elevid/school/sqlstore"
)

// Counter counts what a store asks of its database: transactions (BEGIN …
// COMMIT/ROLLBACK), single statements run outside a transaction (each its
// own implicit transaction) and statements run inside transactions.
type Counter struct {
	Transactions atomic.Int64
	Statements   atomic.Int64
	InTx         atomic.Int64
}

// CountingBackend wraps a sqlstore.Backend and counts into a Counter; build
// a store with sqlstore.New(oidcbench.CountingBackend{Backend: b, C: c}, opt).
type CountingBackend struct {
	sqlstore.Backend
	C *Counter
}

// Exec implements sqlstore.Backend.
func (b CountingBackend) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	b.C.Statements.Add(1)
	return b.Backend.Exec(ctx, q, args...)
}

// Query implements sqlstore.Backend.
func (b CountingBackend) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	b.C.Statements.Add(1)
	return b.Backend.Query(ctx, q, args...)
}

// QueryRow implements sqlstore.Backend.
func (b CountingBackend) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	b.C.Statements.Add(1)
	return b.Backend.QueryRow(ctx, q, args...)
}

// Begin implements sqlstore.Backend.
func (b CountingBackend) Begin(ctx context.Context) (sqlstore.Tx, error) {
	b.C.Transactions.Add(1)
	t, err := b.Backend.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return countingTx{t, b.C}, nil
}

// countingTx counts the statements of one transaction.
type countingTx struct {
	sqlstore.Tx
	c *Counter
}

func (t countingTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	t.c.InTx.Add(1)
	return t.Tx.Exec(ctx, q, args...)
}

func (t countingTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	t.c.InTx.Add(1)
	return t.Tx.Query(ctx, q, args...)
}

func (t countingTx) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	t.c.InTx.Add(1)
	return t.Tx.QueryRow(ctx, q, args...)
}
