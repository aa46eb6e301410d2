package bench

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/internal/idptest"
)

// TestSAMLAuthnRedirect checks the signed HTTP-Redirect URLs of the bench SP,
// also from several goroutines sharing the pool of DEFLATE writers: each
// is the URL crewjam/saml's (*AuthnRequest).Redirect builds (RSA PKCS#1
// v1.5 signatures are deterministic), and, decoded on its own, carries the
// AuthnRequest (inflated, parsed) and a signature of SAMLRequest, RelayState
// and SigAlg as sent that the SP's certificate verifies.
func TestSAMLAuthnRedirect(t *testing.T) {
	fs, err := newFixtureSAML()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(fs.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	for _, sso := range []string{"https://idp.example/saml/sso", "https://idp.example/saml/sso?tenant=a%20b"} {
		idpMD := &saml.EntityDescriptor{EntityID: "https://idp.example", IDPSSODescriptors: []saml.IDPSSODescriptor{{
			SingleSignOnServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: sso}}}}}
		sp, err := fs.serviceProvider(idpMD)
		if err != nil {
			t.Fatal(err)
		}
		r := &authnRedirect{key: sp.Key}
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for i := range 3 {
					relay := "relay/" + string(rune('a'+g)) + "+" + string(rune('0'+i))
					checkAuthnRedirect(t, sp, r, cert, relay)
				}
			})
		}
		wg.Wait()
	}
}

func checkAuthnRedirect(t *testing.T, sp *saml.ServiceProvider, r *authnRedirect, cert *x509.Certificate, relay string) {
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Error(err)
		return
	}
	got, err := r.url(req, relay)
	if err != nil {
		t.Error(err)
		return
	}
	want, err := req.Redirect(relay, sp)
	if err != nil {
		t.Error(err)
		return
	}
	if got != want.String() {
		t.Errorf("URL\n%s\nwant crewjam/saml's\n%s", got, want)
	}

	u, err := url.Parse(got)
	if err != nil {
		t.Error(err)
		return
	}
	dest, _ := url.Parse(req.Destination)
	if u.Scheme+"://"+u.Host+u.Path != dest.Scheme+"://"+dest.Host+dest.Path {
		t.Errorf("URL %s does not go to %s", got, req.Destination)
	}
	raw := strings.TrimPrefix(strings.TrimPrefix(u.RawQuery, dest.RawQuery), "&")
	params := strings.Split(raw, "&")
	if len(params) != 4 {
		t.Errorf("query %q: want SAMLRequest, RelayState, SigAlg, Signature", raw)
		return
	}
	values := make([]string, 4)
	for i, name := range []string{"SAMLRequest", "RelayState", "SigAlg", "Signature"} {
		k, v, _ := strings.Cut(params[i], "=")
		if k != name {
			t.Errorf("parameter %d is %q, want %s", i, k, name)
			return
		}
		if values[i], err = url.QueryUnescape(v); err != nil {
			t.Error(err)
			return
		}
	}
	if values[1] != relay || values[2] != dsig.RSASHA256SignatureMethod {
		t.Errorf("RelayState %q SigAlg %q", values[1], values[2])
	}
	sig, err := base64.StdEncoding.DecodeString(values[3])
	if err != nil {
		t.Error(err)
		return
	}
	signed := strings.Join(params[:3], "&")
	if err := cert.CheckSignature(x509.SHA256WithRSA, []byte(signed), sig); err != nil {
		t.Errorf("query signature: %v", err)
	}
	deflated, err := base64.StdEncoding.DecodeString(values[0])
	if err != nil {
		t.Error(err)
		return
	}
	inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Errorf("inflate: %v", err)
		return
	}
	var ar saml.AuthnRequest
	if err := xml.Unmarshal(inflated, &ar); err != nil {
		t.Errorf("AuthnRequest: %v\n%s", err, inflated)
		return
	}
	if ar.ID != req.ID || ar.Destination != req.Destination || ar.Issuer == nil || ar.Issuer.Value != benchSAMLEntity ||
		ar.AssertionConsumerServiceURL != benchSAMLACS || ar.Signature != nil {
		t.Errorf("AuthnRequest %+v, want ID %s to %s from %s", ar, req.ID, req.Destination, benchSAMLEntity)
	}
}

// TestSAMLCheck runs the bench SP against ElevID's SAML IdP (the
// idptest harness): the signed redirect URL is accepted and the Response
// passes the checks; then the Response, changed and where needed signed
// again with the IdP's key, is refused when either signature is missing
// (though crewjam/saml alone accepts one signature), when a Signature is
// not an XML-DSig one, when a signed value was altered, when it is signed
// with another key, and when it answers another request.
func TestSAMLCheck(t *testing.T) {
	ctx := context.Background()
	h := idptest.NewSAMLHarness(t)
	fs, pf, err := prepareSAML(ctx, h.Store, h.School)
	if err != nil {
		t.Fatal(err)
	}
	h.Consent(t, pf.ID)
	sp, err := fs.serviceProvider(h.IdPMeta)
	if err != nil {
		t.Fatal(err)
	}
	b := &samlBrowser{sp: sp, p: FixturePupil{GivenName: h.Pupil.GivenName}, redirect: &authnRedirect{key: sp.Key}}
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	const relay = "bench-relay"
	u, err := b.redirect.url(req, relay)
	if err != nil {
		t.Fatal(err)
	}
	sid := h.Sessions.Login(h.Pupil.ID)
	resp := h.Get(t, u, sid)
	for range 4 {
		if resp.StatusCode/100 != 3 {
			break
		}
		resp.Body.Close()
		resp = h.Get(t, resp.Header.Get("Location"), sid)
	}
	page := idptest.ReadAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("SSO: status %d\n%s", resp.StatusCode, page)
	}
	if err := b.check(page, req.ID, relay); err != nil {
		t.Fatalf("the IdP's response: %v", err)
	}
	if err := b.check(page, "id-other", relay); err == nil || !strings.Contains(err.Error(), "InResponseTo") {
		t.Errorf("response to another request: err %v, want InResponseTo refused", err)
	}

	// plain is the bench SP without requireSignedResponse.
	plain, err := fs.serviceProvider(h.IdPMeta)
	if err != nil {
		t.Fatal(err)
	}
	plain.ValidateRequestID = nil

	action, form := idptest.PostedForm(t, page)
	sent, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	idpKey, err := h.Keys.Signing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, otherCert := idptest.NewKeyCert(t, "other idp")
	idpSigner := dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{idpKey.Cert.Raw}, PrivateKey: idpKey.Key})
	otherSigner := dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{otherCert.Raw}, PrivateKey: otherKey})
	fakeSignature := func(el *etree.Element) {
		el.CreateElement("x:Signature").CreateAttr("xmlns:x", "urn:example:not-xmldsig")
	}
	for _, c := range []struct {
		name string
		// change changes the Response; signer, when not nil, signs it
		// again (its own signature removed first).
		change func(t *testing.T, resp *etree.Element)
		signer dsig.X509KeyStore
		// alter changes the serialized Response.
		alter func(string) string
		want  string // "" when the Response passes the checks
		// crewjam tells that crewjam/saml alone accepts the Response.
		crewjam bool
	}{
		{name: "response signed again", signer: idpSigner, crewjam: true},
		{name: "assertion unsigned", change: func(t *testing.T, r *etree.Element) { removeSignature(t, assertion(t, r)) }, signer: idpSigner,
			want: "the Assertion is not signed", crewjam: true},
		{name: "response unsigned", change: func(t *testing.T, r *etree.Element) { removeSignature(t, r) },
			want: "the Response is not signed", crewjam: true},
		{name: "response signature not XML-DSig", change: func(t *testing.T, r *etree.Element) { removeSignature(t, r); fakeSignature(r) },
			want: "the Response is not signed", crewjam: true},
		{name: "assertion signature not XML-DSig", change: func(t *testing.T, r *etree.Element) {
			a := assertion(t, r)
			removeSignature(t, a)
			fakeSignature(a)
		}, signer: idpSigner, want: "the Assertion is not signed", crewjam: true},
		{name: "attribute altered", alter: func(s string) string { return strings.Replace(s, ">"+h.Pupil.GivenName+"<", ">Eva<", 1) },
			want: "response refused"},
		{name: "response signed by another key", signer: otherSigner, want: "cannot validate signature on Response"},
		{name: "assertion signed by another key", change: func(t *testing.T, r *etree.Element) {
			a := assertion(t, r)
			removeSignature(t, a)
			sc := dsig.NewDefaultSigningContext(otherSigner)
			sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
			signed, err := sc.SignEnveloped(a)
			if err != nil {
				t.Fatal(err)
			}
			r.InsertChildAt(a.Index(), signed)
			r.RemoveChild(a)
		}, signer: idpSigner, want: "cannot validate signature on Assertion"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(sent); err != nil {
				t.Fatal(err)
			}
			r := doc.Root()
			if c.change != nil {
				c.change(t, r)
			}
			if c.signer != nil {
				removeSignature(t, r)
				sc := dsig.NewDefaultSigningContext(c.signer)
				sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
				signedResp, err := sc.SignEnveloped(r)
				if err != nil {
					t.Fatal(err)
				}
				doc.SetRoot(signedResp)
			}
			s, err := doc.WriteToString()
			if err != nil {
				t.Fatal(err)
			}
			if c.alter != nil {
				if s2 := c.alter(s); s2 != s {
					s = s2
				} else {
					t.Fatal("nothing altered")
				}
			}
			if c.crewjam {
				if _, err := plain.ParseXMLResponse([]byte(s), []string{req.ID}, plain.AcsURL); err != nil {
					t.Fatalf("crewjam/saml refuses the Response: %v", err.(*saml.InvalidResponseError).PrivateErr)
				}
			}
			err = b.check(formPage(action, base64.StdEncoding.EncodeToString([]byte(s)), relay), req.ID, relay)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("err %v, want one with %q", err, c.want)
			}
		})
	}
}

// assertion is the Assertion in the Response r.
func assertion(t *testing.T, r *etree.Element) *etree.Element {
	t.Helper()
	a := r.FindElement("./Assertion")
	if a == nil {
		t.Fatal("no Assertion")
	}
	return a
}

// removeSignature removes the XML-DSig Signature of el, which must have
// one.
func removeSignature(t *testing.T, el *etree.Element) {
	t.Helper()
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == dsig.Namespace {
			el.RemoveChild(c)
			return
		}
	}
	t.Fatalf("%s has no Signature", el.Tag)
}

// formPage is an auto-posting form as ElevID's saml-post page has it.
func formPage(action, samlResponse, relay string) string {
	return `<form method="post" action="` + html.EscapeString(action) + `" id="auto-post-form">` +
		`<input type="hidden" name="SAMLResponse" value="` + html.EscapeString(samlResponse) + `">` +
		`<input type="hidden" name="RelayState" value="` + html.EscapeString(relay) + `"></form>`
}
