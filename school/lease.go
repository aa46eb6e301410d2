package school

import (
	"context"
	"time"
)

// DefaultLeaseTTL is the lease of a job lock held with HoldLock: a holder
// that dies (kill -9, power loss) blocks the job for at most this long.
const DefaultLeaseTTL = 20 * time.Second

// HoldLock takes the lease name for owner (ttl, DefaultLeaseTTL when
// zero) and renews it every ttl/3 until release is called, so that a live
// holder keeps it however long it works and a dead one loses it within
// ttl. It returns ErrLocked when another owner holds the lease. onLost,
// when not nil, is told of a failed renewal (the lease may then pass to
// another owner once ttl has gone by). release stops the renewal and
// frees the lease; it is safe to call more than once.
func HoldLock(ctx context.Context, ls LockStore, name, owner string, ttl time.Duration, onLost func(error)) (release func(), err error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if err := ls.TryLock(ctx, name, owner, ttl); err != nil {
		return nil, err
	}
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(renewCtx, ttl/3)
				err := ls.TryLock(rctx, name, owner, ttl)
				cancel()
				if err != nil && renewCtx.Err() == nil && onLost != nil {
					onLost(err)
				}
			}
		}
	}()
	released := false
	return func() {
		if released {
			return
		}
		released = true
		stop()
		<-done
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = ls.Unlock(uctx, name, owner)
	}, nil
}
