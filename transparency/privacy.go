package transparency

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// Retention says how long each kind of record is kept.
type Retention struct {
	ReleaseLog    time.Duration // release log entries
	AccessLog     time.Duration // access log entries
	RemovedPupils time.Duration // after a pupil's status became removed (the quarantine grace has passed)
	ExpiredFlows  time.Duration // expired or finished enrolment flows, consent links and codes
}

// DefaultRetention is the retention of a new instance.
var DefaultRetention = Retention{
	ReleaseLog: 2 * 365 * 24 * time.Hour, AccessLog: 2 * 365 * 24 * time.Hour,
	RemovedPupils: 30 * 24 * time.Hour, ExpiredFlows: 90 * 24 * time.Hour,
}

// Controller names the data controller shown in the privacy notice.
type Controller struct {
	Name    string // e.g. the municipality's school administration
	Contact string // e-mail or postal address for data-protection requests
	DPO     string // the data protection officer's contact, if any
}

// Privacy serves the privacy notice at /privacy.
type Privacy struct {
	Store      school.Store
	Site       *web.Site
	Log        *slog.Logger
	Controller Controller
	Retention  Retention
	// Grace is the default quarantine period before a pupil gone from the
	// directory is removed.
	Grace time.Duration
}

// Mount registers the privacy notice.
func (p *Privacy) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /privacy", p.serve)
}

// PrivacyPage is the data of the privacy notice.
type PrivacyPage struct {
	Controller Controller
	Schools    []school.School
	Platforms  []school.Platform
	Days       map[string]int
}

func (p *Privacy) serve(w http.ResponseWriter, r *http.Request) {
	schools, err := p.Store.ListSchools(r.Context())
	if err != nil {
		p.Site.ServerError(w, r, err)
		return
	}
	platforms, err := p.Store.ListPlatforms(r.Context())
	if err != nil {
		p.Site.ServerError(w, r, err)
		return
	}
	days := func(d time.Duration) int { return int(d / (24 * time.Hour)) }
	p.Site.Render(w, r, http.StatusOK, "privacy", PrivacyPage{
		Controller: p.Controller,
		Schools:    schools,
		Platforms:  platforms,
		Days: map[string]int{
			"release": days(p.Retention.ReleaseLog), "access": days(p.Retention.AccessLog),
			"removed": days(p.Grace + p.Retention.RemovedPupils), "grace": days(p.Grace), "flows": days(p.Retention.ExpiredFlows),
		},
	})
}
