package saml_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// soapSP is a service provider's SOAP single logout endpoint: it checks
// the LogoutRequest's signature against the IdP's certificate and answers
// with status (Success unless set).
type soapSP struct {
	t        *testing.T
	idpCert  *x509.Certificate
	mu       sync.Mutex
	status   string
	received []soapLogout
}

type soapLogout struct {
	NameID, Format, SPNameQualifier, SessionIndex, Issuer string
}

func (s *soapSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil || r.Header.Get("SOAPAction") == "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
		http.Error(w, "not SOAP", http.StatusBadRequest)
		return
	}
	lr := doc.FindElement("//Body/LogoutRequest")
	if lr == nil {
		http.Error(w, "no LogoutRequest", http.StatusBadRequest)
		return
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{s.idpCert}})
	if _, err := vc.Validate(lr); err != nil {
		s.t.Errorf("SP: LogoutRequest signature: %v", err)
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	got := soapLogout{Issuer: lr.FindElement("./Issuer").Text()}
	if n := lr.FindElement("./NameID"); n != nil {
		got.NameID, got.Format, got.SPNameQualifier = n.Text(), n.SelectAttrValue("Format", ""), n.SelectAttrValue("SPNameQualifier", "")
	}
	if i := lr.FindElement("./SessionIndex"); i != nil {
		got.SessionIndex = i.Text()
	}
	s.mu.Lock()
	s.received = append(s.received, got)
	status := s.status
	s.mu.Unlock()
	if status == "" {
		status = "urn:oasis:names:tc:SAML:2.0:status:Success"
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>`+
		`<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" InResponseTo="%s" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">`+
		`<saml:Issuer>https://sp.example/saml/metadata</saml:Issuer><samlp:Status><samlp:StatusCode Value="%s"/></samlp:Status></samlp:LogoutResponse></S:Body></S:Envelope>`,
		lr.SelectAttrValue("ID", ""), status)
}

func (s *soapSP) got() []soapLogout {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]soapLogout(nil), s.received...)
}

// TestSAMLSOAPBackChannelLogout: when a pupil's access ends, the SP that
// holds a session gets a signed LogoutRequest over SOAP, from the durable
// queue, naming the NameID and SessionIndex of its assertion; a refusal is
// recorded and retried, an SP without a SOAP endpoint is not asked again.
func TestSAMLSOAPBackChannelLogout(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	ctx := context.Background()
	cert := h.IdPMeta.IDPSSODescriptors[0].KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(cert), ""))
	if err != nil {
		t.Fatal(err)
	}
	idpCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	peer := &soapSP{t: t, idpCert: idpCert}
	soapSrv := httptest.NewServer(peer)
	defer soapSrv.Close()
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}, SOAPSLO: soapSrv.URL + "/Shibboleth.sso/SLO/SOAP"})
	other := h.NewSP(t, idptest.SPOptions{EntityID: "https://front.example/saml/metadata", Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})

	signIn := func(sp *idptest.SP) (nameID, sessionIndex string) {
		sid := h.Sessions.Login(h.Pupil.ID)
		action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
		a, err := sp.ACS(t, action, form)
		if err != nil {
			t.Fatal(samlErr(err))
		}
		return a.Subject.NameID.Value, a.AuthnStatements[0].SessionIndex
	}
	nameID, idx := signIn(sp)
	signIn(other)

	svc := access.New(access.Options{})
	if e, err := svc.EndIn(ctx, h.Store, access.Pupil(h.Pupil.ID), "consent withdrawn"); err != nil || e.Notices != 2 {
		t.Fatalf("End = %+v, %v", e, err)
	}
	d, f, err := h.SAML.DeliverQueuedLogouts(ctx, "node-a")
	if err != nil || d != 1 || f != 1 {
		t.Fatalf("delivered %d, failed %d: %v", d, f, err)
	}
	got := peer.got()
	if len(got) != 1 || got[0].NameID != nameID || got[0].SessionIndex != idx || got[0].SPNameQualifier != sp.EntityID ||
		got[0].Format != "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" || got[0].Issuer != h.SAML.EntityID() {
		t.Fatalf("SP received %+v, want NameID %s, SessionIndex %s", got, nameID, idx)
	}
	// The front-channel-only SP cannot be told over the back channel: the
	// notice stays, marked, and is not retried.
	left, _ := h.Store.ListLogouts(ctx)
	if len(left) != 1 || left[0].PlatformID != other.Platform.ID || !strings.Contains(left[0].LastError, "no SOAP single logout service") {
		t.Fatalf("notices left = %+v", left)
	}
	if d, f, _ := h.SAML.DeliverQueuedLogouts(ctx, "node-a"); d+f != 0 {
		t.Fatal("a refused SOAP logout was retried")
	}

	// An SP that answers with a failure status: recorded, kept for retry.
	peer.mu.Lock()
	peer.status = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	peer.mu.Unlock()
	signIn(sp)
	if _, err := svc.EndIn(ctx, h.Store, access.PupilPlatform(h.Pupil.ID, sp.Platform.ID), "consent withdrawn"); err != nil {
		t.Fatal(err)
	}
	if d, f, _ := h.SAML.DeliverQueuedLogouts(ctx, "node-a"); d != 0 || f != 1 {
		t.Fatalf("failure status: delivered %d, failed %d", d, f)
	}
	var kept []school.LogoutNotice
	all, _ := h.Store.ListLogouts(ctx)
	for _, n := range all {
		if n.PlatformID == sp.Platform.ID {
			kept = append(kept, n)
		}
	}
	if len(kept) != 1 || !strings.Contains(kept[0].LastError, "Responder") || !kept[0].NextAt.After(kept[0].CreatedAt) {
		t.Fatalf("failed notice = %+v", kept)
	}
}
