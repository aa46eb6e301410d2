package rostersync

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/elevid/elevid/school"
)

// Scheduler runs each school's sync on the interval of its source, inside
// `elevid serve`. Several nodes may run a Scheduler: the run lock in the
// store lets only one sync a school at a time, and the last run's start
// time (from the store) decides when the next is due, on any node.
type Scheduler struct {
	s    *Syncer
	log  *slog.Logger
	tick time.Duration
	// Concurrency is how many due schools run at once (DefaultConcurrency
	// when zero); each school's runs still exclude each other across
	// nodes through the store lock.
	Concurrency int
}

// NewScheduler returns a Scheduler that checks every tick (a minute when
// zero) which schools are due.
func NewScheduler(s *Syncer, tick time.Duration) *Scheduler {
	if tick <= 0 {
		tick = time.Minute
	}
	return &Scheduler{s: s, log: s.opt.Log, tick: tick}
}

// Run checks for due schools until ctx ends, then returns nil. A failed
// run is retried after the school's interval, like a successful one.
func (sc *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(sc.tick)
	defer t.Stop()
	for {
		sc.RunDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunDue runs every school whose interval has passed since its last run,
// full when its full interval has passed (or it has none), else
// incremental, Concurrency schools at a time, and waits for them. A
// school whose last run is still "running" without a live holder of its
// lock (a killed process) gets that run marked interrupted.
func (sc *Scheduler) RunDue(ctx context.Context) {
	st := sc.s.opt.Store
	srcs, err := st.ListDirectorySources(ctx)
	if err != nil {
		if ctx.Err() == nil {
			sc.log.Error("rostersync: listing directory sources", "err", err)
		}
		return
	}
	now := sc.s.opt.Now()
	type due struct {
		schoolID string
		mode     school.SyncMode
	}
	var todo []due
	for _, src := range srcs {
		if ctx.Err() != nil {
			return
		}
		runs, err := st.ListSyncRuns(ctx, src.SchoolID, 1)
		if err != nil {
			sc.log.Error("rostersync: listing runs", "school", src.SchoolID, "err", err)
			continue
		}
		if len(runs) > 0 && runs[0].Status == school.SyncRunning {
			if err := sc.s.Reap(ctx, src.SchoolID); err != nil {
				sc.log.Warn("rostersync: checking a running run", "school", src.SchoolID, "err", err)
			}
		}
		if src.Interval <= 0 {
			continue
		}
		if len(runs) > 0 && now.Sub(runs[0].StartedAt) < src.Interval {
			continue
		}
		mode := school.SyncFull
		if src.FullInterval > 0 && !src.LastFullRun.IsZero() && now.Sub(src.LastFullRun) < src.FullInterval {
			mode = school.SyncIncremental
		}
		todo = append(todo, due{src.SchoolID, mode})
	}
	n := sc.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	peers := NewPeers()
	sc.s.each(ctx, len(todo), n, func(i int) {
		_, err := sc.s.Run(ctx, todo[i].schoolID, RunOptions{Mode: todo[i].mode, Peers: peers})
		switch {
		case errors.Is(err, ErrBusy):
			sc.log.Info("rostersync: school is being synced elsewhere", "school", todo[i].schoolID)
		case err != nil:
			sc.log.Warn("rostersync: scheduled run failed", "school", todo[i].schoolID, "err", err)
		}
	})
}
