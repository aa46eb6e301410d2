package saml_test

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
	dsig "github.com/russellhaering/goxmldsig"
)

// attackCase is one message sent to ElevID; all must be refused with an
// error page (400), never a redirect or a response to the SP.
type attackCase struct {
	name string
	send func(t *testing.T) *http.Response
}

func wantRejected(t *testing.T, h *idptest.SAMLHarness, cases []attackCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := c.send(t)
			body := idptest.ReadAll(t, resp)
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d (Location %q), want 400\n%.400s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if strings.Contains(body, "SAMLResponse") || resp.Header.Get("Location") != "" {
				t.Fatal("a refused request was answered towards the SP")
			}
		})
	}
}

// signedAuthn returns a signed AuthnRequest element from sp (the SP's own
// key, unless signer is another SP object sharing its entity id).
func signedAuthn(t *testing.T, h *idptest.SAMLHarness, sp *idptest.SP, signer *saml.ServiceProvider, edit func(*saml.AuthnRequest)) *etree.Element {
	t.Helper()
	authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(authn)
	}
	if signer == nil {
		signer = sp.ServiceProvider
	}
	if err := signer.SignAuthnRequest(authn); err != nil {
		t.Fatal(err)
	}
	return authn.Element()
}

func postSSO(h *idptest.SAMLHarness, t *testing.T, el *etree.Element) *http.Response {
	return h.PostCrossSite(t, "/saml/sso", url.Values{"SAMLRequest": {idptest.EncodeEl(t, el)}})
}

func postSSORaw(h *idptest.SAMLHarness, t *testing.T, raw string) *http.Response {
	return h.PostCrossSite(t, "/saml/sso", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(raw))}})
}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestSAMLAuthnRequestAttacks(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{WantSignedRequests: true}})
	// An attacker's SP object: same entity id, a key not in the metadata.
	evilKey, evilCert := idptest.NewKeyCert(t, "evil")
	evil := *sp.ServiceProvider
	evil.Key, evil.Certificate = evilKey, evilCert

	// Baseline: a correctly signed request is accepted. (Its replay is
	// accepted too, but never answered twice: TestSAMLAnsweredOnce.)
	good := signedAuthn(t, h, sp, nil, nil)
	resp := postSSO(h, t, good)
	idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("valid signed request: %d", resp.StatusCode)
	}

	cases := []attackCase{
		{"stale IssueInstant", func(t *testing.T) *http.Response {
			return postSSO(h, t, signedAuthn(t, h, sp, nil, func(a *saml.AuthnRequest) { a.IssueInstant = time.Now().Add(-10 * time.Minute) }))
		}},
		{"IssueInstant in the future", func(t *testing.T) *http.Response {
			return postSSO(h, t, signedAuthn(t, h, sp, nil, func(a *saml.AuthnRequest) { a.IssueInstant = time.Now().Add(10 * time.Minute) }))
		}},
		{"signed by a key not in the SP metadata", func(t *testing.T) *http.Response {
			return postSSO(h, t, signedAuthn(t, h, sp, &evil, nil))
		}},
		{"unsigned request where signing is required", func(t *testing.T) *http.Response {
			authn, _ := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
			return postSSO(h, t, authn.Element())
		}},
		{"content changed after signing (ACS URL)", func(t *testing.T) *http.Response {
			el := signedAuthn(t, h, sp, nil, nil)
			el.SelectAttr("AssertionConsumerServiceURL").Value = "https://sp.example/saml/acs?x"
			return postSSO(h, t, el)
		}},
		{"content changed after signing (ID)", func(t *testing.T) *http.Response {
			el := signedAuthn(t, h, sp, nil, nil)
			el.SelectAttr("ID").Value = "id-fresh"
			return postSSO(h, t, el)
		}},
		{"comment injected into Issuer", func(t *testing.T) *http.Response {
			raw := string(idptest.ElBytes(t, signedAuthn(t, h, sp, nil, nil)))
			raw = strings.Replace(raw, "https://sp.example/saml/metadata</saml:Issuer>", "https://sp.example/saml/<!---->metadata</saml:Issuer>", 1)
			return postSSORaw(h, t, raw)
		}},
		{"XSW: signed request moved inside an unsigned one", func(t *testing.T) *http.Response {
			signed := signedAuthn(t, h, sp, nil, nil)
			outer := signedAuthn(t, h, sp, nil, nil)
			outer.RemoveChild(outer.FindElement("./Signature"))
			outer.SelectAttr("ID").Value = "id-evil"
			ext := outer.CreateElement("samlp:Extensions")
			ext.AddChild(signed)
			return postSSO(h, t, outer)
		}},
		{"XSW: signature moved to an unsigned root, signed element inside", func(t *testing.T) *http.Response {
			signed := signedAuthn(t, h, sp, nil, nil)
			sig := signed.FindElement("./Signature")
			signed.RemoveChild(sig)
			outer := etree.NewElement("samlp:AuthnRequest")
			for _, a := range signed.Attr {
				outer.CreateAttr(a.FullKey(), a.Value)
			}
			outer.SelectAttr("ID").Value = "id-evil2"
			outer.AddChild(signed.FindElement("./Issuer").Copy())
			outer.AddChild(sig)
			outer.AddChild(signed)
			return postSSO(h, t, outer)
		}},
		{"XSW: a second unsigned AuthnRequest added", func(t *testing.T) *http.Response {
			signed := signedAuthn(t, h, sp, nil, nil)
			extra := signed.Copy()
			extra.RemoveChild(extra.FindElement("./Signature"))
			extra.SelectAttr("ID").Value = "id-evil3"
			signed.AddChild(extra)
			return postSSO(h, t, signed)
		}},
		{"unknown SP", func(t *testing.T) *http.Response {
			other := *sp.ServiceProvider
			other.EntityID = "https://unknown.example/saml/metadata"
			authn, _ := other.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
			other.SignAuthnRequest(authn)
			return postSSO(h, t, authn.Element())
		}},
		{"ACS URL not in metadata", func(t *testing.T) *http.Response {
			return postSSO(h, t, signedAuthn(t, h, sp, nil, func(a *saml.AuthnRequest) { a.AssertionConsumerServiceURL = "https://evil.example/acs" }))
		}},
		{"bad base64", func(t *testing.T) *http.Response {
			return h.PostCrossSite(t, "/saml/sso", url.Values{"SAMLRequest": {"!!!not base64"}})
		}},
		{"bad deflate (redirect binding)", func(t *testing.T) *http.Response {
			return h.Get(t, "/saml/sso?SAMLRequest="+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("not deflate"))), "")
		}},
		{"oversized request", func(t *testing.T) *http.Response {
			big := strings.Repeat("A", 200<<10)
			return h.PostCrossSite(t, "/saml/sso", url.Values{"SAMLRequest": {big}})
		}},
		{"deflate bomb (redirect binding)", func(t *testing.T) *http.Response {
			bomb := deflate([]byte("<a>" + strings.Repeat(" ", 2<<20) + "</a>"))
			return h.Get(t, "/saml/sso?SAMLRequest="+url.QueryEscape(base64.StdEncoding.EncodeToString(bomb)), "")
		}},
		{"DTD", func(t *testing.T) *http.Response {
			return postSSORaw(h, t, `<!DOCTYPE x [<!ENTITY a "b">]>`+string(idptest.ElBytes(t, signedAuthn(t, h, sp, nil, nil))))
		}},
	}

	// HTTP-Redirect binding: the query-string signature.
	redirectURL := func(t *testing.T, signer *saml.ServiceProvider) *url.URL {
		authn, err := sp.MakeAuthenticationRequest(h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		u, err := authn.Redirect("relay", signer)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	cases = append(cases,
		attackCase{"redirect: signed by a key not in the SP metadata", func(t *testing.T) *http.Response {
			return h.Get(t, redirectURL(t, &evil).String(), "")
		}},
		attackCase{"redirect: RelayState changed after signing", func(t *testing.T) *http.Response {
			u := redirectURL(t, sp.ServiceProvider)
			u.RawQuery = strings.Replace(u.RawQuery, "RelayState=relay", "RelayState=evil", 1)
			return h.Get(t, u.String(), "")
		}},
		attackCase{"redirect: signature removed", func(t *testing.T) *http.Response {
			u := redirectURL(t, sp.ServiceProvider)
			q := u.Query()
			q.Del("Signature")
			q.Del("SigAlg")
			u.RawQuery = q.Encode()
			return h.Get(t, u.String(), "")
		}},
		attackCase{"redirect: SHA-1 signature", func(t *testing.T) *http.Response {
			weak := *sp.ServiceProvider
			weak.SignatureMethod = dsig.RSASHA1SignatureMethod
			return h.Get(t, redirectURL(t, &weak).String(), "")
		}},
	)
	wantRejected(t, h, cases)

	// Sanity: the redirect binding itself works.
	r := h.Get(t, redirectURL(t, sp.ServiceProvider).String(), "")
	idptest.ReadAll(t, r)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("valid redirect request: %d", r.StatusCode)
	}
}

func TestSAMLLogoutRequestAttacks(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	evilKey, evilCert := idptest.NewKeyCert(t, "evil")
	evil := *sp.ServiceProvider
	evil.Key, evil.Certificate = evilKey, evilCert
	sloURL := h.Server.URL + "/saml/slo"

	logout := func(t *testing.T, signer *saml.ServiceProvider, edit func(*saml.LogoutRequest)) *etree.Element {
		lr, err := sp.MakeLogoutRequest(sloURL, "some-name-id")
		if err != nil {
			t.Fatal(err)
		}
		lr.Signature = nil
		if edit != nil {
			edit(lr)
		}
		if signer == nil {
			signer = sp.ServiceProvider
		}
		if err := signer.SignLogoutRequest(lr); err != nil {
			t.Fatal(err)
		}
		return lr.Element()
	}
	post := func(t *testing.T, el *etree.Element) *http.Response {
		return h.PostCrossSite(t, "/saml/slo", url.Values{"SAMLRequest": {idptest.EncodeEl(t, el)}})
	}
	good := logout(t, nil, nil)
	resp := post(t, good)
	body := idptest.ReadAll(t, resp)
	if resp.StatusCode == http.StatusBadRequest || !(resp.StatusCode == http.StatusFound || strings.Contains(body, "SAMLResponse")) {
		t.Fatalf("valid logout request: %d\n%.300s", resp.StatusCode, body)
	}

	wantRejected(t, h, []attackCase{
		{"replayed", func(t *testing.T) *http.Response { return post(t, good) }},
		{"unsigned", func(t *testing.T) *http.Response {
			lr, _ := sp.MakeLogoutRequest(sloURL, "n")
			lr.Signature = nil
			return post(t, lr.Element())
		}},
		{"signed by a key not in the SP metadata", func(t *testing.T) *http.Response { return post(t, logout(t, &evil, nil)) }},
		{"stale IssueInstant", func(t *testing.T) *http.Response {
			return post(t, logout(t, nil, func(l *saml.LogoutRequest) { l.IssueInstant = time.Now().Add(-10 * time.Minute) }))
		}},
		{"NameID changed after signing", func(t *testing.T) *http.Response {
			el := logout(t, nil, nil)
			el.FindElement("./NameID").SetText("victim")
			return post(t, el)
		}},
		{"comment injected into NameID", func(t *testing.T) *http.Response {
			raw := string(idptest.ElBytes(t, logout(t, nil, nil)))
			raw = strings.Replace(raw, "some-name-id</saml:NameID>", "some-<!---->name-id</saml:NameID>", 1)
			return h.PostCrossSite(t, "/saml/slo", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(raw))}})
		}},
		{"XSW: signed request inside an unsigned one", func(t *testing.T) *http.Response {
			signed := logout(t, nil, nil)
			outer := logout(t, nil, nil)
			outer.RemoveChild(outer.FindElement("./Signature"))
			outer.SelectAttr("ID").Value = "id-evil"
			outer.FindElement("./NameID").SetText("victim")
			ext := outer.CreateElement("samlp:Extensions")
			ext.AddChild(signed)
			return post(t, outer)
		}},
		{"redirect: signed by a key not in the SP metadata", func(t *testing.T) *http.Response {
			u, err := evil.MakeRedirectLogoutRequest("n", "relay")
			if err != nil {
				t.Fatal(err)
			}
			return h.Get(t, u.String(), "")
		}},
		{"redirect: RelayState changed after signing", func(t *testing.T) *http.Response {
			u, err := sp.MakeRedirectLogoutRequest("n", "relay")
			if err != nil {
				t.Fatal(err)
			}
			u.RawQuery = strings.Replace(u.RawQuery, "RelayState=relay", "RelayState=evil", 1)
			return h.Get(t, u.String(), "")
		}},
	})
}
