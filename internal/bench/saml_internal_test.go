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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/internal/idptest"
)

// testFixtureSAML is a new bench SP and its certificate.
func testFixtureSAML(t *testing.T) (*FixtureSAML, *x509.Certificate) {
	t.Helper()
	fs, err := newFixtureSAML()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(fs.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	return fs, cert
}

// testServiceProvider is fs as crewjam/saml sees it, trusting an IdP
// whose HTTP-Redirect SSO endpoint is sso.
func testServiceProvider(t *testing.T, fs *FixtureSAML, sso string) *saml.ServiceProvider {
	t.Helper()
	idpMD := &saml.EntityDescriptor{EntityID: "https://idp.example", IDPSSODescriptors: []saml.IDPSSODescriptor{{
		SingleSignOnServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: sso}}}}}
	sp, err := fs.serviceProvider(idpMD)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestSAMLAuthnRedirect checks the signed HTTP-Redirect URLs of the bench SP,
// also from several goroutines sharing the pool of DEFLATE writers: each
// is the URL crewjam/saml's (*AuthnRequest).Redirect builds (RSA PKCS#1
// v1.5 signatures are deterministic), and, decoded on its own, carries the
// AuthnRequest (inflated, parsed) and a signature of SAMLRequest, RelayState
// and SigAlg as sent that the SP's certificate verifies.
func TestSAMLAuthnRedirect(t *testing.T) {
	fs, cert := testFixtureSAML(t)
	for _, sso := range []string{"https://idp.example/saml/sso", "https://idp.example/saml/sso?tenant=a%20b"} {
		sp := testServiceProvider(t, fs, sso)
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

// samlAnswerRelay is the RelayState of samlAnswer's request.
const samlAnswerRelay = "bench-relay"

// samlAnswer runs the bench SP against ElevID's SAML IdP (the idptest
// harness): it sends a signed AuthnRequest (RelayState samlAnswerRelay) for
// the harness's signed-in pupil, follows the redirects and returns the
// page with the Response, with the harness, the SP's fixture, a browser
// for its checks and the request.
func samlAnswer(t *testing.T) (*idptest.SAMLHarness, *FixtureSAML, *samlBrowser, *saml.AuthnRequest, string) {
	t.Helper()
	h := idptest.NewSAMLHarness(t)
	fs, pf, err := prepareSAML(context.Background(), h.Store, h.School)
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
	u, err := b.redirect.url(req, samlAnswerRelay)
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
	return h, fs, b, req, page
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
	h, fs, b, req, page := samlAnswer(t)
	const relay = samlAnswerRelay
	if err := b.check(page, req.ID, relay, time.Now()); err != nil {
		t.Fatalf("the IdP's response: %v", err)
	}
	if err := b.check(page, "id-other", relay, time.Now()); err == nil || !strings.Contains(err.Error(), "InResponseTo") {
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
			err = b.check(formPage(action, base64.StdEncoding.EncodeToString([]byte(s)), relay), req.ID, relay, time.Now())
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

// TestSAMLAuthnPool checks the AuthnRequests signed before the timed
// window: taken from several goroutines, each is handed out once, with
// its own request ID and RelayState, which its URL carries, signed; when
// they run out, or the next is too old to send, one is signed on the spot
// and counted.
func TestSAMLAuthnPool(t *testing.T) {
	fs, cert := testFixtureSAML(t)
	sp := testServiceProvider(t, fs, "https://idp.example/saml/sso")
	now := time.Now()
	p := &authnPool{sp: sp, redirect: &authnRedirect{key: sp.Key}, now: func() time.Time { return now }, maxAge: time.Minute}
	const n = 24
	if err := p.fill(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		taken []signedAuthn
		wg    sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for range n/4 + 1 { // 4 more than were signed
				a, err := p.take()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				taken = append(taken, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got := p.ranOut.Load(); got != 4 || p.tooOld.Load() != 0 || p.used() != n {
		t.Errorf("ran out %d, too old %d, used %d; want 4, 0 and %d", got, p.tooOld.Load(), p.used(), n)
	}
	ids, relays := map[string]bool{}, map[string]bool{}
	for _, a := range taken {
		if ids[a.id] || relays[a.relay] {
			t.Errorf("request %s or RelayState %s handed out twice", a.id, a.relay)
		}
		ids[a.id], relays[a.relay] = true, true
		if id, relay := sentAuthnRequest(t, a.url, cert); id != a.id || relay != a.relay {
			t.Errorf("URL sends request %s with RelayState %q, want %s and %q", id, relay, a.id, a.relay)
		}
	}
	if len(ids) != n+4 {
		t.Errorf("%d distinct requests, want %d", len(ids), n+4)
	}

	// Too old: the next is replaced by one signed on the spot.
	p = &authnPool{sp: sp, redirect: &authnRedirect{key: sp.Key}, now: time.Now, maxAge: time.Minute}
	if err := p.fill(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	old := p.reqs[0]
	p.now = func() time.Time { return old.issued.Add(time.Minute + time.Second) }
	a, err := p.take()
	if err != nil {
		t.Fatal(err)
	}
	if a.id == old.id || p.tooOld.Load() != 1 || p.used() != 0 {
		t.Errorf("took %s (the old one %s), too old %d, used %d; want a new one, 1 and 0", a.id, old.id, p.tooOld.Load(), p.used())
	}
	p.now = time.Now
	if a, err := p.take(); err != nil || a.id != p.reqs[1].id || p.used() != 1 {
		t.Errorf("took %s (err %v), used %d; want the second pre-signed %s, 1", a.id, err, p.used(), p.reqs[1].id)
	}
}

// sentAuthnRequest is the ID of the AuthnRequest the signed HTTP-Redirect
// URL u sends and its RelayState, the signature of which cert verifies.
func sentAuthnRequest(t *testing.T, u string, cert *x509.Certificate) (id, relay string) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	signed, _, _ := strings.Cut(pu.RawQuery, "&Signature=")
	sig, err := base64.StdEncoding.DecodeString(q.Get("Signature"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(x509.SHA256WithRSA, []byte(signed), sig); err != nil {
		t.Errorf("query signature: %v", err)
	}
	deflated, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	var ar saml.AuthnRequest
	if err := xml.Unmarshal(inflated, &ar); err != nil {
		t.Fatal(err)
	}
	return ar.ID, q.Get("RelayState")
}

// TestSAMLCheckKept checks Responses kept from the timed window after
// it, as RunSAML does: every one is checked, those failing a check are
// counted as errors and only the others' latencies kept, the first error
// is that of the earliest failing exchange, and a Response's validity is
// judged as of its arrival, not of the check.
func TestSAMLCheckKept(t *testing.T) {
	h, _, b, req, page := samlAnswer(t)
	const relay = samlAnswerRelay
	action, form := idptest.PostedForm(t, page)
	sent, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	altered := strings.Replace(string(sent), ">"+h.Pupil.GivenName+"<", ">Eva<", 1)
	if altered == string(sent) {
		t.Fatal("nothing altered")
	}
	tampered := formPage(action, base64.StdEncoding.EncodeToString([]byte(altered)), relay)
	now := time.Now()
	kept := []samlKept{
		{b: b, page: []byte(page), requestID: req.ID, relay: relay, received: now, latency: 3 * time.Millisecond},
		{b: b, page: []byte(tampered), requestID: req.ID, relay: relay, received: now.Add(-time.Second), latency: time.Millisecond},
		{b: b, page: []byte(page), requestID: "id-other", relay: relay, received: now, latency: time.Millisecond},
		{b: b, page: []byte(page), requestID: req.ID, relay: "other-relay", received: now, latency: time.Millisecond},
		// Arrived 10 minutes after it was issued: expired, though checked now.
		{b: b, page: []byte(page), requestID: req.ID, relay: relay, received: now.Add(10 * time.Minute), latency: time.Millisecond},
		{b: b, page: []byte(page), requestID: req.ID, relay: relay, received: now.Add(time.Second), latency: 2 * time.Millisecond},
	}
	var first firstError
	passed, failed := checkKept(kept, &first)
	slices.Sort(passed)
	if !slices.Equal(passed, []time.Duration{2 * time.Millisecond, 3 * time.Millisecond}) || failed != 4 {
		t.Errorf("passed %v, failed %d; want [2ms 3ms] and 4", passed, failed)
	}
	if !strings.Contains(first.msg, "response refused") || !first.at.Equal(now.Add(-time.Second)) {
		t.Errorf("first error %q at %v, want the altered Response refused at %v", first.msg, first.at, now.Add(-time.Second))
	}
	for i, want := range map[int]string{2: "InResponseTo", 3: "RelayState", 4: "expired"} {
		if err := kept[i].check(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("kept %d: err %v, want one with %q", i, err, want)
		}
	}
}
