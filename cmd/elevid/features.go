package main

import (
	"context"
	"net/http"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/web"
)

// wiring is what the capability packages are mounted with. Features run in
// the order of the features list; a feature may set fields (e.g. the login
// it built) that later features read.
type wiring struct {
	ctx  context.Context
	app  *app
	site *web.Site
	mux  *http.ServeMux
	demo bool
	// bypass collects mux patterns of protocol endpoints that must accept
	// cross-site requests (exempt from cross-origin protection).
	bypass []string
	// background collects long-running jobs (mail sender, sync scheduler,
	// retention) that serve starts and stops with the server.
	background []func(ctx context.Context)
	// access ends access to platforms; built once, before any feature,
	// and given to every constructor that ends access.
	access   *access.Service
	enroller *enrolment.Enroller // enrolment codes and /enrol (feature_passkeys.go)
	login    *login.Login        // pupil passkey login and sessions (feature_passkeys.go)
	oidc     *oidc.Provider      // the OpenID provider (feature_oidc.go)
	syncer   *rostersync.Syncer  // roster sync from LDAP (sync.go)
	flows    *enrolment.Flows    // enrolment flows (feature_consent.go)
	consent  *guardian.Service   // guardian consent, passkey reset (feature_consent.go)
}

// features mounts the capability packages, in dependency order. Each
// lives in its own feature_*.go file.
var features = []func(w *wiring) error{
	mountTransparency,
	mountPasskeys,
	mountConsent,
	mountRights,
	mountSAML,
	mountOIDC,
	mountSync,
	mountConsole,
}

// mountFeatures mounts every feature on mux and returns the cross-origin
// bypass patterns and the background jobs.
func mountFeatures(ctx context.Context, a *app, site *web.Site, mux *http.ServeMux, demo bool) (*wiring, error) {
	w := &wiring{ctx: ctx, app: a, site: site, mux: mux, demo: demo,
		access: access.New(access.Options{Logger: a.log})}
	// Pupil sessions that end by time are ended through the service too,
	// so that their platforms get logout notices (one node at a time).
	owner := school.NewID()
	w.background = append(w.background, func(ctx context.Context) { w.access.RunExpiry(ctx, a.store, owner, time.Minute) })
	for _, f := range features {
		if err := f(w); err != nil {
			return nil, err
		}
	}
	return w, nil
}
