package saml_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/internal/testenv"
)

// TestSAMLXMLSec1Verifies has xmlsec1 (libxmlsec1, independent of Go's
// XML-DSig code) verify both signatures of an ElevID response with only
// the certificate from the IdP metadata. With SAML_INTEROP_OUT set it
// also leaves the response, the certificate and the SP parameters there
// for .ci/saml-interop.sh (node-saml).
func TestSAMLXMLSec1Verifies(t *testing.T) {
	xmlsec := testenv.Binary(t, "xmlsec1", "xmlsec1")
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	sid := h.Sessions.Login(h.Pupil.ID)
	action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := h.Keys.Published(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out := os.Getenv("SAML_INTEROP_OUT"); out != "" {
		dir = out
	}
	respFile, certFile := filepath.Join(dir, "response.xml"), filepath.Join(dir, "idp-cert.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})
	for f, b := range map[string][]byte{
		respFile: raw, certFile: certPEM,
		filepath.Join(dir, "response.b64"): []byte(form.Get("SAMLResponse")),
		filepath.Join(dir, "sp.env"):       []byte("SP_ENTITY_ID=" + sp.EntityID + "\nACS_URL=" + action + "\nIDP_ENTITY_ID=" + h.SAML.EntityID() + "\n"),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, xpath := range map[string]string{
		"response":  "/*[local-name()='Response']/*[local-name()='Signature']",
		"assertion": "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']",
	} {
		cmd := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", certFile,
			"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
			"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
			"--node-xpath", xpath, respFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("xmlsec1 rejected the %s signature: %v\n%s", name, err, out)
		}
	}
	// And a changed response fails xmlsec1 too.
	bad := filepath.Join(dir, "tampered.xml")
	tampered := bytes.Replace(raw, []byte(">Ida<"), []byte(">Eva<"), 1)
	if bytes.Equal(tampered, raw) {
		t.Fatal("given name not in response")
	}
	if err := os.WriteFile(bad, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", certFile, "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
		"--node-xpath", "/*[local-name()='Response']/*[local-name()='Signature']", bad).CombinedOutput(); err == nil {
		t.Fatalf("xmlsec1 accepted a tampered response:\n%s", out)
	}
}

// TestSAMLGoxmldsigVersion guards against a downgrade: goxmldsig before
// v1.6.1 allows signature bypass, and crewjam/saml alone asks for less.
func TestSAMLGoxmldsigVersion(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Version}}", "github.com/russellhaering/goxmldsig").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	v := strings.TrimSpace(string(out))
	var maj, minor, patch int
	if _, err := fmt.Sscanf(v, "v%d.%d.%d", &maj, &minor, &patch); err != nil {
		t.Fatalf("goxmldsig version %q: %v", v, err)
	}
	if maj < 1 || (maj == 1 && (minor < 6 || (minor == 6 && patch < 1))) {
		t.Fatalf("goxmldsig %s < v1.6.1", v)
	}
}

// TestSAMLXMLSec1Decrypts has xmlsec1 1.2.x (what mod_auth_mellon, pysaml2
// and python3-saml decrypt with) decrypt ElevID's encrypted assertions
// with the SP's key, for every algorithm pair ElevID can choose, and then
// verify the decrypted assertion's signature. Before issue 16 the key
// transport carried a SHA-256 DigestMethod, which xmlsec1 1.2.37 refuses.
func TestSAMLXMLSec1Decrypts(t *testing.T) {
	xmlsec := testenv.Binary(t, "xmlsec1", "xmlsec1")
	h := idptest.NewSAMLHarness(t)
	certs, err := h.Keys.Published(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		spec      idpsaml.PlatformSpec
		data, key string
	}{
		{idpsaml.PlatformSpec{}, "aes256-gcm", "rsa-oaep-mgf1p"}, // crewjam's SP metadata lists GCM first
		{idpsaml.PlatformSpec{DataEncryption: idpsaml.EncAES256CBC}, "aes256-cbc", "rsa-oaep-mgf1p"},
		{idpsaml.PlatformSpec{DataEncryption: idpsaml.EncAES128GCM}, "aes128-gcm", "rsa-oaep-mgf1p"},
		{idpsaml.PlatformSpec{DataEncryption: idpsaml.EncAES128CBC, KeyTransport: idpsaml.KeyRSAOAEPMGF1P}, "aes128-cbc", "rsa-oaep-mgf1p"},
		// xmlsec1 1.2.37 does not know XML Encryption 1.1 rsa-oaep at all:
		// it is an override for SPs that want it, never a default.
	} {
		name := strings.Join(append([]string{tc.data}, tc.key), "+")
		t.Run(name, func(t *testing.T) {
			sp := h.NewSP(t, idptest.SPOptions{EntityID: fmt.Sprintf("https://sp%d.example/saml/metadata", i), Consent: true, Spec: tc.spec})
			sid := h.Sessions.Login(h.Pupil.ID)
			_, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
			raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"#" + tc.data + `"`, "#" + tc.key + `"`, `xmldsig#sha1"`} {
				if !bytes.Contains(raw, []byte(want)) {
					t.Fatalf("response does not name %s:\n%s", want, raw)
				}
			}
			if bytes.Contains(raw, []byte(">Ida<")) {
				t.Fatal("assertion is not encrypted")
			}
			dir := t.TempDir()
			respFile, keyFile, outFile, certFile := filepath.Join(dir, "r.xml"), filepath.Join(dir, "sp.key"), filepath.Join(dir, "dec.xml"), filepath.Join(dir, "idp.pem")
			keyDER, err := x509.MarshalPKCS8PrivateKey(sp.SPKey)
			if err != nil {
				t.Fatal(err)
			}
			for f, b := range map[string][]byte{
				respFile: raw, keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
				certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw}),
			} {
				if err := os.WriteFile(f, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command(xmlsec, "--decrypt", "--privkey-pem", keyFile, "--output", outFile, respFile).CombinedOutput(); err != nil {
				t.Fatalf("xmlsec1 could not decrypt: %v\n%s", err, out)
			}
			dec, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(dec, []byte(">Ida<")) {
				t.Fatalf("decrypted response has no given name:\n%s", dec)
			}
			out, err := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", certFile,
				"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
				"--node-xpath", "//*[local-name()='Assertion']/*[local-name()='Signature']", outFile).CombinedOutput()
			if err != nil {
				t.Fatalf("xmlsec1 rejected the decrypted assertion's signature: %v\n%s", err, out)
			}
		})
	}
}
