package idptest

import (
	"slices"

	"github.com/elevid/elevid/school"
)

// ConsentModelCovered is the property tests' specification of what a
// platform may receive (TestReleaseBuildersProperty, TestConsentProperty),
// written apart from package school: nothing unless the school activated the platform and no guardian on
// record denied or withdrew it; then under "any" an attribute the
// platform has now that some guardian granted and none refused, under
// "all" one that every guardian granted. nil means the platform may not
// know the pupil at all.
func ConsentModelCovered(rule school.ConsentRule, guardians []string, consents []school.Consent, pf school.Platform, activated bool) []string {
	if !activated {
		return nil
	}
	grantedBy := map[string]map[string]bool{} // guardian → attribute
	refused := map[string]bool{}
	anyGrant := false
	for _, c := range consents {
		if c.PlatformID != pf.ID || !slices.Contains(guardians, c.GuardianID) {
			continue
		}
		if c.Decision != school.DecisionGranted {
			return nil
		}
		anyGrant = true
		grantedBy[c.GuardianID] = map[string]bool{}
		for _, a := range c.Attributes {
			grantedBy[c.GuardianID][a.Name] = true
		}
		for _, r := range c.Refused {
			refused[r] = true
		}
	}
	if !anyGrant || (rule == school.ConsentAll && len(grantedBy) != len(guardians)) {
		return nil
	}
	out := []string{}
	for _, a := range pf.Attributes {
		n := 0
		for _, g := range grantedBy {
			if g[a.Name] {
				n++
			}
		}
		if (rule == school.ConsentAny && n > 0 && !refused[a.Name]) || (rule == school.ConsentAll && n == len(guardians)) {
			out = append(out, a.Name)
		}
	}
	return out
}
