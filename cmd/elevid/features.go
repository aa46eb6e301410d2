package main

import (
	"context"
	"net/http"

	"github.com/elevid/elevid/web"
)

// mountFeatures mounts the routes of the capability packages (passkeys,
// OIDC, SAML, consent, console) and returns the mux patterns that must
// accept cross-site requests.
func mountFeatures(ctx context.Context, a *app, site *web.Site, mux *http.ServeMux, demo bool) ([]string, error) {
	return nil, nil
}
