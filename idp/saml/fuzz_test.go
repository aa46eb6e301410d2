package saml_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"
	"github.com/elevid/elevid/internal/idptest"
)

// fuzzSAMLEndpoint sends data as a SAMLRequest with the HTTP-POST binding
// and, deflated, with the HTTP-Redirect binding. Whatever the input,
// ElevID must not panic, must not fail with a 500, and must never answer
// towards a URL other than its own resume page.
func fuzzSAMLEndpoint(f *testing.F, path string, seeds [][]byte) {
	h := idptest.NewSAMLHarness(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(r *http.Response) {
			body := idptest.ReadAll(t, r)
			if r.StatusCode >= 500 {
				t.Fatalf("status %d for %q", r.StatusCode, data)
			}
			if loc := r.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/saml/resume?flow=") {
				t.Fatalf("redirect to %q for %q", loc, data)
			}
			if strings.Contains(body, `name="SAMLResponse"`) {
				t.Fatalf("response posted for %q", data)
			}
		}
		check(h.PostCrossSite(t, path, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(data)}}))
		check(h.Get(t, path+"?SAMLRequest="+url.QueryEscape(base64.StdEncoding.EncodeToString(deflate(data))), ""))
	})
}

func samlSeeds(f *testing.F, logout bool) [][]byte {
	h := idptest.NewSAMLHarness(f)
	sp := h.NewSP(f, idptest.SPOptions{})
	var seeds [][]byte
	if logout {
		lr, err := sp.MakeLogoutRequest(h.Server.URL+"/saml/slo", "name-id")
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, idptest.ElBytes(f, lr.Element()))
	} else {
		authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPPostBinding, saml.HTTPPostBinding)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, idptest.ElBytes(f, authn.Element()))
	}
	return append(seeds,
		[]byte(""), []byte("<"), []byte(`<?xml version="1.0"?><a/>`),
		[]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0"/>`),
		[]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0"><saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">a<!---->b</saml:NameID></samlp:LogoutRequest>`),
		[]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`),
	)
}

func FuzzParseAuthnRequest(f *testing.F) {
	fuzzSAMLEndpoint(f, "/saml/sso", samlSeeds(f, false))
}

func FuzzParseLogoutRequest(f *testing.F) {
	fuzzSAMLEndpoint(f, "/saml/slo", samlSeeds(f, true))
}
