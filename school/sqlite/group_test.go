package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

func openGroupTest(t *testing.T) (*Store, *backend, string) {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := st.CreateSchool(ctx, school.School{Code: "grp", Name: "G", Domain: "g.example.dk"})
	if err != nil {
		t.Fatal(err)
	}
	return st, st.b, sc.ID
}

// classes are the names of the school's classes, read through the pool
// (what another request would see).
func classes(t *testing.T, st *Store, schoolID string) map[string]bool {
	t.Helper()
	return classesWith(t, context.Background(), st, schoolID)
}

// classesWith is classes read with ctx.
func classesWith(t *testing.T, ctx context.Context, st *Store, schoolID string) map[string]bool {
	t.Helper()
	cs, err := st.ListClasses(ctx, schoolID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, c := range cs {
		m[c.Name] = true
	}
	return m
}

// begin starts a brief transaction on b and writes a class named name.
func begin(t *testing.T, ctx context.Context, b *backend, schoolID, name string) *tx {
	t.Helper()
	tr, err := b.Begin(school.Brief(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Exec(ctx, `INSERT INTO classes (id, school_id, name, created_at) VALUES ($1, $2, $3, 1)`,
		school.NewID(), schoolID, name); err != nil {
		t.Fatal(err)
	}
	return tr.(*tx)
}

// queued waits until n writers queue for the writer.
func queued(t *testing.T, b *backend, n int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); b.waiting.Load() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writers queued, want %d", b.waiting.Load(), n)
		}
	}
}

// grouped begins a member writing class nameA, queues a second one
// writing nameB (with ctxB) and commits the first, which hands the group
// on: it returns the second member, running in the group, and where the
// first's Commit will answer.
func grouped(t *testing.T, b *backend, sch, nameA string, ctxB context.Context, nameB string) (*tx, <-chan error) {
	t.Helper()
	ctx := context.Background()
	first := begin(t, ctx, b, sch, nameA)
	second := make(chan *tx)
	go func() { second <- begin(t, ctxB, b, sch, nameB) }()
	queued(t, b, 1)
	committed := make(chan error, 1)
	go func() { committed <- first.Commit(ctx) }()
	return <-second, committed
}

// TestGroupCommit: a transaction that finishes while another waits for the
// writer hands the open SQLite transaction on; its Commit returns only
// when the group has committed, nothing of it is visible before; a member
// that rolls back is undone alone; one COMMIT serves both.
func TestGroupCommit(t *testing.T) {
	st, b, sch := openGroupTest(t)
	ctx := context.Background()
	tr, committed := grouped(t, b, sch, "1A", ctx, "1B") // the second runs in the first's group
	select {
	case err := <-committed:
		t.Fatalf("first Commit returned (%v) before its group committed", err)
	case <-time.After(20 * time.Millisecond):
	}
	if got := classes(t, st, sch); got["1A"] {
		t.Fatal("a member's write is visible before its group committed")
	}
	commits := b.commits.Load()
	if err := tr.Rollback(ctx); err != nil { // nobody waits: the group commits
		t.Fatal(err)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got := classes(t, st, sch); !got["1A"] || got["1B"] {
		t.Fatalf("classes after the group = %v, want 1A only", got)
	}
	if n := b.commits.Load() - commits; n != 1 {
		t.Fatalf("%d COMMITs for the group, want 1", n)
	}
	if err := tr.Commit(ctx); !errors.Is(err, sql.ErrTxDone) {
		t.Fatalf("Commit of a member that rolled back: %v", err)
	}
}

// TestGroupAbortReachesEveryMember: when the group's transaction is rolled
// back by something outside a member, that member's Commit reports a
// retryable error and its write is gone.
func TestGroupAbortReachesEveryMember(t *testing.T) {
	st, b, sch := openGroupTest(t)
	tr, committed := grouped(t, b, sch, "2A", context.Background(), "2B")
	tr.abort()
	err := <-committed
	if !errors.Is(err, errGroupAborted) || !b.Retryable(err) {
		t.Fatalf("member of an aborted group: %v (retryable %v)", err, b.Retryable(err))
	}
	if got := classes(t, st, sch); len(got) != 0 {
		t.Fatalf("classes after an aborted group = %v", got)
	}
}

// TestGroupHandedToNobody: a group handed on to a writer that gave up is
// committed by its waiting member after groupWait.
func TestGroupHandedToNobody(t *testing.T) {
	st, b, sch := openGroupTest(t)
	ctx := context.Background()
	first := begin(t, ctx, b, sch, "3A")
	b.waiting.Add(1) // a queued writer that will never take its turn
	start := time.Now()
	err := first.Commit(ctx)
	b.waiting.Add(-1)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < groupWait {
		t.Fatalf("Commit returned after %v: it did not hand the group on", waited)
	}
	if got := classes(t, st, sch); !got["3A"] {
		t.Fatalf("classes = %v, want 3A", got)
	}
}

// TestGroupMemberCancelled: a member whose request is cancelled while it
// runs in a group does not interrupt the group (SQLite would roll back the
// whole transaction): the members before it still commit.
func TestGroupMemberCancelled(t *testing.T) {
	st, b, sch := openGroupTest(t)
	cctx, cancel := context.WithCancel(context.Background())
	tr, committed := grouped(t, b, sch, "4A", cctx, "4B")
	cancel()
	if _, err := tr.Exec(cctx, `INSERT INTO classes (id, school_id, name, created_at) VALUES ($1, $2, '4C', 1)`, school.NewID(), sch); err != nil {
		t.Fatalf("a cancelled member's statement: %v", err)
	}
	if err := tr.Rollback(context.WithoutCancel(cctx)); err != nil {
		t.Fatal(err)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got := classes(t, st, sch); !got["4A"] || got["4B"] || got["4C"] {
		t.Fatalf("classes = %v, want 4A only", got)
	}
}

// TestGroupCommitUnderLoad: many concurrent transactions through the
// store, a third of them failing (their own error, or a unique violation
// inside them), with single writes in between: exactly the successful
// ones are there, and they shared COMMITs.
func TestGroupCommitUnderLoad(t *testing.T) {
	st, b, sch := openGroupTest(t)
	ctx := context.Background()
	if _, err := st.CreateClass(ctx, school.Class{SchoolID: sch, Name: "taken", ExternalID: "taken"}); err != nil {
		t.Fatal(err)
	}
	commits := b.commits.Load()
	errMine := errors.New("the caller's own error")
	const n = 300
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			if i%10 == 9 { // a single write, outside any transaction
				_, errs[i] = b.Exec(ctx, `UPDATE schools SET name = $1 WHERE id = $2`, fmt.Sprint("G", i), sch)
				return
			}
			errs[i] = st.InTx(school.Brief(ctx), func(q school.Queries) error {
				if _, err := q.CreateClass(ctx, school.Class{SchoolID: sch, Name: fmt.Sprint("c", i)}); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errMine
				case 2:
					_, err := q.CreateClass(ctx, school.Class{SchoolID: sch, Name: "taken", ExternalID: "taken"})
					return err
				}
				return nil
			})
		})
	}
	wg.Wait()
	got := classes(t, st, sch)
	succeeded := 0
	for i, err := range errs {
		if i%10 == 9 {
			if err != nil {
				t.Errorf("single write %d: %v", i, err)
			}
			continue
		}
		name := fmt.Sprint("c", i)
		switch i % 3 {
		case 0:
			succeeded++
			if err != nil || !got[name] {
				t.Errorf("transaction %d: %v, class there %v", i, err, got[name])
			}
		case 1:
			if !errors.Is(err, errMine) || got[name] {
				t.Errorf("failing transaction %d: %v, class there %v", i, err, got[name])
			}
		case 2:
			if !errors.Is(err, school.ErrConflict) || got[name] {
				t.Errorf("conflicting transaction %d: %v, class there %v", i, err, got[name])
			}
		}
	}
	c := b.commits.Load() - commits
	t.Logf("%d transactions committed with %d COMMITs", succeeded, c)
	if c >= int64(succeeded) {
		t.Errorf("%d COMMITs for %d transactions: none shared", c, succeeded)
	}
}

// TestLongTransactionDoesNotHoldUpAGroup: a transaction that is not brief
// does not join the group handed to it: it commits the group first, so the
// brief member before it answers at once, not when the long one ends.
func TestLongTransactionDoesNotHoldUpAGroup(t *testing.T) {
	st, b, sch := openGroupTest(t)
	ctx := context.Background()
	first := begin(t, ctx, b, sch, "5A")
	long := make(chan sqlstore.Tx)
	go func() {
		tr, err := b.Begin(ctx) // not brief
		if err != nil {
			t.Error(err)
		}
		long <- tr
	}()
	queued(t, b, 1)
	committed := make(chan error, 1)
	go func() { committed <- first.Commit(ctx) }()
	tr := <-long
	t.Cleanup(func() { _ = tr.Rollback(ctx) }) // before the store closes, should the test fail
	if tr.(*tx).g != nil {
		t.Fatal("a transaction that is not brief joined a group")
	}
	select {
	case err := <-committed: // while the long transaction is still open
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * groupWait):
		t.Fatal("the brief member waited for the long transaction after it")
	}
	if got := classes(t, st, sch); !got["5A"] {
		t.Fatalf("classes = %v, want 5A", got)
	}
}

// TestBriefReadsOnTheIdleWriter: a read marked school.Brief runs on the
// writer's connection (warm page cache) when the writer is idle, and on
// the pool when a group transaction is open (without waiting for it or
// seeing its uncommitted rows) or when the read is not brief; writers
// wait for a brief read's rows to close.
func TestBriefReadsOnTheIdleWriter(t *testing.T) {
	st, b, sch := openGroupTest(t)
	ctx := context.Background()
	brief := school.Brief(ctx)
	if _, err := st.CreateClass(ctx, school.Class{SchoolID: sch, Name: "7a"}); err != nil {
		t.Fatal(err)
	}
	read := func(ctx context.Context) map[string]bool { t.Helper(); return classesWith(t, ctx, st, sch) }
	w0 := b.warmReads.Load()
	if got := read(brief); !got["7a"] || b.warmReads.Load() != w0+1 {
		t.Fatalf("brief read on an idle writer: %v, %d on the writer; want 7a, 1", got, b.warmReads.Load()-w0)
	}
	if got := read(ctx); !got["7a"] || b.warmReads.Load() != w0+1 {
		t.Fatalf("read not marked brief: %v, %d on the writer; want 7a, still 1", got, b.warmReads.Load()-w0)
	}

	// An open group: the brief read goes to the pool at once and sees
	// only what is committed.
	tr := begin(t, ctx, b, sch, "7b")
	done := make(chan map[string]bool, 1)
	go func() { done <- read(brief) }()
	select {
	case got := <-done:
		if got["7b"] || !got["7a"] || b.warmReads.Load() != w0+1 {
			t.Fatalf("brief read during a group: %v, %d on the writer; want 7a only, on the pool", got, b.warmReads.Load()-w0)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a brief read waited for an open group")
	}
	if err := tr.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// A writer waits while a brief read's rows are open on the writer.
	rows, err := b.Query(brief, `SELECT name FROM classes WHERE school_id = $1`, sch)
	if err != nil {
		t.Fatal(err)
	}
	if b.warmReads.Load() != w0+2 {
		t.Fatal("the brief read did not run on the idle writer")
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := st.CreateClass(ctx, school.Class{SchoolID: sch, Name: "7c"})
		wrote <- err
	}()
	queued(t, b, 1)
	for rows.Next() {
	}
	rows.Close()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if got := read(ctx); !got["7a"] || !got["7b"] || !got["7c"] {
		t.Fatalf("classes %v; want 7a, 7b, 7c", got)
	}
}
