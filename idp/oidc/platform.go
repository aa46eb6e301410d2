package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/elevid/elevid/school"
)

// PlatformSpec is what an operator registers for an OIDC platform.
type PlatformSpec struct {
	Name                   string
	ClientID               string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	BackchannelLogoutURI   string
	SectorIdentifier       string
	// Public registers a client without secret (PKCE S256 required).
	Public bool
	// Attributes are the claims the platform may receive, each with its
	// justification; the scopes that ask for them are allowed with them.
	Attributes    []school.AttributeGrant
	OfflineAccess bool
	// SubjectType is pairwise unless public is asked for with a reason.
	SubjectType       school.SubjectType
	SubjectTypeReason string
	SigningAlg        string
	// Secret, when set, is used instead of a generated client secret (the
	// demo platform derives its own).
	Secret string
}

// Settings turns the spec into stored settings, with a secret.
func (s PlatformSpec) Settings() (Settings, string, error) {
	set := Settings{
		Public: s.Public, RedirectURIs: s.RedirectURIs, PostLogoutRedirectURIs: s.PostLogoutRedirectURIs,
		BackchannelLogoutURI: s.BackchannelLogoutURI, SectorIdentifier: s.SectorIdentifier,
		OfflineAccess: s.OfflineAccess, SigningAlg: s.SigningAlg,
	}
	known := KnownClaims()
	for _, a := range s.Attributes {
		if !slices.Contains(known, a.Name) {
			return set, "", fmt.Errorf("%w: unknown claim %q (known: %s)", school.ErrInvalid, a.Name, strings.Join(known, ", "))
		}
		for sc, claims := range scopeClaims {
			if sc != "profile" && slices.Contains(claims, a.Name) && !slices.Contains(set.Scopes, sc) {
				set.Scopes = append(set.Scopes, sc)
			}
		}
	}
	slices.Sort(set.Scopes)
	secret := ""
	if !s.Public {
		secret = s.Secret
		if secret == "" {
			secret = NewClientSecret()
		}
		set.SecretHash = HashClientSecret(secret)
	}
	return set, secret, set.Validate()
}

// RegisterPlatform stores a new OIDC platform and returns it with its
// client secret (empty for a public client), which is shown once and
// stored only hashed.
func RegisterPlatform(ctx context.Context, st school.PlatformStore, spec PlatformSpec) (school.Platform, string, error) {
	set, secret, err := spec.Settings()
	if err != nil {
		return school.Platform{}, "", err
	}
	raw, err := json.Marshal(set)
	if err != nil {
		return school.Platform{}, "", err
	}
	if spec.SubjectType == "" {
		spec.SubjectType = school.SubjectPairwise
	}
	p, err := st.CreatePlatform(ctx, school.Platform{
		Name: strings.TrimSpace(spec.Name), Protocol: school.ProtocolOIDC, ClientID: spec.ClientID, Settings: raw,
		Attributes: spec.Attributes, SubjectType: spec.SubjectType, SubjectTypeReason: spec.SubjectTypeReason,
	})
	return p, secret, err
}
