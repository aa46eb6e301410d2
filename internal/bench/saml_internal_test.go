package bench

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// TestVerifyBothSignatures checks the load generator's own signature
// check on responses signed here: both signatures good passes; an
// unsigned Response or Assertion, a changed attribute value or another
// IdP's certificate fails.
func TestVerifyBothSignatures(t *testing.T) {
	cert, ks := testKey(t)
	other, _ := testKey(t)
	build := func(signResponse, signAssertion bool, tamper func(string) string) []byte {
		t.Helper()
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r1" Version="2.0">` +
			`<saml:Issuer>idp</saml:Issuer><saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="a1" Version="2.0"><saml:Issuer>idp</saml:Issuer>` +
			`<saml:AttributeStatement><saml:Attribute Name="givenName"><saml:AttributeValue>Pupil0</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>` +
			`</saml:Assertion></samlp:Response>`); err != nil {
			t.Fatal(err)
		}
		sc := dsig.NewDefaultSigningContext(ks)
		sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		resp := doc.Root()
		if signAssertion {
			as := resp.FindElement("./Assertion")
			signed, err := sc.SignEnveloped(as)
			if err != nil {
				t.Fatal(err)
			}
			resp.RemoveChild(as)
			resp.AddChild(signed)
		}
		if signResponse {
			signed, err := sc.SignEnveloped(resp)
			if err != nil {
				t.Fatal(err)
			}
			doc.SetRoot(signed)
		}
		s, err := doc.WriteToString()
		if err != nil {
			t.Fatal(err)
		}
		if tamper != nil {
			s = tamper(s)
		}
		return []byte(s)
	}
	if err := verifyBothSignatures(build(true, true, nil), []*x509.Certificate{cert}); err != nil {
		t.Fatalf("both signed: %v", err)
	}
	for name, c := range map[string]struct {
		raw   []byte
		certs []*x509.Certificate
		want  string
	}{
		"response unsigned":  {build(false, true, nil), []*x509.Certificate{cert}, "Response is not signed"},
		"assertion unsigned": {build(true, false, nil), []*x509.Certificate{cert}, "Assertion is not signed"},
		"value changed":      {build(true, true, func(s string) string { return strings.Replace(s, "Pupil0", "Pupil1", 1) }), []*x509.Certificate{cert}, "signature"},
		"other certificate":  {build(true, true, nil), []*x509.Certificate{other}, "signature of the Response"},
	} {
		err := verifyBothSignatures(c.raw, c.certs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one with %q", name, err, c.want)
		}
	}
}

func testKey(t *testing.T) (*x509.Certificate, dsig.X509KeyStore) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
}
