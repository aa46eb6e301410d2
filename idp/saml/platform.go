package saml

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/school"
)

// PlatformSpec is what an operator registers for a SAML platform (the
// admin command's add-saml, or a test). The zero value of each option is
// ElevID's default: pairwise persistent NameIDs, response and assertion
// signed, assertions encrypted when the metadata publishes an encryption
// key, with the algorithms the metadata prefers (ChooseEncryption).
type PlatformSpec struct {
	Name string
	// Metadata is the service provider's metadata XML; MetadataURL is
	// where it came from, when it was fetched.
	Metadata    []byte
	MetadataURL string
	// Attributes are the attributes the platform may receive, each with
	// its justification (ValidAttribute names).
	Attributes []school.AttributeGrant
	// NameIDFormat is "persistent" (pairwise; when empty) or "transient".
	NameIDFormat       string
	NoSignResponse     bool
	NoSignAssertion    bool
	NoEncrypt          bool
	WantSignedRequests bool
	// DataEncryption and KeyTransport are algorithm URIs
	// (DataEncryptionURI, KeyTransportURI); empty follows the metadata.
	DataEncryption, KeyTransport string
}

// RegisterPlatform stores a new SAML platform whose entity id is the
// metadata's, with settings derived from the metadata (ParseSPMetadata)
// and the spec. It returns the platform, its settings and the parsed
// metadata; errors wrap school.ErrInvalid for metadata or settings that
// ElevID cannot use.
func RegisterPlatform(ctx context.Context, st school.PlatformStore, spec PlatformSpec) (school.Platform, Settings, *saml.EntityDescriptor, error) {
	ed, set, err := ParseSPMetadata(spec.Metadata)
	if err != nil {
		return school.Platform{}, set, nil, err
	}
	set.MetadataURL = spec.MetadataURL
	set.NameIDFormat = spec.NameIDFormat
	if set.NameIDFormat == "" {
		set.NameIDFormat = "persistent"
	}
	set.SignResponse, set.SignAssertion = !spec.NoSignResponse, !spec.NoSignAssertion
	set.Encrypt = set.Encrypt && !spec.NoEncrypt
	set.WantSignedRequests = set.WantSignedRequests || spec.WantSignedRequests
	set.DataEncryption, set.KeyTransport = spec.DataEncryption, spec.KeyTransport
	raw, err := json.Marshal(set)
	if err != nil {
		return school.Platform{}, set, nil, err
	}
	if _, err := ParseSettings(raw); err != nil {
		return school.Platform{}, set, nil, err
	}
	p, err := st.CreatePlatform(ctx, school.Platform{
		Name: strings.TrimSpace(spec.Name), Protocol: school.ProtocolSAML, ClientID: ed.EntityID,
		Settings: raw, Attributes: spec.Attributes, SubjectType: school.SubjectPairwise,
	})
	return p, set, ed, err
}
