package saml_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/idp/release"
	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
)

func TestSAMLMetadata(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	md := h.IdPMeta
	if md.EntityID != h.Server.URL+"/saml/metadata" {
		t.Fatalf("entity id %q", md.EntityID)
	}
	d := md.IDPSSODescriptors[0]
	var bindings []string
	for _, e := range d.SingleSignOnServices {
		bindings = append(bindings, e.Binding+" "+e.Location)
	}
	for _, want := range []string{saml.HTTPRedirectBinding + " " + h.Server.URL + "/saml/sso", saml.HTTPPostBinding + " " + h.Server.URL + "/saml/sso"} {
		if !slices.Contains(bindings, want) {
			t.Errorf("no SSO endpoint %s in %v", want, bindings)
		}
	}
	if len(d.SingleLogoutServices) == 0 {
		t.Error("no SingleLogoutService")
	}
	if d.Extensions == nil || len(d.Extensions.ShibbolethScopes) != 1 || d.Extensions.ShibbolethScopes[0].Value != "demo.elevid.dk" {
		t.Errorf("scopes = %+v", d.Extensions)
	}
	if md.Signature == nil {
		t.Error("metadata is not signed")
	}

	// During a rotation both certificates are published.
	if err := h.Keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := idptest.ReadAll(t, h.Get(t, "/saml/metadata", ""))
	if n := strings.Count(body, `use="signing"`); n != 2 {
		t.Fatalf("after rotation %d signing keys published, want 2", n)
	}
	if err := h.Keys.Retire(context.Background()); err != nil {
		t.Fatal(err)
	}
	body = idptest.ReadAll(t, h.Get(t, "/saml/metadata", ""))
	if n := strings.Count(body, `use="signing"`); n != 1 {
		t.Fatalf("after retire %d signing keys published, want 1", n)
	}
}

// ssoResult follows an AuthnRequest's 303 to /saml/resume with the
// session cookie and returns the posted form.
func resume(h *idptest.SAMLHarness, t *testing.T, resp *http.Response, sid string) (string, url.Values) {
	t.Helper()
	body := idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/saml/resume?flow=") {
		t.Fatalf("SSO answered %d %q, want 303 to /saml/resume\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	loc := resp.Header.Get("Location")
	resp = h.Get(t, loc, sid)
	body = idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `src="/static/auto-post.js"`) || !strings.Contains(body, "<noscript>") || strings.Contains(body, "<script>") {
		t.Fatalf("post page must load auto-post.js, have a noscript text and no inline script:\n%s", body)
	}
	return idptest.PostedForm(t, body)
}

func TestSAMLSSORedirectBinding(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	sid := h.Sessions.Login(h.Pupil.ID)

	u, id := sp.RedirectRequest(t, h.Server.URL+"/saml/sso", "relay-123")
	if parsed, err := url.Parse(u); err != nil || parsed.Query().Get("Signature") == "" {
		t.Fatalf("test SP did not sign its redirect request (%v)", err)
	}
	action, form := resume(h, t, h.Get(t, u, sid), sid)
	if form.Get("RelayState") != "relay-123" {
		t.Fatalf("RelayState = %q", form.Get("RelayState"))
	}
	raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if !strings.Contains(string(raw), "EncryptedAssertion") {
		t.Fatal("SP publishes an encryption key, but the assertion is not encrypted")
	}
	a, err := sp.ACS(t, action, form, id)
	if err != nil {
		t.Fatalf("crewjam SP rejected the response: %v", samlErr(err))
	}
	pairwise := release.Pairwise(h.Secret, h.Pupil.ID, sp.EntityID)
	if a.Subject.NameID.Format != string(saml.PersistentNameIDFormat) || a.Subject.NameID.Value != pairwise {
		t.Fatalf("NameID = %+v, want persistent %s", a.Subject.NameID, pairwise)
	}
	got := idptest.AttrValues(a)
	want := map[string]string{
		// Pairwise by default, the same value OIDC gives (release.Compute).
		"eduPersonPrincipalName":     pairwise + "@demo.elevid.dk",
		"eduPersonScopedAffiliation": "student@demo.elevid.dk",
		"eduPersonTargetedID":        pairwise + "|" + h.IdPMeta.EntityID + "|" + sp.EntityID,
		"pairwise-id":                pairwise + "@demo.elevid.dk",
		"displayName":                "Ida Hansen",
		"givenName":                  "Ida",
		"sn":                         "Hansen",
		"schacHomeOrganization":      "demo.elevid.dk",
		"schoolCode":                 "demo",
		"isMemberOf":                 "7A",
	}
	for k, v := range want {
		if len(got[k]) == 0 || got[k][0] != v {
			t.Errorf("%s = %v, want %q", k, got[k], v)
		}
	}
	for k, oid := range map[string]string{"eduPersonPrincipalName": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "givenName": "urn:oid:2.5.4.42", "pairwise-id": "urn:oasis:names:tc:SAML:attribute:pairwise-id"} {
		if got["name:"+k][0] != oid {
			t.Errorf("%s has name %v, want %s", k, got["name:"+k], oid)
		}
	}
	// One entry in the release log the pupil and guardians read, naming
	// the attributes but no values.
	if len(h.Releases.Got) != 1 || h.Releases.Got[0][1] != sp.Platform.ID {
		t.Fatalf("releases = %v", h.Releases.Got)
	}
	rel, err := h.Store.ListReleases(context.Background(), h.Pupil.ID)
	if err != nil || len(rel) != 1 || rel[0].PlatformID != sp.Platform.ID || rel[0].Protocol != school.ProtocolSAML || rel[0].Via != "saml_assertion" ||
		!slices.Contains(rel[0].Claims, release.GivenName) || slices.Contains(rel[0].Claims, h.Pupil.GivenName) {
		t.Fatalf("release log = %+v, %v", rel, err)
	}
}

// TestSAMLSSOPostBindingCrossSite is the SameSite=Lax case: the SP's form
// post reaches ElevID without the session cookie; ElevID stores the
// verified request and redirects (303) to a same-site GET that reads it.
func TestSAMLSSOPostBindingCrossSite(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NameIDFormat: "transient"}})
	sid := h.Sessions.Login(h.Pupil.ID)

	authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPPostBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	transient := saml.TransientNameIDFormat
	authn.NameIDPolicy.Format = (*string)(&transient)
	authn.Signature = nil
	if err := sp.SignAuthnRequest(authn); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"SAMLRequest": {idptest.EncodeEl(t, authn.Element())}, "RelayState": {"post-relay"}}
	resp := h.PostCrossSite(t, "/saml/sso", form) // no cookie, as with SameSite=Lax
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cross-site POST: %d %s", resp.StatusCode, idptest.ReadAll(t, resp))
	}
	loc := resp.Header.Get("Location")
	idptest.ReadAll(t, resp)

	// Without a session the resume page sends the pupil to log in and back.
	r2 := h.Get(t, loc, "")
	idptest.ReadAll(t, r2)
	if r2.StatusCode != http.StatusSeeOther || r2.Header.Get("Location") != "/login?return="+url.QueryEscape(loc) {
		t.Fatalf("resume without session: %d %q", r2.StatusCode, r2.Header.Get("Location"))
	}
	// With the Lax cookie (same-site GET) it answers.
	r3 := h.Get(t, loc, sid)
	action, out := idptest.PostedForm(t, idptest.ReadAll(t, r3))
	if out.Get("RelayState") != "post-relay" {
		t.Fatalf("RelayState = %q", out.Get("RelayState"))
	}
	a, err := sp.ACS(t, action, out, authn.ID)
	if err != nil {
		t.Fatalf("crewjam SP rejected the response: %v", samlErr(err))
	}
	if a.Subject.NameID.Format != string(saml.TransientNameIDFormat) || a.Subject.NameID.Value == release.Pairwise(h.Secret, h.Pupil.ID, sp.EntityID) {
		t.Fatalf("NameID = %+v, want a transient one", a.Subject.NameID)
	}
	// The flow is single-use.
	r4 := h.Get(t, loc, sid)
	if body := idptest.ReadAll(t, r4); r4.StatusCode != http.StatusBadRequest {
		t.Fatalf("second resume: %d %s", r4.StatusCode, body)
	}
}

func TestSAMLIdPInitiated(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Attrs: []string{"givenName"}, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	sid := h.Sessions.Login(h.Pupil.ID)

	path := "/saml/idp-initiated?sp=" + url.QueryEscape(sp.EntityID)
	r := h.Get(t, path, "")
	idptest.ReadAll(t, r)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login?return=") {
		t.Fatalf("without a session: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = h.Get(t, path, sid)
	action, form := idptest.PostedForm(t, idptest.ReadAll(t, r))
	a, err := sp.ACS(t, action, form)
	if err != nil {
		t.Fatalf("crewjam SP rejected the unsolicited response: %v", samlErr(err))
	}
	got := idptest.AttrValues(a)
	if got["givenName"][0] != "Ida" || len(got["sn"]) != 0 || len(got["eduPersonPrincipalName"]) != 0 {
		t.Fatalf("only givenName may be released: %v", got)
	}

	if r := h.Get(t, "/saml/idp-initiated?sp=https://unknown.example", sid); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown SP: %d", r.StatusCode)
	}
}

func TestSAMLNoConsentNoRelease(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: false})
	sid := h.Sessions.Login(h.Pupil.ID)
	r := h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)
	body := idptest.ReadAll(t, r)
	if r.StatusCode != http.StatusForbidden || strings.Contains(body, "SAMLResponse") {
		t.Fatalf("without consent: %d\n%s", r.StatusCode, body)
	}
	if len(h.Releases.Got) != 0 {
		t.Fatalf("released without consent: %v", h.Releases.Got)
	}
	// A quarantined pupil gets nothing either, consent or not.
	h.Consent(t, sp.Platform.ID)
	if _, err := h.Store.UpdatePupil(context.Background(), h.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.Status = school.PupilQuarantined
		return p, nil
	}); err != nil {
		t.Fatal(err)
	}
	r = h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)
	if body := idptest.ReadAll(t, r); r.StatusCode != http.StatusForbidden || strings.Contains(body, "SAMLResponse") {
		t.Fatalf("quarantined: %d", r.StatusCode)
	}
}

// TestSAMLResponseTamperRejectedBySP proves the signatures cover what an
// SP relies on: a response changed after signing is refused by crewjam.
func TestSAMLResponseTamperRejectedBySP(t *testing.T) {
	for _, signing := range []idpsaml.PlatformSpec{{NoEncrypt: true}, {NoEncrypt: true, NoSignResponse: true}, {NoEncrypt: true, NoSignAssertion: true}} {
		h := idptest.NewSAMLHarness(t)
		sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: signing})
		sid := h.Sessions.Login(h.Pupil.ID)
		path := "/saml/idp-initiated?sp=" + url.QueryEscape(sp.EntityID)
		action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, path, sid)))
		if _, err := sp.ACS(t, action, form); err != nil {
			t.Fatalf("%v: untampered response rejected: %v", signing, samlErr(err))
		}
		raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
		pairwise := release.Pairwise(h.Secret, h.Pupil.ID, sp.EntityID)
		for name, edit := range map[string][2]string{
			"attribute": {">Ida<", ">Eve<"},
			"audience":  {"<saml:Audience>" + sp.EntityID, "<saml:Audience>" + sp.EntityID + "x"},
			"nameid":    {">" + pairwise + "</saml:NameID>", ">" + strings.Repeat("a", len(pairwise)) + "</saml:NameID>"},
		} {
			if !strings.Contains(string(raw), edit[0]) {
				t.Fatalf("%s: %q not in response:\n%s", name, edit[0], raw)
			}
			// Use a fresh response each time: crewjam refuses replays anyway.
			_, fresh := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, path, sid)))
			fr, _ := base64.StdEncoding.DecodeString(fresh.Get("SAMLResponse"))
			changed := strings.Replace(string(fr), edit[0], edit[1], 1)
			fresh.Set("SAMLResponse", base64.StdEncoding.EncodeToString([]byte(changed)))
			if _, err := sp.ACS(t, action, fresh); err == nil {
				t.Errorf("%v: response with changed %s accepted by the SP", signing, name)
			}
		}
	}
}

func samlErr(err error) error {
	if ire, ok := err.(*saml.InvalidResponseError); ok {
		return ire.PrivateErr
	}
	return err
}

// TestSAMLOIDCClaimNames: a platform granted OIDC claim names gets the
// matching SAML attributes.
func TestSAMLOIDCClaimNames(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Attrs: []string{release.GivenName, release.EPPN}, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	sid := h.Sessions.Login(h.Pupil.ID)
	action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
	a, err := sp.ACS(t, action, form)
	if err != nil {
		t.Fatal(samlErr(err))
	}
	got := idptest.AttrValues(a)
	if len(got["givenName"]) != 1 || len(got["eduPersonPrincipalName"]) != 1 || len(got["sn"]) != 0 {
		t.Fatalf("attributes = %v", got)
	}
}
