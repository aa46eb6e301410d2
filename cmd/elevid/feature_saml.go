package main

import (
	"context"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/school"
)

// mountSAML mounts the SAML 2.0 identity provider (/saml/metadata,
// /saml/sso, /saml/slo, /saml/logout …) on the pupil login. The SP's
// cross-site POSTs to /saml/sso and /saml/slo carry their own signatures
// or are requests answered at most once (sealed into the resume URL,
// their id recorded when answered), so they bypass the
// cross-origin protection; /saml/logout does not. Queued SAML logout
// notices go out over SOAP from a background worker.
func mountSAML(w *wiring) error {
	ss := saml.LoginSessions(w.login.Current, login.LoginURL)
	s, err := saml.New(saml.Options{
		BaseURL: w.app.cfg.Issuer, Store: w.app.store, Site: w.site, Sessions: ss, Access: w.access,
		Keys:           &saml.StoreKeys{Store: w.app.store, Sealer: w.app.sealer},
		Sealer:         w.app.sealer,
		PairwiseSecret: w.app.pairwise,
		Releases:       release.Log{},
		Logger:         w.app.log,
	})
	if err != nil {
		return err
	}
	s.Mount(w.mux)
	w.bypass = append(w.bypass, "POST /saml/sso", "POST /saml/slo")
	owner := school.NewID() // this node, for the leases of the logout queue
	w.background = append(w.background, func(ctx context.Context) { s.RunLogoutQueue(ctx, owner) })
	return nil
}
