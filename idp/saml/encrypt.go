package saml

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
)

// XML Encryption algorithms ElevID can encrypt an assertion with.
const (
	EncAES128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	EncAES256CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
	EncAES128GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	EncAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	// KeyRSAOAEPMGF1P is RSA-OAEP of XML Encryption 1.0 (MGF1 with SHA-1);
	// ElevID always gives it a SHA-1 DigestMethod, the only one xmlsec1
	// 1.2.x and .NET accept with it.
	KeyRSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	// KeyRSAOAEP is RSA-OAEP of XML Encryption 1.1, used with SHA-1 and
	// MGF1-SHA1 (its defaults).
	KeyRSAOAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
)

// samlDataAlgorithms are the content encryption algorithms by short name,
// in ElevID's order of preference when an SP's metadata lists several.
var samlDataAlgorithms = []struct{ Short, URI string }{
	{"aes256-gcm", EncAES256GCM},
	{"aes128-gcm", EncAES128GCM},
	{"aes256-cbc", EncAES256CBC},
	{"aes128-cbc", EncAES128CBC},
}

// samlKeyAlgorithms are the key transport algorithms by short name, in
// order of preference (rsa-oaep-mgf1p first: every SP stack decrypts it).
var samlKeyAlgorithms = []struct{ Short, URI string }{
	{"rsa-oaep-mgf1p", KeyRSAOAEPMGF1P},
	{"rsa-oaep", KeyRSAOAEP},
}

// Default encryption: what xmlsec1 1.2.37 (mod_auth_mellon, pysaml2,
// python3-saml), Shibboleth SP and .NET's EncryptedXml all decrypt. .NET
// has no AES-GCM, so GCM is used only when the SP's metadata lists it.
const (
	defaultDataEncryption = EncAES256CBC
	defaultKeyTransport   = KeyRSAOAEPMGF1P
)

// DataEncryptionURI resolves a content encryption algorithm given by
// short name (aes256-cbc, aes128-cbc, aes128-gcm, aes256-gcm) or URI; ok
// is false for anything else.
func DataEncryptionURI(v string) (string, bool) { return algURI(samlDataAlgorithms, v) }

// KeyTransportURI resolves a key transport algorithm given by short
// name (rsa-oaep-mgf1p, rsa-oaep) or URI.
func KeyTransportURI(v string) (string, bool) { return algURI(samlKeyAlgorithms, v) }

func algURI(list []struct{ Short, URI string }, v string) (string, bool) {
	v = strings.TrimSpace(v)
	for _, a := range list {
		if v == a.Short || v == a.URI {
			return a.URI, true
		}
	}
	return "", false
}

func algShort(uri string) string {
	for _, l := range [][]struct{ Short, URI string }{samlDataAlgorithms, samlKeyAlgorithms} {
		for _, a := range l {
			if a.URI == uri {
				return a.Short
			}
		}
	}
	return uri
}

// Encryption is the pair of algorithms an assertion is encrypted with.
type Encryption struct {
	Data         string // content encryption (EncryptedData)
	KeyTransport string // key transport (EncryptedKey), digest SHA-1
}

// String names the algorithms briefly, e.g. "aes256-cbc, rsa-oaep-mgf1p/sha1".
func (e Encryption) String() string {
	return algShort(e.Data) + ", " + algShort(e.KeyTransport) + "/sha1"
}

// ChooseEncryption picks the algorithms for an SP: the registration's
// override when it has one; else the most preferred algorithm its
// metadata lists in EncryptionMethod elements of its encryption key (a
// KeyDescriptor with use="encryption" or without use), for content
// encryption and key transport separately; else the defaults
// (AES-256-CBC and rsa-oaep-mgf1p with SHA-1). An SP that lists only
// algorithms ElevID does not have gets the defaults.
func ChooseEncryption(set Settings, md *saml.EntityDescriptor) Encryption {
	var listed []string
	if md != nil {
		for _, d := range md.SPSSODescriptors {
			for _, kd := range d.KeyDescriptors {
				if kd.Use != "encryption" && kd.Use != "" {
					continue
				}
				for _, m := range kd.EncryptionMethods {
					listed = append(listed, strings.TrimSpace(m.Algorithm))
				}
			}
		}
	}
	pick := func(override string, list []struct{ Short, URI string }, def string) string {
		if override != "" {
			return override
		}
		for _, a := range list {
			if slices.Contains(listed, a.URI) {
				return a.URI
			}
		}
		return def
	}
	return Encryption{
		Data:         pick(set.DataEncryption, samlDataAlgorithms, defaultDataEncryption),
		KeyTransport: pick(set.KeyTransport, samlKeyAlgorithms, defaultKeyTransport),
	}
}

// encrypter returns crewjam's encrypter for the algorithms.
func (e Encryption) encrypter() (xmlenc.RSA, error) {
	var enc xmlenc.RSA
	switch e.KeyTransport {
	case KeyRSAOAEPMGF1P:
		enc = xmlenc.OAEP()
	case KeyRSAOAEP:
		enc = xmlenc.OAEP_SHA256()
	default:
		return enc, fmt.Errorf("saml: key transport %q is not supported", e.KeyTransport)
	}
	// SHA-1 as the OAEP digest (MGF1-SHA1 either way): xmlsec1 1.2.x
	// refuses rsa-oaep-mgf1p with any other digest.
	enc.DigestMethod = xmlenc.SHA1
	switch e.Data {
	case EncAES128CBC:
		enc.BlockCipher = xmlenc.AES128CBC
	case EncAES256CBC:
		enc.BlockCipher = xmlenc.AES256CBC
	case EncAES128GCM:
		enc.BlockCipher = xmlenc.AES128GCM
	case EncAES256GCM:
		enc.BlockCipher = xmlenc.AES256GCM
	default:
		return enc, fmt.Errorf("saml: content encryption %q is not supported", e.Data)
	}
	return enc, nil
}

// encryptAssertion wraps a (signed) assertion in an EncryptedAssertion for
// the SP's encryption certificate, with the algorithms
// ChooseEncryption picks for it.
func encryptAssertion(el *etree.Element, sp samlSP) (*etree.Element, error) {
	der, err := base64.StdEncoding.DecodeString(sp.Settings.EncryptionCert)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sp encryption certificate: %w", err)
	}
	enc, err := ChooseEncryption(sp.Settings, sp.Metadata).encrypter()
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	buf, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	data, err := enc.Encrypt(cert, buf, nil)
	if err != nil {
		return nil, fmt.Errorf("encrypt assertion: %w", err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	out := etree.NewElement("saml:EncryptedAssertion")
	out.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	out.AddChild(data)
	return out, nil
}
