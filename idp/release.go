package idp

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// Claim names released about a pupil (OIDC claims; SAML maps them to
// eduPerson attributes). They are package release's canonical names.
const (
	ClaimName        = release.Name
	ClaimGivenName   = release.GivenName
	ClaimFamilyName  = release.FamilyName
	ClaimEPPN        = release.EPPN
	ClaimAffiliation = release.Affiliation
	ClaimHomeOrg     = release.HomeOrg
	ClaimSchoolCode  = release.SchoolCode
	ClaimGroups      = release.Groups
)

// SharedCapable reports whether an attribute has a shared form a
// registration may ask for (release.SharedCapable).
func SharedCapable(name string) bool { return release.SharedCapable(name) }

// ElevID's own acr values before issue 16, still understood in
// acr_values and RequestedAuthnContext; ElevID now asserts the REFEDS
// values (ACRFor).
const (
	ACRPasskeyUV = "urn:elevid:acr:passkey-uv" // a passkey with user verification
	ACRPasskey   = "urn:elevid:acr:passkey"    // a passkey, user presence only
)

// scopeClaims maps each scope to the claims it asks for. openid asks for
// sub only; a claim is released only when release.Compute releases it
// (registration ∩ consent ∩ activation).
var scopeClaims = map[string][]string{
	"profile":   {ClaimName, ClaimGivenName, ClaimFamilyName},
	"eduperson": {ClaimEPPN, ClaimAffiliation, ClaimHomeOrg},
	"school":    {ClaimSchoolCode, ClaimHomeOrg, ClaimGroups},
	"groups":    {ClaimGroups},
}

// KnownClaims lists every claim a platform can be allowed, sorted.
func KnownClaims() []string {
	var out []string
	for _, cs := range scopeClaims {
		for _, c := range cs {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out
}

// oidcClaims returns the claims of rel that scopes ask for, as OIDC values:
// a string for a single-valued attribute, a list for a multi-valued one.
func oidcClaims(rel release.Release, scopes []string) map[string]any {
	out := map[string]any{}
	for _, sc := range scopes {
		for _, name := range scopeClaims[sc] {
			v, ok := rel.Values[name]
			if !ok {
				continue
			}
			if release.MultiValued(name) {
				out[name] = slices.Clone(v)
			} else {
				out[name] = v[0]
			}
		}
	}
	return out
}

// claimNames returns the sorted names of claims, plus "sub".
func claimNames(claims map[string]any) []string {
	out := []string{"sub"}
	for k := range claims {
		out = append(out, k)
	}
	sort.Strings(out[1:])
	return out
}

// ReleaseLog writes release log entries; it satisfies SAMLReleaseLogger
// (its Via is "saml_assertion" for SAML platforms).
type ReleaseLog struct {
	Store school.Store
}

// Record appends one entry: platform platformID received attrs about the
// pupil now.
func (l ReleaseLog) Record(ctx context.Context, pupilID, platformID string, attrs []string) error {
	pf, err := l.Store.GetPlatform(ctx, platformID)
	if err != nil {
		return fmt.Errorf("release log: %w", err)
	}
	via := "id_token"
	if pf.Protocol == school.ProtocolSAML {
		via = "saml_assertion"
	}
	_, err = l.Store.AddRelease(ctx, school.Release{PupilID: pupilID, PlatformID: pf.ID, PlatformName: pf.Name, Protocol: pf.Protocol, Via: via, Claims: attrs})
	return err
}
