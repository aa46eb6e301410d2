package saml_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/internal/idptest"
)

// TestSAMLRelayStateLimit: SP-initiated requests with a RelayState over 80
// bytes are refused (SAML bindings §3.4.3, §3.5.3); 80 bytes pass.
func TestSAMLRelayStateLimit(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	send := func(relay string) *http.Response {
		authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPPostBinding, saml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		return h.PostCrossSite(t, "/saml/sso", url.Values{"SAMLRequest": {idptest.EncodeEl(t, authn.Element())}, "RelayState": {relay}})
	}
	if resp := send(strings.Repeat("r", 80)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("80-byte RelayState: %d %.300s", resp.StatusCode, idptest.ReadAll(t, resp))
	}
	wantRejected(t, h, []attackCase{
		{"81-byte RelayState (POST)", func(t *testing.T) *http.Response { return send(strings.Repeat("r", 81)) }},
		{"long RelayState (redirect)", func(t *testing.T) *http.Response {
			authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
			if err != nil {
				t.Fatal(err)
			}
			u, err := authn.Redirect(strings.Repeat("x", 200), sp.ServiceProvider)
			if err != nil {
				t.Fatal(err)
			}
			return h.Get(t, u.String(), "")
		}},
	})
}
