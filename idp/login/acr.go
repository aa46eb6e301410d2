package login

// Authentication context: how strongly a pupil authenticated, said the
// same way in SAML (AuthnContextClassRef) and OIDC (acr).
//
// A passkey login with user verification (PIN or biometric on the device
// that holds the key) is two factors: REFEDS MFA. A passkey with user
// presence only is one possession factor: REFEDS SFA. ElevID requires
// user verification at pupil login, so pupils always reach MFA; SFA is
// only asserted for a session without it.
const (
	ACRREFEDSMFA  = "https://refeds.org/profile/mfa"
	ACRREFEDSSFA  = "https://refeds.org/profile/sfa"
	ACUnspecified = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
)

// ElevID's own acr values before issue 16, still understood in
// acr_values and RequestedAuthnContext; ElevID now asserts the REFEDS
// values (ACRFor).
const (
	ACRPasskeyUV = "urn:elevid:acr:passkey-uv" // a passkey with user verification
	ACRPasskey   = "urn:elevid:acr:passkey"    // a passkey, user presence only
)

// acrRanks orders the contexts ElevID knows by strength. ElevID's earlier
// OIDC values are still understood when a platform asks for them.
var acrRanks = map[string]int{
	ACUnspecified: 0,
	ACRREFEDSSFA:  1, ACRPasskey: 1,
	ACRREFEDSMFA: 2, ACRPasskeyUV: 2,
}

// acrOfRank is the context ElevID asserts for each strength.
var acrOfRank = []string{ACUnspecified, ACRREFEDSSFA, ACRREFEDSMFA}

// ACRFor is the context a pupil's passkey login reached.
func ACRFor(userVerified bool) string {
	if userVerified {
		return ACRREFEDSMFA
	}
	return ACRREFEDSSFA
}

// ACRValuesSupported are the contexts ElevID asserts, strongest first
// (OIDC discovery's acr_values_supported).
func ACRValuesSupported() []string { return []string{ACRREFEDSMFA, ACRREFEDSSFA} }

// MeetAuthnContext decides the context to assert for a login that reached
// the context reached, when a platform asked for the contexts requested
// with a SAML comparison (exact, minimum, better, maximum; "" is exact).
// Nothing requested: reached. It reports false when the request cannot be
// met, also when it names only contexts ElevID does not know.
//
//   - exact: the first requested context the login meets (a stronger login
//     meets a weaker context: MFA satisfies SFA), asserted as requested;
//   - minimum: reached, when it is at least as strong as one requested;
//   - better: reached, when it is stronger than one requested;
//   - maximum: the strongest of ElevID's contexts no stronger than both
//     reached and the strongest requested.
func MeetAuthnContext(requested []string, comparison, reached string) (string, bool) {
	if len(requested) == 0 {
		return reached, true
	}
	have, ok := acrRanks[reached]
	if !ok {
		return "", false
	}
	lo, hi, known := 3, -1, false
	for _, r := range requested {
		if k, ok := acrRanks[r]; ok {
			known = true
			lo, hi = min(lo, k), max(hi, k)
		}
	}
	if !known {
		return "", false
	}
	switch comparison {
	case "", "exact":
		for _, r := range requested {
			if k, ok := acrRanks[r]; ok && k <= have {
				return r, true
			}
		}
	case "minimum":
		if have >= lo {
			return acrOfRank[have], true
		}
	case "better":
		if have > lo {
			return acrOfRank[have], true
		}
	case "maximum":
		return acrOfRank[min(have, hi)], true
	}
	return "", false
}
