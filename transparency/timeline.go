package transparency

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// Event is one readable line of a pupil's timeline.
type Event struct {
	Time time.Time
	Kind string // "access" or "release"
	Text string
}

// Timeline merges the access log and the release log of a pupil, newest
// first, as sentences in lang: "Lærer Anna Jensen (7A) nulstillede
// adgangsnøglerne", "Platformen MatematikFessor modtog navn og klasse".
// Staff act in their official role and are named; operators are shown as
// "ElevID operator".
func Timeline(ctx context.Context, st school.Queries, site *web.Site, lang, pupilID string) ([]Event, error) {
	p, err := st.GetPupil(ctx, pupilID)
	if err != nil {
		return nil, err
	}
	classes, err := st.ListClasses(ctx, p.SchoolID)
	if err != nil {
		return nil, err
	}
	classNames := map[string]string{}
	for _, c := range classes {
		classNames[c.ID] = c.Name
	}
	access, err := st.AccessForPupil(ctx, pupilID)
	if err != nil {
		return nil, err
	}
	releases, err := st.ListReleases(ctx, pupilID)
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, a := range access {
		who := site.T(lang, "timeline.role."+string(a.Role)) + " " + a.StaffName
		if a.Role == school.RoleOperator {
			who = site.T(lang, "timeline.operator")
		}
		if c := classNames[a.ClassID]; c != "" {
			who += " (" + c + ")"
		}
		key := "timeline.action." + a.Action
		what := site.T(lang, key)
		if what == key {
			what = site.T(lang, "timeline.action.other", a.Action)
		}
		text := who + " " + what
		if a.Purpose != "" {
			purpose := a.Purpose // a code such as checked_in_person, or free text
			if key := "console.pupil.purpose." + a.Purpose; site.HasText(key) {
				purpose = site.T(lang, key)
			}
			text += " – " + site.T(lang, "timeline.purpose", purpose)
		}
		out = append(out, Event{Time: a.Time, Kind: "access", Text: text})
	}
	for _, r := range releases {
		var names []string
		for _, c := range r.Claims {
			key := "timeline.claim." + c
			if n := site.T(lang, key); n != key {
				names = append(names, n)
			} else if c != "sub" && site.HasText("attr."+c) {
				names = append(names, site.AttrName(lang, c, false))
			}
		}
		names = dedupe(names)
		what := site.T(lang, "timeline.claim.id")
		if len(names) > 0 {
			what = joinAnd(site, lang, names)
		}
		out = append(out, Event{Time: r.Time, Kind: "release", Text: site.T(lang, "timeline.release", r.PlatformName, what)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func joinAnd(site *web.Site, lang string, s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " " + site.T(lang, "timeline.and") + " " + s[len(s)-1]
}

// Authorizer decides who may see a pupil's timeline and export: the pupil
// (signed in) and the pupil's guardians (magic-link session). It returns a
// short description of the viewer for the log.
type Authorizer interface {
	MayView(r *http.Request, pupilID string) (viewer string, ok bool)
}

// Rights serves a pupil's timeline and data export to the pupil and the
// guardians.
type Rights struct {
	Store school.Store
	Site  *web.Site
	Log   *slog.Logger
	Auth  Authorizer
	Now   func() time.Time
}

// Mount registers GET /rights/{pupil}/timeline and /rights/{pupil}/export.
func (h *Rights) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /rights/{pupil}/timeline", h.timeline)
	mux.HandleFunc("GET /rights/{pupil}/export", h.export)
}

// TimelinePage is the data of the timeline page.
type TimelinePage struct {
	PupilID string
	Name    string
	Events  []TimelineRow
}

// TimelineRow is one rendered event.
type TimelineRow struct {
	When string
	Kind string
	Text string
}

// authorize answers 404 for a pupil the viewer may not see, and logs it:
// a forged or foreign id looks exactly like a missing one.
func (h *Rights) authorize(w http.ResponseWriter, r *http.Request) (school.Pupil, bool) {
	id := r.PathValue("pupil")
	viewer, ok := h.Auth.MayView(r, id)
	if !ok {
		h.Log.Warn("data-rights request for a pupil the viewer may not see", "pupil", id, "viewer", viewer, "path", r.URL.Path, "remote", web.ClientIP(r))
		h.Site.NotFound(w, r)
		return school.Pupil{}, false
	}
	p, err := h.Store.GetPupil(r.Context(), id)
	if err != nil {
		h.Site.NotFound(w, r)
		return p, false
	}
	return p, true
}

func (h *Rights) timeline(w http.ResponseWriter, r *http.Request) {
	p, ok := h.authorize(w, r)
	if !ok {
		return
	}
	lang := web.Lang(r)
	events, err := Timeline(r.Context(), h.Store, h.Site, lang, p.ID)
	if err != nil {
		h.Site.ServerError(w, r, err)
		return
	}
	page := TimelinePage{PupilID: p.ID, Name: p.GivenName}
	for _, e := range events {
		page.Events = append(page.Events, TimelineRow{When: h.Site.FormatTime(lang, e.Time), Kind: e.Kind, Text: e.Text})
	}
	h.Site.Render(w, r, http.StatusOK, "timeline", page)
}

func (h *Rights) export(w http.ResponseWriter, r *http.Request) {
	p, ok := h.authorize(w, r)
	if !ok {
		return
	}
	x, err := BuildExport(r.Context(), h.Store, p.ID, h.Now())
	if err != nil {
		h.Site.ServerError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="elevid-export.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(x)
}
