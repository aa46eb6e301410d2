package saml_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/elevid/elevid/idp/release"
	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
)

func TestSAMLIdPInitiatedLogout(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	sid := h.Sessions.Login(h.Pupil.ID)
	action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
	a, err := sp.ACS(t, action, form)
	if err != nil {
		t.Fatal(samlErr(err))
	}

	// A cross-site POST cannot log the pupil out (CSRF protection applies).
	if r := h.PostCrossSite(t, "/saml/logout", url.Values{}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d", r.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/saml/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp := h.Do(t, req, sid)
	idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), sp.SloURL.String()+"?") {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !h.Sessions.Ended(sid) {
		t.Fatal("the login session was not revoked")
	}
	// The SP checks the signed LogoutRequest and answers.
	spReq := httptest.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
	lr, err := sp.ValidateLogoutRequest(spReq)
	if err != nil {
		t.Fatalf("SP rejected ElevID's LogoutRequest: %v", err)
	}
	if lr.NameID == nil || lr.NameID.Value != a.Subject.NameID.Value || lr.SessionIndex == nil || lr.SessionIndex.Value != a.AuthnStatements[0].SessionIndex {
		t.Fatalf("LogoutRequest names %+v / %+v", lr.NameID, lr.SessionIndex)
	}
	back, err := sp.MakeRedirectLogoutResponse(lr.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	done := h.Get(t, back.String(), "")
	body := idptest.ReadAll(t, done)
	if done.StatusCode != http.StatusOK || !strings.Contains(body, sp.Platform.Name) {
		t.Fatalf("logout end page: %d\n%s", done.StatusCode, body)
	}
	// The flow is single-use.
	if again := h.Get(t, back.String(), ""); again.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed LogoutResponse: %d", again.StatusCode)
	}
}

func TestSAMLSPInitiatedLogout(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	sid := h.Sessions.Login(h.Pupil.ID)
	idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))

	nameID := release.Pairwise(h.Secret, h.Pupil.ID, sp.EntityID)
	lr, err := sp.MakeLogoutRequest(h.Server.URL+"/saml/slo", nameID)
	if err != nil {
		t.Fatal(err)
	}
	resp := h.PostCrossSite(t, "/saml/slo", url.Values{"SAMLRequest": {idptest.EncodeEl(t, lr.Element())}})
	body := idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusFound && !strings.Contains(body, "SAMLResponse") {
		t.Fatalf("SP-initiated logout: %d\n%s", resp.StatusCode, body)
	}
	if !h.Sessions.Ended(sid) {
		t.Fatal("the login session was not ended by the SP's LogoutRequest")
	}
	if resp.StatusCode == http.StatusFound {
		u, _ := url.Parse(resp.Header.Get("Location"))
		if u.Query().Get("SAMLResponse") == "" || u.Query().Get("Signature") == "" {
			t.Fatalf("logout response redirect %s", u)
		}
		if _, err := sp.ParseLogoutResponse(httptest.NewRequest(http.MethodGet, u.String(), nil), []string{lr.ID}); err != nil {
			t.Fatalf("SP rejected the LogoutResponse: %v", err)
		}
	}
}
