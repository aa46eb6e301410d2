package main

import (
	"context"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/internal/demoplatform"
	"github.com/elevid/elevid/school"
)

// mountOIDC mounts the OpenID Connect provider (discovery, JWKS, /oidc/*)
// on the pupil login, runs the delivery of queued back-channel logouts in
// the background, and in demo mode the built-in example platform.
func mountOIDC(w *wiring) error {
	a := w.app
	op, err := oidc.New(w.ctx, oidc.Options{Issuer: a.cfg.Issuer, Store: a.store, Sealer: a.sealer,
		PairwiseSecret: a.pairwise, Site: w.site, Sessions: w.login, Access: w.access, Logger: a.log})
	if err != nil {
		return err
	}
	op.Mount(w.mux)
	// A passkey login that returns to the hand-off ends at the platform.
	w.login.ContinueAt(oidc.HandoffPath, op.ContinueLogin)
	w.bypass = append(w.bypass, oidc.BypassPatterns...)
	w.oidc = op
	owner := school.NewID() // this node, for the leases of the logout queue
	w.background = append(w.background, func(ctx context.Context) { op.RunLogoutQueue(ctx, owner) })
	if w.demo {
		demoplatform.New(a.cfg.Issuer, a.pairwise, w.site, nil, a.log).Mount(w.mux)
		w.bypass = append(w.bypass, demoplatform.BypassPatterns...)
		w.mux.HandleFunc("GET /demo/mail", demoMail(a, w.site))
		w.mux.HandleFunc("GET /demo/mail/{id}", demoMailHTML(a, w.site))
	}
	return nil
}
