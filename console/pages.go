package console

import (
	"context"
	"errors"
	"net/http"

	"github.com/elevid/elevid/school"
)

func (c *Console) home(w http.ResponseWriter, r *http.Request, p Principal) {
	if p.Role == school.RoleOperator {
		http.Redirect(w, r, "/console/schools", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/schools/"+p.SchoolID, http.StatusSeeOther)
}

// schoolFor authorizes a on the school named in the path and loads it.
func (c *Console) schoolFor(r *http.Request, p Principal, a Action, classIDs ...string) (school.School, error) {
	id := r.PathValue("school")
	if err := Authorize(p, a, Target{SchoolID: id, ClassIDs: classIDs}); err != nil {
		return school.School{}, err
	}
	return c.opt.Store.GetSchool(r.Context(), id)
}

// ClassRow is a class in the school overview.
type ClassRow struct {
	school.Class
	Pupils int
}

// SchoolData is the data of the console-school page.
type SchoolData struct {
	Frame
	Classes []ClassRow
	LastRun *school.SyncRun
	// Platforms are the instance's platforms with the school's choice,
	// shown to those who may activate them.
	Platforms    []SchoolPlatformRow
	CanActivate  bool
	PlatformNote string
}

// SchoolPlatformRow is a platform on the school page.
type SchoolPlatformRow struct {
	school.Platform
	Active bool
}

func (c *Console) schoolPage(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ViewSchool)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	classes, err := c.opt.Store.ListClasses(ctx, s.ID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := SchoolData{Frame: Frame{Me: p, School: s}}
	for _, cl := range classes {
		if Authorize(p, ViewClass, Target{SchoolID: s.ID, ClassIDs: []string{cl.ID}}) != nil {
			continue
		}
		ps, err := c.opt.Store.ListPupils(ctx, school.PupilFilter{SchoolID: s.ID, ClassID: cl.ID, Status: school.PupilActive})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Classes = append(data.Classes, ClassRow{Class: cl, Pupils: len(ps)})
	}
	if Authorize(p, RunSync, Target{SchoolID: s.ID}) == nil {
		if runs, err := c.opt.Store.ListSyncRuns(ctx, s.ID, 1); err == nil && len(runs) > 0 {
			data.LastRun = &runs[0]
		}
	}
	if Authorize(p, ActivatePlatforms, Target{SchoolID: s.ID}) == nil {
		data.CanActivate = c.opt.Platforms != nil
		if data.Platforms, err = c.schoolPlatforms(ctx, s.ID); err != nil {
			c.fail(w, r, err)
			return
		}
		switch r.URL.Query().Get("platform") {
		case "activated":
			data.PlatformNote = "console.school.platform_activated"
		case "deactivated":
			data.PlatformNote = "console.school.platform_deactivated"
		}
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-school", data)
}

// schoolPlatforms lists the instance's platforms with the school's
// activation.
func (c *Console) schoolPlatforms(ctx context.Context, schoolID string) ([]SchoolPlatformRow, error) {
	acts, err := c.opt.Store.ListPlatformActivations(ctx, schoolID)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, a := range acts {
		active[a.PlatformID] = true
	}
	all, err := c.opt.Store.ListPlatforms(ctx)
	if err != nil {
		return nil, err
	}
	var out []SchoolPlatformRow
	for _, pf := range all {
		out = append(out, SchoolPlatformRow{Platform: pf, Active: active[pf.ID]})
	}
	return out, nil
}

// schoolPlatformSave activates or deactivates a platform for the school
// (school admin or operator); deactivation ends access like a withdrawal.
func (c *Console) schoolPlatformSave(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ActivatePlatforms)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if c.opt.Platforms == nil {
		c.opt.Site.Error(w, r, http.StatusServiceUnavailable, "console.school.platforms_unavailable")
		return
	}
	var active bool
	switch r.PostFormValue("action") {
	case "activate":
		active = true
	case "deactivate":
	default:
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	if _, err := c.opt.Platforms.SetPlatformActivation(r.Context(), c.actor(r, p), s.ID, r.PathValue("platform"), active); err != nil {
		c.fail(w, r, err)
		return
	}
	note := "deactivated"
	if active {
		note = "activated"
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"?platform="+note, http.StatusSeeOther)
}

// AuditData is the data of the console-audit page.
type AuditData struct {
	Frame
	Instance bool
	Entries  []school.AuditEntry
	Intact   bool
	Problem  string
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ViewAudit)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.renderAudit(w, r, AuditData{Frame: Frame{Me: p, School: s}}, s.ID)
}

func (c *Console) instanceAuditPage(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := Authorize(p, ViewInstance, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	c.renderAudit(w, r, AuditData{Frame: Frame{Me: p}, Instance: true}, school.InstanceChain)
}

func (c *Console) renderAudit(w http.ResponseWriter, r *http.Request, data AuditData, chain string) {
	ctx := r.Context()
	var err error
	if data.Entries, err = c.opt.Store.ListAudit(ctx, school.AuditFilter{SchoolID: chain, Limit: 200}); err != nil {
		c.fail(w, r, err)
		return
	}
	switch err := c.opt.Store.VerifyAudit(ctx, chain); {
	case err == nil:
		data.Intact = true
	case errors.Is(err, school.ErrChainBroken):
		data.Problem = err.Error()
		c.log.Error("console: audit chain broken", "chain", chain, "err", err)
	default:
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-audit", data)
}
