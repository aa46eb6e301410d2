package idp

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/elevid/elevid/school"
)

// Claim names released about a pupil (OIDC claims; SAML maps them to
// eduPerson attributes).
const (
	ClaimName        = "name"
	ClaimGivenName   = "given_name"
	ClaimFamilyName  = "family_name"
	ClaimEPPN        = "eduperson_principal_name"
	ClaimAffiliation = "eduperson_scoped_affiliation"
	ClaimHomeOrg     = "schac_home_organization"
	ClaimSchoolCode  = "school_code"
	ClaimGroups      = "groups"
)

// ElevID's own acr values before issue 16, still understood in
// acr_values and RequestedAuthnContext; ElevID now asserts the REFEDS
// values (ACRFor).
const (
	ACRPasskeyUV = "urn:elevid:acr:passkey-uv" // a passkey with user verification
	ACRPasskey   = "urn:elevid:acr:passkey"    // a passkey, user presence only
)

// scopeClaims maps each scope to the claims it asks for. openid asks for
// sub only; a claim is released only when the platform's registration
// allows it (school.Platform.Allows) and consent covers the platform.
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

// PupilFacts is what ElevID knows about a pupil that may be released: the
// pupil's profile, with the claims it yields.
type PupilFacts school.PupilProfile

// LoadPupilFacts reads the pupil, their school and classes through q, in
// one query.
func LoadPupilFacts(ctx context.Context, q school.Queries, pupilID string) (PupilFacts, error) {
	p, err := q.GetPupilProfile(ctx, pupilID)
	return PupilFacts(p), err
}

// Claim returns the value of one claim.
func (f PupilFacts) Claim(name string) (any, bool) {
	id := f.Pupil.ExternalID
	if id == "" {
		id = f.Pupil.ID
	}
	switch name {
	case ClaimName:
		return f.Pupil.Name(), true
	case ClaimGivenName:
		return f.Pupil.GivenName, f.Pupil.GivenName != ""
	case ClaimFamilyName:
		return f.Pupil.FamilyName, f.Pupil.FamilyName != ""
	case ClaimEPPN:
		return id + "@" + f.School.Domain, true
	case ClaimAffiliation:
		return []string{"student@" + f.School.Domain}, true
	case ClaimHomeOrg:
		return f.School.Domain, true
	case ClaimSchoolCode:
		return f.School.Code, true
	case ClaimGroups:
		groups := make([]string, 0, len(f.Classes))
		for _, c := range f.Classes {
			groups = append(groups, c.Name)
		}
		sort.Strings(groups)
		return groups, true
	}
	return nil, false
}

// ReleasableClaims returns the claims scopes ask for that the platform is
// allowed, with their values. The caller must have checked consent
// (Store.ReleaseAllowed) first.
func ReleasableClaims(pf school.Platform, scopes []string, f PupilFacts) map[string]any {
	out := map[string]any{}
	for _, sc := range scopes {
		for _, name := range scopeClaims[sc] {
			if !pf.Allows(name) {
				continue
			}
			if v, ok := f.Claim(name); ok {
				out[name] = v
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
