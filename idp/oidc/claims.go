package oidc

import (
	"slices"
	"sort"

	"github.com/elevid/elevid/idp/release"
)

// scopeClaims maps each scope to the claims it asks for. openid asks for
// sub only; a claim is released only when release.Compute releases it
// (registration ∩ consent ∩ activation).
var scopeClaims = map[string][]string{
	"profile":   {release.Name, release.GivenName, release.FamilyName},
	"eduperson": {release.EPPN, release.Affiliation, release.HomeOrg},
	"school":    {release.SchoolCode, release.HomeOrg, release.Groups},
	"groups":    {release.Groups},
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

// Claims returns the claims of rel that scopes ask for, as OIDC values:
// a string for a single-valued attribute, a list for a multi-valued one.
func Claims(rel release.Release, scopes []string) map[string]any {
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
