package rostersync

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/elevid/elevid/school"
)

// AllOptions choose what a run over every school does.
type AllOptions struct {
	Mode   school.SyncMode // SyncFull when empty
	DryRun bool
	Force  bool
	// Concurrency is how many schools sync at once; DefaultConcurrency
	// when zero. Runs of one school still exclude each other through the
	// store lock, across processes and nodes.
	Concurrency int
	// Done, when set, is called (from the worker, one call at a time) as
	// each school finishes.
	Done func(SchoolResult)
}

// DefaultConcurrency is how many schools RunAll and the Scheduler sync
// at once unless told otherwise.
const DefaultConcurrency = 4

// SchoolResult is the outcome of one school's run within RunAll.
type SchoolResult struct {
	School   school.School
	Result   Result
	Err      error
	Duration time.Duration
	N, Of    int // this was the Nth school of Of to finish
}

// RunAll syncs every school that has a directory source, Concurrency at a
// time, sharing one Peers so that a pupil found in two schools is
// reported. It returns the results ordered by school code; a school's
// failure does not stop the others (its error is in its result).
func (s *Syncer) RunAll(ctx context.Context, ao AllOptions) ([]SchoolResult, error) {
	st := s.opt.Store
	srcs, err := st.ListDirectorySources(ctx)
	if err != nil {
		return nil, err
	}
	var todo []school.School
	for _, src := range srcs {
		sch, err := st.GetSchool(ctx, src.SchoolID)
		if err != nil {
			return nil, err
		}
		todo = append(todo, sch)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Code < todo[j].Code })
	n := ao.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	peers := NewPeers()
	results := make([]SchoolResult, len(todo))
	var mu sync.Mutex
	finished := 0
	s.each(ctx, len(todo), n, func(i int) {
		start := time.Now()
		res, err := s.Run(ctx, todo[i].ID, RunOptions{Mode: ao.Mode, DryRun: ao.DryRun, Force: ao.Force, Peers: peers})
		r := SchoolResult{School: todo[i], Result: res, Err: err, Duration: time.Since(start), Of: len(todo)}
		mu.Lock()
		defer mu.Unlock()
		finished++
		r.N = finished
		results[i] = r
		if ao.Done != nil {
			ao.Done(r)
		}
	})
	if err := ctx.Err(); err != nil {
		return results, err
	}
	return results, nil
}

// each calls fn(0 … n-1) on up to workers goroutines and waits; it
// stops handing out work when ctx ends.
func (s *Syncer) each(ctx context.Context, n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
}
