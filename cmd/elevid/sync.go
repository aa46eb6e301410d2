package main

import (
	"context"
	"io"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/school/rostersync"
)

// syncOptions are the roster sync's options with the effects of a
// quarantine: the pupil's access ends through the access service in the
// applying transaction (sessions and tokens revoked, logout notices
// queued for every platform that held a session).
func syncOptions(w *wiring) rostersync.Options {
	a := w.app
	return rostersync.Options{Store: a.store, Sealer: a.sealer, Log: a.log,
		OnQuarantine: func(ctx context.Context, q school.Queries, pupilID string) error {
			_, err := w.access.End(ctx, q, access.Pupil(pupilID), "quarantined: gone from the school's directory")
			return err
		}}
}

// cmdSync runs `elevid sync`. It builds the same wiring as serve, so that
// a quarantine from the command line has the same effects.
func cmdSync(ctx context.Context, a *app, out io.Writer, args []string) error {
	_, w, err := newHandler(ctx, a, false)
	if err != nil {
		return err
	}
	return rostersync.Command(ctx, syncOptions(w), out, args)
}

// mountSync starts the scheduled syncs of every school with an interval.
func mountSync(w *wiring) error {
	s := rostersync.New(syncOptions(w))
	w.syncer = s
	sched := rostersync.NewScheduler(s, time.Minute)
	w.background = append(w.background, func(ctx context.Context) {
		if err := sched.Run(ctx); err != nil && ctx.Err() == nil {
			w.app.log.Error("sync scheduler stopped", "err", err)
		}
	})
	return nil
}
