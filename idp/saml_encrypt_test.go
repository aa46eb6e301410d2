package idp_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/idp"
)

func TestChooseSAMLEncryption(t *testing.T) {
	md := func(use string, algs ...string) *saml.EntityDescriptor {
		kd := saml.KeyDescriptor{Use: use}
		for _, a := range algs {
			kd.EncryptionMethods = append(kd.EncryptionMethods, saml.EncryptionMethod{Algorithm: a})
		}
		return &saml.EntityDescriptor{SPSSODescriptors: []saml.SPSSODescriptor{{SSODescriptor: saml.SSODescriptor{
			RoleDescriptor: saml.RoleDescriptor{KeyDescriptors: []saml.KeyDescriptor{kd}}}}}}
	}
	for _, tc := range []struct {
		name      string
		set       idp.SAMLSettings
		md        *saml.EntityDescriptor
		data, key string
	}{
		{"no EncryptionMethod: the defaults", idp.SAMLSettings{}, md("encryption"), idp.EncAES256CBC, idp.KeyRSAOAEPMGF1P},
		{"GCM listed", idp.SAMLSettings{}, md("encryption", idp.EncAES128CBC, idp.EncAES128GCM, idp.KeyRSAOAEPMGF1P), idp.EncAES128GCM, idp.KeyRSAOAEPMGF1P},
		{"preference, not metadata order", idp.SAMLSettings{}, md("", idp.EncAES128GCM, idp.EncAES256GCM), idp.EncAES256GCM, idp.KeyRSAOAEPMGF1P},
		{"only XML Encryption 1.1 key transport", idp.SAMLSettings{}, md("encryption", idp.EncAES128CBC, idp.KeyRSAOAEP), idp.EncAES128CBC, idp.KeyRSAOAEP},
		{"both key transports: mgf1p", idp.SAMLSettings{}, md("encryption", idp.KeyRSAOAEP, idp.KeyRSAOAEPMGF1P), idp.EncAES256CBC, idp.KeyRSAOAEPMGF1P},
		{"unknown algorithms only: the defaults", idp.SAMLSettings{}, md("encryption", "http://www.w3.org/2001/04/xmlenc#tripledes-cbc", "http://www.w3.org/2001/04/xmlenc#rsa-1_5"), idp.EncAES256CBC, idp.KeyRSAOAEPMGF1P},
		{"signing key's methods do not count", idp.SAMLSettings{}, md("signing", idp.EncAES128GCM), idp.EncAES256CBC, idp.KeyRSAOAEPMGF1P},
		{"registration overrides metadata", idp.SAMLSettings{DataEncryption: idp.EncAES256CBC, KeyTransport: idp.KeyRSAOAEPMGF1P},
			md("encryption", idp.EncAES256GCM, idp.KeyRSAOAEP), idp.EncAES256CBC, idp.KeyRSAOAEPMGF1P},
		{"nil metadata", idp.SAMLSettings{}, nil, idp.EncAES256CBC, idp.KeyRSAOAEPMGF1P},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := idp.ChooseSAMLEncryption(tc.set, tc.md)
			if got.Data != tc.data || got.KeyTransport != tc.key {
				t.Fatalf("got %+v, want %s + %s", got, tc.data, tc.key)
			}
		})
	}
}

func TestSAMLEncryptionFlags(t *testing.T) {
	for _, v := range []string{"aes256-cbc", "aes128-cbc", "aes128-gcm", "aes256-gcm", idp.EncAES256GCM} {
		if _, ok := idp.SAMLDataEncryptionURI(v); !ok {
			t.Errorf("%s refused", v)
		}
	}
	for _, v := range []string{"", "aes192-cbc", "tripledes-cbc", "rsa-oaep-mgf1p"} {
		if u, ok := idp.SAMLDataEncryptionURI(v); ok {
			t.Errorf("%q accepted as %s", v, u)
		}
	}
	if _, ok := idp.SAMLKeyTransportURI("rsa-1_5"); ok {
		t.Error("rsa-1_5 accepted")
	}
	if _, err := idp.ParseSAMLSettings([]byte(`{"data_encryption":"http://www.w3.org/2001/04/xmlenc#tripledes-cbc"}`)); err == nil {
		t.Error("settings with an unknown content encryption accepted")
	}
}

// TestSAMLPlatformCommandEndpointsAndEncryption: add-saml prints only the
// endpoints ElevID answers on (not a PAOS or Artifact ACS) and the
// encryption it chose; bad algorithm flags are refused.
func TestSAMLPlatformCommandEndpointsAndEncryption(t *testing.T) {
	h := newHarness(t)
	_, cert := newKeyCert(t, "sp.example")
	c64 := base64.StdEncoding.EncodeToString(cert.Raw)
	md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://mellon.example/md">
 <SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` + c64 + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
  <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="https://mellon.example/logout-soap"/>
  <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://mellon.example/logout"/>
  <AssertionConsumerService index="0" isDefault="true" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://mellon.example/postResponse"/>
  <AssertionConsumerService index="1" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="https://mellon.example/artifactResponse"/>
  <AssertionConsumerService index="2" Binding="urn:oasis:names:tc:SAML:2.0:bindings:PAOS" Location=""/>
 </SPSSODescriptor>
</EntityDescriptor>`
	file := filepath.Join(t.TempDir(), "md.xml")
	if err := os.WriteFile(file, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"--data-encryption", "tripledes-cbc"}, {"--key-transport", "rsa-1_5"}} {
		if err := idp.SAMLPlatformCommand(context.Background(), h.st, new(strings.Builder),
			append([]string{"--name", "M", "--metadata", file, "--attr", "givenName=hvorfor", "--attr-en", "givenName=why"}, bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	var out strings.Builder
	if err := idp.SAMLPlatformCommand(context.Background(), h.st, &out, []string{"--name", "M", "--metadata", file, "--attr", "givenName=hvorfor", "--attr-en", "givenName=why"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"encryption aes256-cbc, rsa-oaep-mgf1p/sha1\n",
		"acs urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST https://mellon.example/postResponse\n",
		"slo urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect https://mellon.example/logout\n",
		"slo urn:oasis:names:tc:SAML:2.0:bindings:SOAP https://mellon.example/logout-soap\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"PAOS", "Artifact"} {
		if strings.Contains(got, not) {
			t.Errorf("output shows a %s endpoint ElevID does not use:\n%s", not, got)
		}
	}
	// platform show says the same; an override is stored and used.
	file2 := filepath.Join(t.TempDir(), "md2.xml")
	if err := os.WriteFile(file2, []byte(strings.ReplaceAll(md, "mellon.example", "other.example")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := idp.SAMLPlatformCommand(context.Background(), h.st, new(strings.Builder), []string{"--name", "M2", "--metadata", file2,
		"--attr", "givenName=hvorfor", "--attr-en", "givenName=why", "--data-encryption", "aes128-gcm", "--key-transport", "rsa-oaep"}); err != nil {
		t.Fatal(err)
	}
	for entity, want := range map[string]string{
		"https://mellon.example/md": "encryption aes256-cbc, rsa-oaep-mgf1p/sha1\n",
		"https://other.example/md":  "encryption aes128-gcm, rsa-oaep/sha1\n",
	} {
		var show strings.Builder
		if err := idp.PlatformCommand(context.Background(), h.st, &show, []string{"show", entity}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(show.String(), want) || strings.Contains(show.String(), "PAOS") {
			t.Errorf("platform show %s, want %q:\n%s", entity, want, show.String())
		}
	}
}

// TestSAMLEncryptionRoundTrip: a crewjam SP decrypts the assertion with
// every algorithm pair ElevID can be told to use (xmlsec1's share is in
// TestSAMLXMLSec1Decrypts).
func TestSAMLEncryptionRoundTrip(t *testing.T) {
	h := newHarness(t)
	for i, flags := range [][]string{
		{"--data-encryption", "aes256-cbc", "--key-transport", "rsa-oaep"},
		{"--data-encryption", "aes128-cbc"},
		{"--data-encryption", "aes256-gcm", "--key-transport", "rsa-oaep-mgf1p"},
	} {
		sp := h.newSP(t, spOptions{entityID: fmt.Sprintf("https://rt%d.example/saml/metadata", i), consent: true, flags: flags})
		sid := h.sessions.login(h.pupil.ID)
		action, form := postedForm(t, readAll(t, h.get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
		raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
		if !strings.Contains(string(raw), "#"+flags[1]+`"`) || strings.Contains(string(raw), ">Ida<") {
			t.Fatalf("%v: not encrypted with %s:\n%s", flags, flags[1], raw)
		}
		a, err := sp.acs(t, action, form)
		if err != nil {
			t.Fatalf("%v: crewjam SP could not read the response: %v", flags, samlErr(err))
		}
		if attrValues(a)["givenName"][0] != "Ida" {
			t.Fatalf("%v: attributes %v", flags, attrValues(a))
		}
	}
}
