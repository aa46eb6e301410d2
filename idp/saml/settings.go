package saml

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// Settings is the SAML part of a platform's registration, kept as JSON
// in school.Platform.Settings. The entity id is the platform's ClientID.
type Settings struct {
	// MetadataXML is the service provider's metadata as registered.
	MetadataXML string `json:"metadata_xml"`
	// MetadataURL is where the metadata was fetched from, if it was.
	MetadataURL string `json:"metadata_url,omitempty"`
	// ACS lists the assertion consumer services found in the metadata,
	// for display; the metadata itself is authoritative.
	ACS []Endpoint `json:"acs"`
	// SLO lists the single logout services found in the metadata.
	SLO []Endpoint `json:"slo,omitempty"`
	// NameIDFormat is the default NameID: "persistent" (pairwise, the
	// default) or "transient".
	NameIDFormat string `json:"name_id_format"`
	// SignResponse and SignAssertion say what ElevID signs (both by
	// default; at least one).
	SignResponse  bool `json:"sign_response"`
	SignAssertion bool `json:"sign_assertion"`
	// Encrypt encrypts assertions to the SP's encryption certificate.
	Encrypt bool `json:"encrypt"`
	// EncryptionCert is the SP's encryption certificate (base64 DER), if
	// its metadata has one.
	EncryptionCert string `json:"encryption_cert,omitempty"`
	// DataEncryption and KeyTransport, when set, override the algorithms
	// chosen from the SP's metadata (ChooseEncryption): XML
	// Encryption algorithm URIs.
	DataEncryption string `json:"data_encryption,omitempty"`
	KeyTransport   string `json:"key_transport,omitempty"`
	// WantSignedRequests requires signed AuthnRequests even when the
	// metadata does not say AuthnRequestsSigned="true".
	WantSignedRequests bool `json:"want_signed_requests,omitempty"`
}

// Endpoint is one endpoint (binding and location) of a service provider.
type Endpoint struct {
	Binding  string `json:"binding"`
	Location string `json:"location"`
}

// ParseSettings decodes a platform's settings; missing flags take their
// defaults (sign both, persistent NameID).
func ParseSettings(b []byte) (Settings, error) {
	s := Settings{SignResponse: true, SignAssertion: true, NameIDFormat: "persistent"}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("saml settings: %w", err)
		}
	}
	if !s.SignResponse && !s.SignAssertion {
		return s, fmt.Errorf("%w: saml settings: the response or the assertion must be signed", school.ErrInvalid)
	}
	if s.NameIDFormat != "persistent" && s.NameIDFormat != "transient" {
		return s, fmt.Errorf("%w: saml settings: name id format %q", school.ErrInvalid, s.NameIDFormat)
	}
	if _, ok := DataEncryptionURI(s.DataEncryption); s.DataEncryption != "" && !ok {
		return s, fmt.Errorf("%w: saml settings: content encryption %q", school.ErrInvalid, s.DataEncryption)
	}
	if _, ok := KeyTransportURI(s.KeyTransport); s.KeyTransport != "" && !ok {
		return s, fmt.Errorf("%w: saml settings: key transport %q", school.ErrInvalid, s.KeyTransport)
	}
	return s, nil
}

// MaxMetadataBytes bounds SP metadata (ParseSPMetadata; the admin command
// reads files and URLs up to it).
const MaxMetadataBytes = 1 << 20

// ParseSPMetadata parses service provider metadata and returns the entity
// descriptor with settings derived from it (endpoints, encryption
// certificate, whether it signs its requests). It rejects metadata without
// an SPSSODescriptor or without an HTTP-POST assertion consumer service.
func ParseSPMetadata(xmlBytes []byte) (*saml.EntityDescriptor, Settings, error) {
	s := Settings{SignResponse: true, SignAssertion: true, NameIDFormat: "persistent"}
	if len(xmlBytes) > MaxMetadataBytes {
		return nil, s, fmt.Errorf("%w: metadata is larger than %d bytes", school.ErrInvalid, MaxMetadataBytes)
	}
	ed, err := parseEntityDescriptor(xmlBytes)
	if err != nil {
		return nil, s, fmt.Errorf("%w: metadata: %v", school.ErrInvalid, err)
	}
	if ed.EntityID == "" || len(ed.SPSSODescriptors) == 0 {
		return nil, s, fmt.Errorf("%w: metadata has no entityID or no SPSSODescriptor", school.ErrInvalid)
	}
	s.MetadataXML = string(xmlBytes)
	post := false
	for _, d := range ed.SPSSODescriptors {
		for _, acs := range d.AssertionConsumerServices {
			s.ACS = append(s.ACS, Endpoint{Binding: acs.Binding, Location: acs.Location})
			post = post || acs.Binding == saml.HTTPPostBinding
		}
		for _, slo := range d.SingleLogoutServices {
			s.SLO = append(s.SLO, Endpoint{Binding: slo.Binding, Location: slo.Location})
		}
		if d.AuthnRequestsSigned != nil && *d.AuthnRequestsSigned {
			s.WantSignedRequests = true
		}
		if s.EncryptionCert == "" {
			s.EncryptionCert = spCert(d.KeyDescriptors, "encryption")
		}
	}
	if !post {
		return nil, s, fmt.Errorf("%w: metadata has no HTTP-POST AssertionConsumerService", school.ErrInvalid)
	}
	s.Encrypt = s.EncryptionCert != ""
	return ed, s, nil
}

// spCert returns the first certificate (base64 DER) of a key descriptor
// with the given use, or of one without a use.
func spCert(kds []saml.KeyDescriptor, use string) string {
	for _, u := range []string{use, ""} {
		for _, kd := range kds {
			if kd.Use != u {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				data := strings.Join(strings.Fields(c.Data), "")
				if der, err := base64.StdEncoding.DecodeString(data); err == nil {
					if _, err := x509.ParseCertificate(der); err == nil {
						return data
					}
				}
			}
		}
	}
	return ""
}

// AttributeNames lists the attribute names a SAML platform may be
// granted (school.AttributeGrant.Name), in the order they are released.
var AttributeNames = []string{
	"eduPersonPrincipalName", "eduPersonScopedAffiliation", "eduPersonTargetedID", "pairwise-id",
	"displayName", "givenName", "sn", "schacHomeOrganization", "schoolCode", "groups",
}

// ValidAttribute reports whether a SAML platform may be granted the
// attribute name (a name of AttributeNames or its canonical claim name).
func ValidAttribute(name string) bool {
	for _, n := range AttributeNames {
		if n == name || release.Canonical(n) == name {
			return true
		}
	}
	return false
}
