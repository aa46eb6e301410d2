package saml_test

import (
	"context"
	"encoding/base64"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
)

var refusedFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)" id="saml-refused-form">`)

// spRequest starts an SP-initiated login (HTTP-Redirect) with the
// RequestedAuthnContext rac (nil for none) and returns the response of
// /saml/resume for the pupil's session sid, and the request id.
func spRequest(h *idptest.SAMLHarness, t *testing.T, sp *idptest.SP, sid string, rac *saml.RequestedAuthnContext) (*http.Response, string) {
	t.Helper()
	authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	authn.RequestedAuthnContext = rac
	u, err := authn.Redirect("relay-9", sp.ServiceProvider)
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Get(t, u.String(), sid)
	idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("SSO: %d", resp.StatusCode)
	}
	resp = h.Get(t, resp.Header.Get("Location"), sid)
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/saml/refused?") {
		idptest.ReadAll(t, resp)
		resp = h.Get(t, loc, sid)
	}
	return resp, authn.ID
}

// refusal checks a saml-refused page (in Danish, the default language):
// the explanation, no script that
// would send the form by itself, and a form to the SP's ACS carrying a
// Response signed by the IdP with the given status, InResponseTo the
// request and the RelayState.
func refusal(h *idptest.SAMLHarness, t *testing.T, resp *http.Response, sp *idptest.SP, requestID, message, sub string) {
	t.Helper()
	body := idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refusal page: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, html.EscapeString(message)) {
		t.Fatalf("refusal page lacks the explanation %q:\n%s", message, body)
	}
	if strings.Contains(body, "auto-post.js") || strings.Contains(body, "<script>") || strings.Contains(body, `id="auto-post-form"`) {
		t.Fatalf("refusal page must wait for the pupil's button, not post by itself:\n%s", body)
	}
	m := refusedFormRE.FindStringSubmatch(body)
	if m == nil || html.UnescapeString(m[1]) != sp.AcsURL.String() {
		t.Fatalf("no form to the ACS %s:\n%s", sp.AcsURL.String(), body)
	}
	if !strings.Contains(body, "Tilbage til Platform ") {
		t.Fatalf("no back-to-the-platform button:\n%s", body)
	}
	form := map[string]string{}
	for _, in := range idptest.InputRE.FindAllStringSubmatch(body, -1) {
		form[html.UnescapeString(in[1])] = html.UnescapeString(in[2])
	}
	if form["RelayState"] != "relay-9" {
		t.Fatalf("RelayState = %q", form["RelayState"])
	}
	raw, err := base64.StdEncoding.DecodeString(form["SAMLResponse"])
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	certs, err := h.Keys.Published(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: certs})
	if _, err := vc.Validate(doc.Root()); err != nil {
		t.Fatalf("refusal Response not signed by the IdP: %v\n%s", err, raw)
	}
	root := doc.Root()
	checkStatusResponse(t, root, raw)
	top := root.FindElement("./Status/StatusCode")
	second := root.FindElement("./Status/StatusCode/StatusCode")
	if top == nil || second == nil || top.SelectAttrValue("Value", "") == saml.StatusSuccess || second.SelectAttrValue("Value", "") != sub {
		t.Fatalf("status is not %s:\n%s", sub, raw)
	}
	if root.SelectAttrValue("InResponseTo", "") != requestID || root.SelectAttrValue("Destination", "") != sp.AcsURL.String() {
		t.Fatalf("InResponseTo/Destination wrong:\n%s", raw)
	}
	if root.FindElement(".//Assertion") != nil || root.FindElement(".//EncryptedAssertion") != nil || strings.Contains(withoutSignatures(t, doc), "Ida") {
		t.Fatalf("a refusal carries no assertion:\n%s", raw)
	}
	if len(h.Releases.Got) != 0 {
		t.Fatalf("released with a refusal: %v", h.Releases.Got)
	}
}

const (
	requestDenied  = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
	noAuthnContext = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
)

// TestSAMLRefusalGoesBackToThePlatform: a valid AuthnRequest for a pupil
// without consent, a quarantined pupil, or a platform the school does not
// use (the refusals of package release) is answered with ElevID's
// explanation and a button that posts a signed RequestDenied to the SP.
func TestSAMLRefusalGoesBackToThePlatform(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: false})
	sid := h.Sessions.Login(h.Pupil.ID)
	resp, id := spRequest(h, t, sp, sid, nil)
	refusal(h, t, resp, sp, id, "Din forælder har ikke givet samtykke til, at platformen må få dine oplysninger.", requestDenied)

	h.Consent(t, sp.Platform.ID)
	if _, err := h.Store.UpdatePupil(context.Background(), h.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.Status = school.PupilQuarantined
		return p, nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, id = spRequest(h, t, sp, sid, nil)
	refusal(h, t, resp, sp, id, "Din konto er ikke aktiv.", requestDenied)

	// The school stops using the platform: consent or not, it is refused.
	if _, err := h.Store.UpdatePupil(context.Background(), h.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.Status = school.PupilActive
		return p, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.SetPlatformActivation(context.Background(), school.PlatformActivation{SchoolID: h.School.ID, PlatformID: sp.Platform.ID, ActivatedBy: "test"}, false); err != nil {
		t.Fatal(err)
	}
	resp, id = spRequest(h, t, sp, sid, nil)
	refusal(h, t, resp, sp, id, "Din skole bruger ikke denne platform.", requestDenied)
}

// TestSAMLAuthnContext: a user-verified passkey login is asserted as
// REFEDS MFA; RequestedAuthnContext is honoured or refused with
// NoAuthnContext.
func TestSAMLAuthnContext(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	sid := h.Sessions.Login(h.Pupil.ID)
	classOf := func(t *testing.T, resp *http.Response, id string) string {
		t.Helper()
		body := idptest.ReadAll(t, resp)
		action, form := idptest.PostedForm(t, body)
		a, err := sp.ACS(t, action, form, id)
		if err != nil {
			t.Fatalf("SP rejected the response: %v", samlErr(err))
		}
		return a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value
	}
	for _, tc := range []struct {
		name string
		rac  *saml.RequestedAuthnContext
		want string
	}{
		{"none requested", nil, login.ACRREFEDSMFA},
		{"exact mfa", &saml.RequestedAuthnContext{AuthnContextClassRefs: []string{login.ACRREFEDSMFA}}, login.ACRREFEDSMFA},
		{"exact: first that is met", &saml.RequestedAuthnContext{Comparison: "exact",
			AuthnContextClassRefs: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard", login.ACRREFEDSSFA, login.ACRREFEDSMFA}}, login.ACRREFEDSSFA},
		{"minimum sfa", &saml.RequestedAuthnContext{Comparison: "minimum", AuthnContextClassRefs: []string{login.ACRREFEDSSFA}}, login.ACRREFEDSMFA},
		{"better unspecified", &saml.RequestedAuthnContext{Comparison: "better", AuthnContextClassRefs: []string{login.ACUnspecified}}, login.ACRREFEDSMFA},
		{"maximum sfa", &saml.RequestedAuthnContext{Comparison: "maximum", AuthnContextClassRefs: []string{login.ACRREFEDSSFA}}, login.ACRREFEDSSFA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, id := spRequest(h, t, sp, sid, tc.rac)
			if got := classOf(t, resp, id); got != tc.want {
				t.Fatalf("AuthnContextClassRef = %s, want %s", got, tc.want)
			}
		})
	}
	h.Releases.Got = nil
	msg := "Platformen beder om en anden slags login, end ElevID kan give."
	for _, tc := range []struct {
		name string
		rac  *saml.RequestedAuthnContext
	}{
		{"exact unknown class", &saml.RequestedAuthnContext{AuthnContextClassRefs: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}}},
		{"better than mfa", &saml.RequestedAuthnContext{Comparison: "better", AuthnContextClassRefs: []string{login.ACRREFEDSMFA}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Refused before any login is asked for: no session needed.
			resp, id := spRequest(h, t, sp, "", tc.rac)
			refusal(h, t, resp, sp, id, msg, noAuthnContext)
		})
	}
	// A session without user verification does not meet MFA.
	t.Run("mfa without user verification", func(t *testing.T) {
		weak := h.Sessions.LoginWith(h.Pupil.ID, false)
		resp, id := spRequest(h, t, sp, weak, &saml.RequestedAuthnContext{AuthnContextClassRefs: []string{login.ACRREFEDSMFA}})
		refusal(h, t, resp, sp, id, msg, noAuthnContext)
		resp, id = spRequest(h, t, sp, weak, nil)
		if got := classOf(t, resp, id); got != login.ACRREFEDSSFA {
			t.Fatalf("a passkey without user verification is asserted as %s, want REFEDS SFA", got)
		}
	})
}

func TestMeetAuthnContext(t *testing.T) {
	mfa, sfa, un := login.ACRREFEDSMFA, login.ACRREFEDSSFA, login.ACUnspecified
	pwd := "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	for _, tc := range []struct {
		req     []string
		cmp     string
		reached string
		want    string
		ok      bool
	}{
		{nil, "", mfa, mfa, true},
		{[]string{mfa}, "exact", mfa, mfa, true},
		{[]string{mfa}, "exact", sfa, "", false},
		{[]string{pwd, un}, "", mfa, un, true},
		{[]string{pwd}, "minimum", mfa, "", false},
		{[]string{sfa}, "minimum", mfa, mfa, true},
		{[]string{mfa}, "minimum", sfa, "", false},
		{[]string{sfa}, "better", sfa, "", false},
		{[]string{sfa}, "better", mfa, mfa, true},
		{[]string{un, sfa}, "maximum", mfa, sfa, true},
		{[]string{mfa}, "maximum", sfa, sfa, true},
		{[]string{login.ACRPasskeyUV}, "exact", mfa, login.ACRPasskeyUV, true},
		{[]string{mfa}, "sideways", mfa, "", false},
	} {
		got, ok := login.MeetAuthnContext(tc.req, tc.cmp, tc.reached)
		if got != tc.want || ok != tc.ok {
			t.Errorf("login.MeetAuthnContext(%v, %q, %s) = %q, %t; want %q, %t", tc.req, tc.cmp, tc.reached, got, ok, tc.want, tc.ok)
		}
	}
}

// checkStatusResponse checks the schema order Lasso (mod_auth_mellon)
// insists on: Issuer, Signature, Status.
func checkStatusResponse(t *testing.T, root *etree.Element, raw []byte) {
	t.Helper()
	var tags []string
	for _, c := range root.ChildElements() {
		tags = append(tags, c.Tag)
	}
	if strings.Join(tags, ",") != "Issuer,Signature,Status" {
		t.Fatalf("Response children %v, want Issuer, Signature, Status:\n%s", tags, raw)
	}
}

// TestSAMLNoPassive: IsPassive without a session is answered at once (no
// page for the pupil: passive means no interaction) with a signed
// Responder/NoPassive, posted to the ACS.
func TestSAMLNoPassive(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	passive := true
	authn.IsPassive = &passive
	u, err := authn.Redirect("passive-relay", sp.ServiceProvider)
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Get(t, u.String(), "")
	idptest.ReadAll(t, resp)
	action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, resp.Header.Get("Location"), "")))
	if action != sp.AcsURL.String() || form.Get("RelayState") != "passive-relay" {
		t.Fatalf("posted to %s with RelayState %q", action, form.Get("RelayState"))
	}
	raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	checkStatusResponse(t, doc.Root(), raw)
	if sub := doc.Root().FindElement("./Status/StatusCode/StatusCode"); sub == nil || sub.SelectAttrValue("Value", "") != "urn:oasis:names:tc:SAML:2.0:status:NoPassive" ||
		doc.Root().SelectAttrValue("InResponseTo", "") != authn.ID {
		t.Fatalf("not a NoPassive answer to the request:\n%s", raw)
	}
	// crewjam verifies the signature, then reports the status.
	_, err = sp.ACS(t, action, form, authn.ID)
	if err == nil || samlErr(err).Error() != "urn:oasis:names:tc:SAML:2.0:status:Responder" {
		t.Fatalf("crewjam SP: %v", samlErr(err))
	}

	// With a session but no consent, a passive request gets RequestDenied
	// at once too, not the explanation page.
	other := h.NewSP(t, idptest.SPOptions{EntityID: "https://passive.example/saml/metadata"})
	sid := h.Sessions.Login(h.Pupil.ID)
	authn, err = other.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	authn.IsPassive = &passive
	u, err = authn.Redirect("", other.ServiceProvider)
	if err != nil {
		t.Fatal(err)
	}
	resp = h.Get(t, u.String(), sid)
	idptest.ReadAll(t, resp)
	_, form = idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, resp.Header.Get("Location"), sid)))
	raw, _ = base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if !strings.Contains(string(raw), `Value="`+requestDenied+`"`) || strings.Contains(string(raw), "Assertion") {
		t.Fatalf("passive request without consent:\n%s", raw)
	}
}

// TestSAMLRefusalPageAgain: the explanation page can be shown again (a
// reload, or in English after the language switch) with the same signed
// refusal, until the flow expires.
func TestSAMLRefusalPageAgain(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: false})
	sid := h.Sessions.Login(h.Pupil.ID)
	u, _ := sp.RedirectRequest(t, h.Server.URL+"/saml/sso", "")
	resp := h.Get(t, u, sid)
	idptest.ReadAll(t, resp)
	resp = h.Get(t, resp.Header.Get("Location"), sid)
	idptest.ReadAll(t, resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/saml/refused?flow=") {
		t.Fatalf("resume: %d %q", resp.StatusCode, loc)
	}
	value := func(body string) string {
		for _, in := range idptest.InputRE.FindAllStringSubmatch(body, -1) {
			if in[1] == "SAMLResponse" {
				return in[2]
			}
		}
		t.Fatalf("no SAMLResponse in\n%s", body)
		return ""
	}
	da := idptest.ReadAll(t, h.Get(t, loc, sid))
	req, _ := http.NewRequest(http.MethodGet, h.Server.URL+loc, nil)
	req.AddCookie(&http.Cookie{Name: "lang", Value: "en"})
	en := idptest.ReadAll(t, h.Do(t, req, sid))
	if !strings.Contains(da, "Tilbage til Platform sp.example") || !strings.Contains(en, "Back to Platform sp.example") ||
		!strings.Contains(en, "Your parent has not consented") || value(da) != value(en) {
		t.Fatalf("the refusal page is not the same in Danish and English:\n%s\n%s", da, en)
	}
	if r := h.Get(t, "/saml/refused?flow=nonsense", sid); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown refusal: %d", r.StatusCode)
	}
}

// withoutSignatures is the document's XML without its ds:Signature
// elements: their base64 values are random and may spell a name by chance
// (a signature once held "…mi8Ida8tg…").
func withoutSignatures(t *testing.T, doc *etree.Document) string {
	t.Helper()
	c := doc.Copy()
	for _, sig := range c.FindElements("//Signature") {
		sig.Parent().RemoveChild(sig)
	}
	out, err := c.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
