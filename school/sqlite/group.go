package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Group commit. A transaction's COMMIT writes every page it changed to the
// WAL (two writes a page) and now and then checkpoints: in a login flow
// that was a sixth of the server's CPU, and concurrent sign-ins change the
// same few pages (the ends of the tokens', sessions' and release log's
// indexes) over and over. So brief transactions (school.Brief) of this
// process that queue for the writer share one SQLite transaction, each
// inside a savepoint of it: one that finishes while another is waiting for
// the writer hands the open transaction on instead of committing; the last
// one (nobody waiting, or maxGroup members) commits for all. Every
// member's Commit returns only after that COMMIT, with its result, so a
// caller never sees a write as done before it is durable; a member that
// rolls back is undone alone (ROLLBACK TO its savepoint).
//
// The open group transaction belongs to whoever holds the writer
// semaphore. Anyone who takes the semaphore for something else (a
// transaction that is not brief, a single write, a bulk load) commits an
// open group first, so a long transaction never holds up the brief ones
// before it.

// maxGroup bounds the members of one group: a member's answer waits for
// the others before it.
const maxGroup = 16

// groupWait is how long a member that handed the group on waits before it
// checks that the group was not left open: a queued writer may give up
// (its request was cancelled) after the group was handed to it.
const groupWait = 50 * time.Millisecond

// errGroupAborted is a member's result when its group's transaction was
// rolled back by a failure outside that member (the member's writes are
// gone; running it again is safe). It is retryable.
var errGroupAborted = errors.New("sqlite: group transaction aborted; run the transaction again")

// group is one open SQLite transaction shared by queued transactions.
type group struct {
	t       *sql.Tx
	members int           // members that released their savepoint into it
	done    chan struct{} // closed after COMMIT or rollback
	err     error         // COMMIT's result (or errGroupAborted), set before done closes
}

// joinGroup returns the writer connection's open group, beginning one when
// there is none. The caller holds the writer semaphore.
func (b *backend) joinGroup() (*group, error) {
	if b.open != nil {
		return b.open, nil
	}
	// The group outlives any one member's request: it is not bound to
	// a member's context (database/sql rolls a transaction back when
	// the context it began with is cancelled).
	t, err := b.w.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	b.open = &group{t: t, done: make(chan struct{})}
	return b.open, nil
}

// endGroup commits (or, with nothing in it or abort set, rolls back) the
// open group and tells its members. The caller holds the writer
// semaphore.
func (b *backend) endGroup(abort bool) {
	g := b.open
	if g == nil {
		return
	}
	b.open = nil
	switch {
	case abort:
		_ = g.t.Rollback()
		g.err = errGroupAborted
	case g.members == 0:
		_ = g.t.Rollback()
	default:
		g.err = g.t.Commit()
		b.commits.Add(1)
	}
	close(g.done)
}

// handOn ends a member's turn with the writer: with another writer queued
// and room in the group, the open transaction goes on to it; else the
// group commits now. It releases the semaphore (unlock) either way and
// returns the group to wait for, or nil when it has ended.
func (b *backend) handOn(g *group, unlock func()) *group {
	if b.waiting.Load() > 0 && g.members < maxGroup {
		unlock()
		return g
	}
	b.endGroup(false)
	unlock()
	return nil
}

// wait waits for g to end and returns its result. A group handed on to a
// writer that then gave up would stay open with nobody to commit it, so
// every groupWait the member takes the writer itself, which commits an
// open group (lockWriter without join).
func (b *backend) wait(g *group) error {
	t := time.NewTimer(groupWait)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return g.err
		case <-t.C:
		}
		if unlock, _, _, err := b.lockWriter(context.Background(), false); err == nil {
			unlock()
		}
		t.Reset(groupWait)
	}
}
