package idp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"github.com/elevid/elevid/internal/testenv"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSAMLXMLSec1Verifies has xmlsec1 (libxmlsec1, independent of Go's
// XML-DSig code) verify both signatures of an ElevID response with only
// the certificate from the IdP metadata. With SAML_INTEROP_OUT set it
// also leaves the response, the certificate and the SP parameters there
// for .ci/saml-interop.sh (node-saml).
func TestSAMLXMLSec1Verifies(t *testing.T) {
	xmlsec, err := exec.LookPath("xmlsec1")
	if err != nil {
		testenv.Unavailable(t, "xmlsec1", "xmlsec1 not on PATH (Debian package xmlsec1)")
	}
	h := newHarness(t)
	sp := h.newSP(t, spOptions{consent: true, flags: []string{"--no-encrypt"}})
	sid := h.sessions.login(h.pupil.ID)
	action, form := postedForm(t, readAll(t, h.get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := h.keys.Published(context.Background())
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
		filepath.Join(dir, "sp.env"):       []byte("SP_ENTITY_ID=" + sp.EntityID + "\nACS_URL=" + action + "\nIDP_ENTITY_ID=" + h.saml.EntityID() + "\n"),
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
