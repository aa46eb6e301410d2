package sqlstore

import (
	"context"
	"strings"
)

// BulkInsert inserts n rows into table: row(i) gives row i's values in
// the order of cols, and is called only when its batch is sent, so a
// large insert never holds all its rows.
type BulkInsert func(table string, cols []string, n int, row func(i int) []any) error

// BulkBeginner is implemented by a Backend that has a transaction better
// suited to loading millions of rows than Begin's (SQLite: a large page
// cache and statement journals in memory, on a connection of its own).
type BulkBeginner interface {
	BeginBulk(ctx context.Context) (Tx, error)
}

// Copier is implemented by a Tx that loads rows faster than multi-row
// INSERTs do (PostgreSQL's COPY); Bulk uses it when there is one.
type Copier interface {
	CopyFrom(ctx context.Context, table string, cols []string, n int, row func(i int) []any) error
}

// Bulk runs load in one transaction whose insert sends multi-row INSERTs
// (or COPY, see Copier).
// It is for loading large amounts of test data (the size test of `elevid
// bench prepare`), never for a request: the rows are not validated
// beyond the schema's constraints, the transaction is not retried, and
// everything load inserts is rolled back when it returns an error.
func (s *Store) Bulk(ctx context.Context, load func(insert BulkInsert) error) error {
	b := s.b
	if c, ok := b.(CountingBackend); ok {
		b = c.Backend
	}
	begin := s.b.Begin
	if bb, ok := b.(BulkBeginner); ok {
		begin = bb.BeginBulk
	}
	t, err := begin(ctx)
	if err != nil {
		return s.fail("bulk insert", err)
	}
	child := &Store{b: s.b, q: t, inTx: true, opt: s.opt, after: new([]func(context.Context))}
	err = load(func(table string, cols []string, n int, row func(i int) []any) error {
		if c, ok := t.(Copier); ok {
			return c.CopyFrom(ctx, table, cols, n, row)
		}
		return child.insertMany(ctx, table, strings.Join(cols, ", "), len(cols), n, row)
	})
	if err != nil {
		_ = t.Rollback(context.WithoutCancel(ctx))
		return s.fail("bulk insert", err)
	}
	return s.fail("bulk insert", t.Commit(ctx))
}
