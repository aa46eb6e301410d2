package saml_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
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
		set       idpsaml.Settings
		md        *saml.EntityDescriptor
		data, key string
	}{
		{"no EncryptionMethod: the defaults", idpsaml.Settings{}, md("encryption"), idpsaml.EncAES256CBC, idpsaml.KeyRSAOAEPMGF1P},
		{"GCM listed", idpsaml.Settings{}, md("encryption", idpsaml.EncAES128CBC, idpsaml.EncAES128GCM, idpsaml.KeyRSAOAEPMGF1P), idpsaml.EncAES128GCM, idpsaml.KeyRSAOAEPMGF1P},
		{"preference, not metadata order", idpsaml.Settings{}, md("", idpsaml.EncAES128GCM, idpsaml.EncAES256GCM), idpsaml.EncAES256GCM, idpsaml.KeyRSAOAEPMGF1P},
		{"only XML Encryption 1.1 key transport", idpsaml.Settings{}, md("encryption", idpsaml.EncAES128CBC, idpsaml.KeyRSAOAEP), idpsaml.EncAES128CBC, idpsaml.KeyRSAOAEP},
		{"both key transports: mgf1p", idpsaml.Settings{}, md("encryption", idpsaml.KeyRSAOAEP, idpsaml.KeyRSAOAEPMGF1P), idpsaml.EncAES256CBC, idpsaml.KeyRSAOAEPMGF1P},
		{"unknown algorithms only: the defaults", idpsaml.Settings{}, md("encryption", "http://www.w3.org/2001/04/xmlenc#tripledes-cbc", "http://www.w3.org/2001/04/xmlenc#rsa-1_5"), idpsaml.EncAES256CBC, idpsaml.KeyRSAOAEPMGF1P},
		{"signing key's methods do not count", idpsaml.Settings{}, md("signing", idpsaml.EncAES128GCM), idpsaml.EncAES256CBC, idpsaml.KeyRSAOAEPMGF1P},
		{"registration overrides metadata", idpsaml.Settings{DataEncryption: idpsaml.EncAES256CBC, KeyTransport: idpsaml.KeyRSAOAEPMGF1P},
			md("encryption", idpsaml.EncAES256GCM, idpsaml.KeyRSAOAEP), idpsaml.EncAES256CBC, idpsaml.KeyRSAOAEPMGF1P},
		{"nil metadata", idpsaml.Settings{}, nil, idpsaml.EncAES256CBC, idpsaml.KeyRSAOAEPMGF1P},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := idpsaml.ChooseEncryption(tc.set, tc.md)
			if got.Data != tc.data || got.KeyTransport != tc.key {
				t.Fatalf("got %+v, want %s + %s", got, tc.data, tc.key)
			}
		})
	}
}

func TestSAMLEncryptionFlags(t *testing.T) {
	for _, v := range []string{"aes256-cbc", "aes128-cbc", "aes128-gcm", "aes256-gcm", idpsaml.EncAES256GCM} {
		if _, ok := idpsaml.DataEncryptionURI(v); !ok {
			t.Errorf("%s refused", v)
		}
	}
	for _, v := range []string{"", "aes192-cbc", "tripledes-cbc", "rsa-oaep-mgf1p"} {
		if u, ok := idpsaml.DataEncryptionURI(v); ok {
			t.Errorf("%q accepted as %s", v, u)
		}
	}
	if _, ok := idpsaml.KeyTransportURI("rsa-1_5"); ok {
		t.Error("rsa-1_5 accepted")
	}
	if _, err := idpsaml.ParseSettings([]byte(`{"data_encryption":"http://www.w3.org/2001/04/xmlenc#tripledes-cbc"}`)); err == nil {
		t.Error("settings with an unknown content encryption accepted")
	}
}

// TestSAMLEncryptionRoundTrip: a crewjam SP decrypts the assertion with
// every algorithm pair ElevID can be told to use (xmlsec1's share is in
// TestSAMLXMLSec1Decrypts).
func TestSAMLEncryptionRoundTrip(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	for i, algs := range [][]string{
		{"aes256-cbc", "rsa-oaep"},
		{"aes128-cbc"},
		{"aes256-gcm", "rsa-oaep-mgf1p"},
	} {
		var spec idpsaml.PlatformSpec
		spec.DataEncryption, _ = idpsaml.DataEncryptionURI(algs[0])
		if len(algs) > 1 {
			spec.KeyTransport, _ = idpsaml.KeyTransportURI(algs[1])
		}
		sp := h.NewSP(t, idptest.SPOptions{EntityID: fmt.Sprintf("https://rt%d.example/saml/metadata", i), Consent: true, Spec: spec})
		sid := h.Sessions.Login(h.Pupil.ID)
		action, form := idptest.PostedForm(t, idptest.ReadAll(t, h.Get(t, "/saml/idp-initiated?sp="+url.QueryEscape(sp.EntityID), sid)))
		raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
		if !strings.Contains(string(raw), "#"+algs[0]+`"`) || strings.Contains(string(raw), ">Ida<") {
			t.Fatalf("%v: not encrypted with %s:\n%s", algs, algs[0], raw)
		}
		a, err := sp.ACS(t, action, form)
		if err != nil {
			t.Fatalf("%v: crewjam SP could not read the response: %v", algs, samlErr(err))
		}
		if idptest.AttrValues(a)["givenName"][0] != "Ida" {
			t.Fatalf("%v: attributes %v", algs, idptest.AttrValues(a))
		}
	}
}
