package main

import (
	"github.com/elevid/elevid/idp"
)

// mountSAML mounts the SAML 2.0 identity provider (/saml/metadata,
// /saml/sso, /saml/slo, /saml/logout …) on the pupil login. The SP's
// cross-site POSTs to /saml/sso and /saml/slo carry their own signatures
// or are single-use requests parked server-side, so they bypass the
// cross-origin protection; /saml/logout does not.
func mountSAML(w *wiring) error {
	ss := w.login.SAMLSessions()
	s, err := idp.NewSAML(idp.SAMLOptions{
		BaseURL: w.app.cfg.Issuer, Store: w.app.store, Site: w.site, Sessions: ss, Revoker: ss,
		Keys:           &idp.StoreSAMLKeys{Store: w.app.store, Sealer: w.app.sealer},
		PairwiseSecret: w.app.pairwise,
		Releases:       idp.SAMLReleaseLog{Store: w.app.store},
		Logger:         w.app.log,
	})
	if err != nil {
		return err
	}
	s.Mount(w.mux)
	w.bypass = append(w.bypass, "POST /saml/sso", "POST /saml/slo")
	return nil
}
