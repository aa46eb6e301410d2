package idp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// SAMLSettings is the SAML part of a platform's registration, kept as JSON
// in school.Platform.Settings. The entity id is the platform's ClientID.
type SAMLSettings struct {
	// MetadataXML is the service provider's metadata as registered.
	MetadataXML string `json:"metadata_xml"`
	// MetadataURL is where the metadata was fetched from, if it was.
	MetadataURL string `json:"metadata_url,omitempty"`
	// ACS lists the assertion consumer services found in the metadata,
	// for display; the metadata itself is authoritative.
	ACS []SAMLEndpoint `json:"acs"`
	// SLO lists the single logout services found in the metadata.
	SLO []SAMLEndpoint `json:"slo,omitempty"`
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
	// chosen from the SP's metadata (ChooseSAMLEncryption): XML
	// Encryption algorithm URIs.
	DataEncryption string `json:"data_encryption,omitempty"`
	KeyTransport   string `json:"key_transport,omitempty"`
	// WantSignedRequests requires signed AuthnRequests even when the
	// metadata does not say AuthnRequestsSigned="true".
	WantSignedRequests bool `json:"want_signed_requests,omitempty"`
}

// SAMLEndpoint is one endpoint (binding and location) of a service provider.
type SAMLEndpoint struct {
	Binding  string `json:"binding"`
	Location string `json:"location"`
}

// ParseSAMLSettings decodes a platform's settings; missing flags take their
// defaults (sign both, persistent NameID).
func ParseSAMLSettings(b []byte) (SAMLSettings, error) {
	s := SAMLSettings{SignResponse: true, SignAssertion: true, NameIDFormat: "persistent"}
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
	if _, ok := SAMLDataEncryptionURI(s.DataEncryption); s.DataEncryption != "" && !ok {
		return s, fmt.Errorf("%w: saml settings: content encryption %q", school.ErrInvalid, s.DataEncryption)
	}
	if _, ok := SAMLKeyTransportURI(s.KeyTransport); s.KeyTransport != "" && !ok {
		return s, fmt.Errorf("%w: saml settings: key transport %q", school.ErrInvalid, s.KeyTransport)
	}
	return s, nil
}

// maxMetadataBytes bounds SP metadata read from a file or URL.
const maxMetadataBytes = 1 << 20

// ParseSPMetadata parses service provider metadata and returns the entity
// descriptor with settings derived from it (endpoints, encryption
// certificate, whether it signs its requests). It rejects metadata without
// an SPSSODescriptor or without an HTTP-POST assertion consumer service.
func ParseSPMetadata(xmlBytes []byte) (*saml.EntityDescriptor, SAMLSettings, error) {
	s := SAMLSettings{SignResponse: true, SignAssertion: true, NameIDFormat: "persistent"}
	if len(xmlBytes) > maxMetadataBytes {
		return nil, s, fmt.Errorf("%w: metadata is larger than %d bytes", school.ErrInvalid, maxMetadataBytes)
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
			s.ACS = append(s.ACS, SAMLEndpoint{Binding: acs.Binding, Location: acs.Location})
			post = post || acs.Binding == saml.HTTPPostBinding
		}
		for _, slo := range d.SingleLogoutServices {
			s.SLO = append(s.SLO, SAMLEndpoint{Binding: slo.Binding, Location: slo.Location})
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

// SAMLAttributeNames lists the attribute names a SAML platform may be
// granted (school.AttributeGrant.Name), in the order they are released.
var SAMLAttributeNames = []string{
	"eduPersonPrincipalName", "eduPersonScopedAffiliation", "eduPersonTargetedID", "pairwise-id",
	"displayName", "givenName", "sn", "schacHomeOrganization", "schoolCode", "groups",
}

// SAMLPlatformCommand is `elevid admin platform add-saml`: it registers a
// SAML service provider from its metadata (a file or an https URL) with the
// attributes it may receive and why.
//
//	add-saml --name NAME (--metadata FILE | --metadata-url URL)
//	         --attr givenName="Shown to the teacher" [--attr …]
//	         [--nameid persistent|transient] [--no-sign-response | --no-sign-assertion]
//	         [--no-encrypt] [--want-signed-requests]
//	         [--data-encryption aes256-cbc|aes128-cbc|aes128-gcm|aes256-gcm]
//	         [--key-transport rsa-oaep-mgf1p|rsa-oaep]
//
// Without --data-encryption and --key-transport the algorithms follow the
// SP's metadata (ChooseSAMLEncryption).
//
// It prints the new platform's id, entity id and endpoints to out.
func SAMLPlatformCommand(ctx context.Context, st school.Store, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("add-saml", flag.ContinueOnError)
	fs.SetOutput(out)
	name := fs.String("name", "", "platform name shown to guardians and pupils")
	file := fs.String("metadata", "", "SP metadata XML file")
	mdURL := fs.String("metadata-url", "", "SP metadata URL (https)")
	nameID := fs.String("nameid", "persistent", "default NameID format: persistent (pairwise) or transient")
	noSignResp := fs.Bool("no-sign-response", false, "sign only the assertion")
	noSignAssert := fs.Bool("no-sign-assertion", false, "sign only the response")
	noEncrypt := fs.Bool("no-encrypt", false, "never encrypt assertions, even when the SP publishes an encryption key")
	wantSigned := fs.Bool("want-signed-requests", false, "require signed AuthnRequests")
	dataEnc := fs.String("data-encryption", "", "content encryption of assertions: aes256-cbc, aes128-cbc, aes128-gcm or aes256-gcm (default: from the SP's metadata, else aes256-cbc)")
	keyTransport := fs.String("key-transport", "", "key transport: rsa-oaep-mgf1p or rsa-oaep, always with SHA-1 (default: from the SP's metadata, else rsa-oaep-mgf1p)")
	var flags attrFlagSet
	flags.register(fs, strings.Join(SAMLAttributeNames, ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	attrs, err := flags.grants()
	if err != nil {
		problems = append(problems, err.Error())
	}
	if strings.TrimSpace(*name) == "" {
		problems = append(problems, "--name is required")
	}
	if (*file == "") == (*mdURL == "") {
		problems = append(problems, "give exactly one of --metadata and --metadata-url")
	}
	for _, a := range attrs {
		if !validSAMLAttribute(a.Name) {
			problems = append(problems, fmt.Sprintf("--attr %s: unknown attribute (known: %s)", a.Name, strings.Join(SAMLAttributeNames, ", ")))
		}
	}
	dataURI, ok := SAMLDataEncryptionURI(*dataEnc)
	if *dataEnc != "" && !ok {
		problems = append(problems, fmt.Sprintf("--data-encryption %s: want aes256-cbc, aes128-cbc, aes128-gcm or aes256-gcm", *dataEnc))
	}
	keyURI, ok := SAMLKeyTransportURI(*keyTransport)
	if *keyTransport != "" && !ok {
		problems = append(problems, fmt.Sprintf("--key-transport %s: want rsa-oaep-mgf1p or rsa-oaep", *keyTransport))
	}
	if len(problems) > 0 {
		return fmt.Errorf("add-saml: %s", strings.Join(problems, "; "))
	}
	var data []byte
	if *file != "" {
		data, err = readLimited(*file)
	} else {
		data, err = fetchMetadata(ctx, *mdURL)
	}
	if err != nil {
		return fmt.Errorf("add-saml: %w", err)
	}
	ed, set, err := ParseSPMetadata(data)
	if err != nil {
		return fmt.Errorf("add-saml: %w", err)
	}
	set.MetadataURL = *mdURL
	set.NameIDFormat = *nameID
	set.SignResponse, set.SignAssertion = !*noSignResp, !*noSignAssert
	set.Encrypt = set.Encrypt && !*noEncrypt
	set.WantSignedRequests = set.WantSignedRequests || *wantSigned
	set.DataEncryption, set.KeyTransport = dataURI, keyURI
	raw, err := json.Marshal(set)
	if err != nil {
		return err
	}
	if _, err := ParseSAMLSettings(raw); err != nil {
		return fmt.Errorf("add-saml: %w", err)
	}
	p, err := st.CreatePlatform(ctx, school.Platform{
		Name: strings.TrimSpace(*name), Protocol: school.ProtocolSAML, ClientID: ed.EntityID,
		Settings: raw, Attributes: attrs, SubjectType: school.SubjectPairwise,
	})
	if err != nil {
		return fmt.Errorf("add-saml: %w", err)
	}
	fmt.Fprintf(out, "platform %s\nentity id %s\n", p.ID, p.ClientID)
	printSAMLSettings(out, set, ed)
	return nil
}

// printSAMLSettings prints what ElevID does for a SAML platform: NameID,
// signing, encryption (with the algorithms it chose) and the endpoints
// it uses.
func printSAMLSettings(out io.Writer, set SAMLSettings, ed *saml.EntityDescriptor) {
	fmt.Fprintf(out, "name id %s, sign response %t, sign assertion %t, encrypt %t, signed requests %t\n",
		set.NameIDFormat, set.SignResponse, set.SignAssertion, set.Encrypt, set.WantSignedRequests)
	if set.Encrypt {
		fmt.Fprintf(out, "encryption %s\n", ChooseSAMLEncryption(set, ed))
	}
	// Only the endpoints ElevID uses: it answers on HTTP-POST ACSs only
	// (a PAOS or Artifact ACS in the metadata is never used).
	for _, e := range set.ACS {
		if e.Binding == saml.HTTPPostBinding && e.Location != "" {
			fmt.Fprintf(out, "acs %s %s\n", e.Binding, e.Location)
		}
	}
	for _, e := range set.SLO {
		if samlSLOBindings[e.Binding] && e.Location != "" {
			fmt.Fprintf(out, "slo %s %s\n", e.Binding, e.Location)
		}
	}
}

// showSAMLPlatform prints a registered SAML platform's settings for
// `platform show`.
func showSAMLPlatform(out io.Writer, p school.Platform) error {
	set, err := ParseSAMLSettings(p.Settings)
	if err != nil {
		return err
	}
	ed, _, err := ParseSPMetadata([]byte(set.MetadataXML))
	if err != nil {
		return err
	}
	printSAMLSettings(out, set, ed)
	return nil
}

func validSAMLAttribute(name string) bool {
	for _, n := range SAMLAttributeNames {
		if n == name || release.Canonical(n) == name {
			return true
		}
	}
	return false
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readMax(f)
}

func readMax(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetadataBytes+1))
	if err == nil && len(b) > maxMetadataBytes {
		err = fmt.Errorf("metadata is larger than %d bytes", maxMetadataBytes)
	}
	return b, err
}

var httpsOrLocal = regexp.MustCompile(`^(https://|http://(localhost|127\.0\.0\.1)(:|/))`)

func fetchMetadata(ctx context.Context, u string) ([]byte, error) {
	if !httpsOrLocal.MatchString(u) {
		return nil, fmt.Errorf("metadata URL %q must be https", u)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metadata URL %s: HTTP %d", u, resp.StatusCode)
	}
	return readMax(resp.Body)
}

// samlSP is a registered SAML platform with its parsed metadata.
type samlSP struct {
	Platform school.Platform
	Settings SAMLSettings
	Metadata *saml.EntityDescriptor
}

// samlSPCache parses each platform's metadata once per version.
type samlSPCache struct {
	mu sync.Mutex
	m  map[string]samlSP // platform id → parsed
}

// lookup returns the SAML platform with entity id entityID, or an error
// wrapping os.ErrNotExist (as crewjam's ServiceProviderProvider wants)
// when there is none.
func (c *samlSPCache) lookup(ctx context.Context, st school.PlatformStore, entityID string) (samlSP, error) {
	p, err := st.PlatformByClientID(ctx, entityID)
	if errors.Is(err, school.ErrNotFound) || (err == nil && p.Protocol != school.ProtocolSAML) {
		return samlSP{}, fmt.Errorf("saml service provider %q: %w", entityID, os.ErrNotExist)
	}
	if err != nil {
		return samlSP{}, err
	}
	return c.parse(p)
}

func (c *samlSPCache) parse(p school.Platform) (samlSP, error) {
	c.mu.Lock()
	if sp, ok := c.m[p.ID]; ok && sp.Platform.UpdatedAt.Equal(p.UpdatedAt) {
		c.mu.Unlock()
		sp.Platform = p
		return sp, nil
	}
	c.mu.Unlock()
	set, err := ParseSAMLSettings(p.Settings)
	if err != nil {
		return samlSP{}, fmt.Errorf("platform %s: %w", p.ID, err)
	}
	ed, _, err := ParseSPMetadata([]byte(set.MetadataXML))
	if err != nil {
		return samlSP{}, fmt.Errorf("platform %s: %w", p.ID, err)
	}
	if ed.EntityID != p.ClientID {
		return samlSP{}, fmt.Errorf("platform %s: metadata entity id %q differs from client id %q", p.ID, ed.EntityID, p.ClientID)
	}
	if set.WantSignedRequests {
		t := true
		for i := range ed.SPSSODescriptors {
			ed.SPSSODescriptors[i].AuthnRequestsSigned = &t
		}
	}
	sp := samlSP{Platform: p, Settings: set, Metadata: ed}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]samlSP{}
	}
	c.m[p.ID] = sp
	c.mu.Unlock()
	return sp, nil
}

// parseEntityDescriptor reads an EntityDescriptor, or the only one with an
// SPSSODescriptor inside an EntitiesDescriptor.
func parseEntityDescriptor(b []byte) (*saml.EntityDescriptor, error) {
	var ed saml.EntityDescriptor
	errOne := xml.Unmarshal(b, &ed)
	if errOne == nil {
		return &ed, nil
	}
	var eds saml.EntitiesDescriptor
	if err := xml.Unmarshal(b, &eds); err != nil {
		return nil, errOne
	}
	var found *saml.EntityDescriptor
	for i := range eds.EntityDescriptors {
		if len(eds.EntityDescriptors[i].SPSSODescriptors) > 0 {
			if found != nil {
				return nil, errors.New("several service providers in one EntitiesDescriptor; give one")
			}
			found = &eds.EntityDescriptors[i]
		}
	}
	if found == nil {
		return nil, errors.New("no service provider in EntitiesDescriptor")
	}
	return found, nil
}

// samlSLOBindings are the single logout bindings ElevID sends on (SOAP:
// the back-channel logout when access ends).
var samlSLOBindings = map[string]bool{saml.HTTPRedirectBinding: true, saml.HTTPPostBinding: true, saml.SOAPBinding: true}
