package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/transparency"
)

// retention maps the configuration to the transparency package.
func (c Config) retention() transparency.Retention {
	return transparency.Retention{
		ReleaseLog: c.Retention.ReleaseLog.D(), AccessLog: c.Retention.AccessLog.D(),
		RemovedPupils: c.Retention.RemovedPupils.D(), ExpiredFlows: c.Retention.ExpiredFlows.D(),
	}
}

// mountTransparency mounts the privacy notice.
func mountTransparency(w *wiring) error {
	p := &transparency.Privacy{
		Store: w.app.store, Site: w.site, Log: w.app.log,
		Controller: transparency.Controller{Name: w.app.cfg.Privacy.Controller, Contact: w.app.cfg.Privacy.Contact, DPO: w.app.cfg.Privacy.DPO},
		Retention:  w.app.cfg.retention(),
		Grace:      30 * 24 * time.Hour,
	}
	p.Mount(w.mux)
	job := &transparency.Job{Store: w.app.store, Retention: w.app.cfg.retention(), Now: time.Now, Log: w.app.log, Owner: school.NewID(), Access: w.access}
	interval := w.app.cfg.Retention.Interval.D()
	w.background = append(w.background, func(ctx context.Context) { job.Run(ctx, interval) })
	return nil
}

// adminExport writes the data export of one pupil (a subject access
// request) and records the access.
func adminExport(ctx context.Context, a *app, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	code := fs.String("school", "", "school code")
	pupil := fs.String("pupil", "", "pupil id or directory (external) id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := a.store.SchoolByCode(ctx, *code)
	if err != nil {
		return fmt.Errorf("school %q: %w", *code, err)
	}
	p, err := a.store.PupilByExternalID(ctx, s.ID, *pupil)
	if errors.Is(err, school.ErrNotFound) {
		p, err = a.store.GetPupil(ctx, *pupil)
		if err == nil && p.SchoolID != s.ID {
			err = school.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("pupil %q in %s: %w", *pupil, s.Code, err)
	}
	x, err := transparency.BuildExport(ctx, a.store, p.ID, time.Now())
	if err != nil {
		return err
	}
	if err := a.store.RecordAccess(ctx, school.AccessEntry{SchoolID: s.ID, PupilID: p.ID, StaffID: "cli", StaffName: "elevid admin",
		Role: school.RoleSchoolAdmin, Action: "export", Purpose: "subject access request"}); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(x)
}

// rightsViewers lets the signed-in pupil see their own data and each
// guardian see their children's.
type rightsViewers struct {
	pupil interface {
		Current(*http.Request) (school.Session, bool)
	}
	guardian transparency.Authorizer
}

// MayView implements transparency.Authorizer.
func (v rightsViewers) MayView(r *http.Request, pupilID string) (string, bool) {
	if s, ok := v.pupil.Current(r); ok && s.Kind == school.SessionPupil {
		if s.SubjectID == pupilID {
			return "pupil:" + s.SubjectID, true
		}
		return "pupil:" + s.SubjectID, false
	}
	return v.guardian.MayView(r, pupilID)
}

// mountRights mounts the timeline and export pages; it runs after the
// pupil login and the guardian pages exist.
func mountRights(w *wiring) error {
	(&transparency.Rights{Store: w.app.store, Site: w.site, Log: w.app.log, Now: time.Now,
		Auth: rightsViewers{pupil: w.login, guardian: w.consent}}).Mount(w.mux)
	return nil
}
