package transparency

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// Job deletes what is due under Retention. Only one node runs it at a
// time (a lease in the store); each batch commits on its own, so a job
// stopped half way resumes where it was on its next run. Before a pupil
// is erased, the pupil's access ends through Access (nothing should be
// left after the quarantine, but a platform that still holds a session
// is told).
type Job struct {
	Store     school.Store
	Access    *access.Service // nil: a service of the job's own
	Retention Retention
	Now       func() time.Time
	Log       *slog.Logger
	Owner     string // this node's lease owner id
	Batch     int    // records per transaction; 500 when zero
}

// A backlog (a million expired tokens after a long stop) goes in
// batches sized to hold the database (SQLite's one writer) for about
// batchTarget each, with a pause of restPerBatch times the batch's
// duration after each, so sign-ins get the writer at least nine tenths of
// the time and never wait long behind a batch. A backlog takes ten times
// as long as flat out; nothing waits for it.
const (
	restPerBatch = 9
	batchTarget  = 20 * time.Millisecond
)

// nextBatch sizes the next batch from how long the last one of size took:
// halved when it took over twice the target, doubled (up to max) when
// under half of it.
func nextBatch(size int, took time.Duration, max int) int {
	switch {
	case took > 2*batchTarget && size > 1:
		return size / 2
	case took < batchTarget/2 && size < max:
		return min(size*2, max)
	}
	return size
}

// RunOnce runs every kind until nothing more is due and returns the
// counts. It returns school.ErrLocked when another node is running it.
func (j *Job) RunOnce(ctx context.Context) (map[school.PurgeKind]int64, error) {
	// A lease renewed while the job works: a node killed mid-purge blocks
	// the job for at most school.DefaultLeaseTTL (it held 15 minutes).
	release, err := school.HoldLock(ctx, j.Store, "retention", j.Owner, 0, func(err error) {
		if j.Log != nil {
			j.Log.Warn("retention: renewing the lease", "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	defer release()
	now := j.Now().UTC()
	cutoff := map[school.PurgeKind]time.Time{
		school.PurgeRemovedPupils: now.Add(-j.Retention.RemovedPupils),
		school.PurgeReleases:      now.Add(-j.Retention.ReleaseLog),
		school.PurgeAccess:        now.Add(-j.Retention.AccessLog),
		school.PurgeExpired:       now.Add(-j.Retention.ExpiredFlows),
	}
	if err := j.endErased(ctx, cutoff[school.PurgeRemovedPupils]); err != nil {
		return nil, err
	}
	counts := map[school.PurgeKind]int64{}
	maxBatch := j.Batch
	if maxBatch <= 0 {
		maxBatch = 500
	}
	for _, kind := range school.PurgeKinds {
		size := maxBatch
		for {
			t0 := time.Now()
			n, err := j.Store.Purge(ctx, kind, cutoff[kind], now, size)
			if err != nil {
				return counts, err
			}
			counts[kind] += n
			if n == 0 {
				break
			}
			took := time.Since(t0)
			size = nextBatch(size, took, maxBatch)
			select {
			case <-ctx.Done():
				return counts, ctx.Err()
			case <-time.After(restPerBatch * took):
			}
		}
	}
	return counts, nil
}

// endErased ends the access of every pupil whose erasure is due (status
// removed before cutoff), each in a transaction of its own, before the
// purge deletes them.
func (j *Job) endErased(ctx context.Context, cutoff time.Time) error {
	svc := j.Access
	if svc == nil {
		svc = access.New(access.Options{Now: j.Now, Logger: j.Log})
	}
	schools, err := j.Store.ListSchools(ctx)
	if err != nil {
		return err
	}
	for _, sch := range schools {
		pupils, err := j.Store.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID, Status: school.PupilRemoved})
		if err != nil {
			return err
		}
		for _, p := range pupils {
			if !p.UpdatedAt.Before(cutoff) {
				continue
			}
			if _, err := svc.EndIn(ctx, j.Store, access.Pupil(p.ID), "erased"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run runs the job every interval until ctx ends.
func (j *Job) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		counts, err := j.RunOnce(ctx)
		switch {
		case errors.Is(err, school.ErrLocked):
			j.Log.Debug("retention: another node is running it")
		case err != nil && ctx.Err() == nil:
			j.Log.Error("retention failed", "err", err)
		case err == nil:
			j.Log.Info("retention done", "removed_pupils", counts[school.PurgeRemovedPupils], "releases", counts[school.PurgeReleases],
				"access", counts[school.PurgeAccess], "expired", counts[school.PurgeExpired])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
