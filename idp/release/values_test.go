package release_test

import (
	"slices"
	"testing"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/school"
)

// One pupil, one platform: the OIDC claims and the SAML attributes are
// built from the one release.Compute output, so every attribute carries
// the same values over both protocols (a SAML multi-valued attribute is
// the OIDC array), the ePPN is pairwise, and the affiliation has one
// representation.
func TestOIDCAndSAMLReleaseSameValues(t *testing.T) {
	pf := school.Platform{ID: "pf", ClientID: "https://sp.example", Protocol: school.ProtocolSAML, SubjectType: school.SubjectPairwise}
	for _, n := range []string{"displayName", "givenName", "sn", "eduPersonPrincipalName", "eduPersonScopedAffiliation", "schacHomeOrganization", "schoolCode", "groups"} {
		pf.Attributes = append(pf.Attributes, school.AttributeGrant{Name: n, JustificationDA: "x", JustificationEN: "x"})
	}
	profile := school.PupilProfile{
		Pupil:   school.Pupil{ID: "p1", ExternalID: "dir-42", GivenName: "Ida", FamilyName: "Hansen", Status: school.PupilActive},
		School:  school.School{Code: "demo", Domain: "demo.elevid.dk"},
		Classes: []school.Class{{Name: "7B"}, {Name: "7A"}},
	}
	state := school.ConsentState{PupilStatus: school.PupilActive, Enrolment: school.EnrolmentEnrolled, Rule: school.ConsentAny, Activated: true,
		Guardians: []string{"g"}, Consents: []school.Consent{{GuardianID: "g", PlatformID: "pf", Decision: school.DecisionGranted, Attributes: pf.Attributes}}}
	rel, err := release.Compute(release.Input{Profile: profile, Platform: pf, State: state, PairwiseSecret: []byte("0123456789abcdef0123456789abcdef"), Sector: pf.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	claims := oidc.Claims(rel, []string{"profile", "eduperson", "school", "groups"})
	attrs, _ := saml.Attributes("https://idp.example", pf, rel)
	samlValues := map[string][]string{}
	for _, a := range attrs {
		for _, v := range a.Values {
			samlValues[a.FriendlyName] = append(samlValues[a.FriendlyName], v.Value)
		}
	}
	pairs := map[string]string{ // OIDC claim → SAML friendly name
		release.Name: "displayName", release.GivenName: "givenName", release.FamilyName: "sn", release.EPPN: "eduPersonPrincipalName",
		release.Affiliation: "eduPersonScopedAffiliation", release.HomeOrg: "schacHomeOrganization", release.SchoolCode: "schoolCode", release.Groups: "isMemberOf",
	}
	for claim, friendly := range pairs {
		var oidcVals []string
		switch v := claims[claim].(type) {
		case string:
			oidcVals = []string{v}
		case []string:
			oidcVals = v
		default:
			t.Fatalf("claim %s = %#v", claim, claims[claim])
		}
		if !slices.Equal(oidcVals, samlValues[friendly]) {
			t.Errorf("%s: OIDC %v, SAML %s %v", claim, oidcVals, friendly, samlValues[friendly])
		}
	}
	if want := rel.Pairwise + "@demo.elevid.dk"; claims[release.EPPN] != want {
		t.Errorf("ePPN = %v, want the pairwise %s (never the directory id)", claims[release.EPPN], want)
	}
	if a := claims[release.Affiliation].([]string); !slices.Equal(a, []string{"student@demo.elevid.dk"}) {
		t.Errorf("affiliation = %v", a)
	}
	// Asked for, with a reason, the shared form is the directory id.
	pf.Attributes[3].Shared = true
	state.Consents[0].Attributes = pf.Attributes
	rel, _ = release.Compute(release.Input{Profile: profile, Platform: pf, State: state, PairwiseSecret: []byte("0123456789abcdef0123456789abcdef"), Sector: pf.ClientID})
	if got := rel.Values[release.EPPN]; !slices.Equal(got, []string{"dir-42@demo.elevid.dk"}) {
		t.Errorf("shared ePPN = %v", got)
	}
}
