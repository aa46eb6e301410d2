package release

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"slices"
	"sort"

	"github.com/elevid/elevid/school"
)

// Attribute names. These are the canonical names (the OpenID Connect claim
// names); a platform's registration may also use the SAML names, which
// Canonical maps to these.
const (
	Name        = "name"
	GivenName   = "given_name"
	FamilyName  = "family_name"
	EPPN        = "eduperson_principal_name"
	Affiliation = "eduperson_scoped_affiliation"
	HomeOrg     = "schac_home_organization"
	SchoolCode  = "school_code"
	Groups      = "groups"
	// PairwiseID and TargetedID are the SAML forms of the pairwise
	// identifier (pairwise-id, eduPersonTargetedID).
	PairwiseID = "pairwise_id"
	TargetedID = "eduperson_targeted_id"
)

// samlNames maps the SAML attribute names a registration may use to the
// canonical names.
var samlNames = map[string]string{
	"displayName":                Name,
	"givenName":                  GivenName,
	"sn":                         FamilyName,
	"eduPersonPrincipalName":     EPPN,
	"eduPersonScopedAffiliation": Affiliation,
	"schacHomeOrganization":      HomeOrg,
	"schoolCode":                 SchoolCode,
	"groups":                     Groups,
	"pairwise-id":                PairwiseID,
	"eduPersonTargetedID":        TargetedID,
}

// Canonical returns the canonical name of a registered attribute name
// (OIDC claim or SAML attribute name); unknown names are returned as they
// are.
func Canonical(name string) string {
	if c, ok := samlNames[name]; ok {
		return c
	}
	return name
}

// MultiValued reports whether an attribute can hold several values: SAML
// sends each as an AttributeValue, OpenID Connect as a JSON array.
func MultiValued(name string) bool {
	n := Canonical(name)
	return n == Affiliation || n == Groups
}

// SharedCapable reports whether an attribute has a shared form that a
// registration may ask for (school.AttributeGrant.Shared): the
// eduPersonPrincipalName built from the directory id, the same at every
// platform.
func SharedCapable(name string) bool { return Canonical(name) == EPPN }

// Refusals: why a platform gets nothing. Callers map them to their
// protocol's refusal (OIDC access_denied, a SAML non-success status).
var (
	// ErrQuarantined: the pupil is not active (quarantined or removed).
	ErrQuarantined = errors.New("release: the pupil is not active")
	// ErrNotActivated: the pupil's school has not activated the platform.
	ErrNotActivated = errors.New("release: the platform is not activated for the pupil's school")
	// ErrNoConsent: no current consent covers the platform (or the
	// enrolment flow does not allow releases).
	ErrNoConsent = errors.New("release: no consent covers the platform")
)

// Input is what a release is computed from.
type Input struct {
	Profile  school.PupilProfile
	Platform school.Platform
	State    school.ConsentState
	// PairwiseSecret and Sector derive the pairwise identifiers: Sector is
	// the OIDC sector identifier or the SAML service provider's entity id.
	PairwiseSecret []byte
	Sector         string
}

// Release is what a platform may receive about a pupil now.
type Release struct {
	// Pairwise is the pupil's pairwise identifier at the sector.
	Pairwise string
	// Subject is the OIDC subject: Pairwise, or the pupil's id for a
	// platform registered with a public subject type (with a reason).
	Subject string
	// Values holds every covered attribute with a value, by canonical
	// name. Single-valued attributes have one value.
	Values map[string][]string
	// Granted lists the registered names (as in the platform's
	// registration) whose values are in Values, in registration order.
	Granted []string
}

// Names returns the canonical names in Values, sorted.
func (r Release) Names() []string {
	out := make([]string, 0, len(r.Values))
	for k := range r.Values {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Has reports whether the release holds the attribute (canonical or
// registered name).
func (r Release) Has(name string) bool {
	_, ok := r.Values[Canonical(name)]
	return ok
}

// Compute returns what in.Platform may receive about the pupil: nothing
// and ErrQuarantined, ErrNotActivated or ErrNoConsent when it may not know
// the pupil at all; otherwise the pairwise identifiers and the values of
// the attributes that the registration allows, a current consent covers
// (school.ConsentState.Covered) and the school's activation permits.
func Compute(in Input) (Release, error) {
	st, pf := in.State, in.Platform
	if in.Profile.Pupil.Status != school.PupilActive {
		return Release{}, ErrQuarantined
	}
	if err := Allowed(st, pf.ID); err != nil {
		return Release{}, err
	}
	r := Release{Values: map[string][]string{}}
	r.Pairwise = Pairwise(in.PairwiseSecret, in.Profile.Pupil.ID, in.Sector)
	r.Subject = r.Pairwise
	if pf.SubjectType == school.SubjectPublic {
		r.Subject = in.Profile.Pupil.ID
	}
	if st.PlatformFound {
		// The registration as stored now, not a cached copy.
		pf.Attributes = st.Attributes
	}
	for _, name := range st.Covered(pf) {
		g, _ := pf.Grant(name)
		canon := Canonical(name)
		if _, done := r.Values[canon]; done {
			continue
		}
		if v := value(in.Profile, canon, g.Shared, r.Pairwise); len(v) > 0 {
			r.Values[canon] = v
			r.Granted = append(r.Granted, name)
		}
	}
	return r, nil
}

// Allowed reports whether the platform may know the pupil at all: nil,
// or ErrQuarantined, ErrNotActivated or ErrNoConsent.
func Allowed(st school.ConsentState, platformID string) error {
	switch {
	case st.PupilStatus != school.PupilActive:
		return ErrQuarantined
	case !st.EnrolmentAllows():
		return ErrNoConsent
	case !st.Activated:
		return ErrNotActivated
	case !st.CoversPlatform(platformID):
		return ErrNoConsent
	}
	return nil
}

// Refused reports whether err is one of the refusals.
func Refused(err error) bool {
	return errors.Is(err, ErrQuarantined) || errors.Is(err, ErrNotActivated) || errors.Is(err, ErrNoConsent)
}

// value returns the values of one attribute (canonical name).
func value(p school.PupilProfile, name string, shared bool, pairwise string) []string {
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	domain := p.School.Domain
	switch name {
	case Name:
		return one(p.Pupil.Name())
	case GivenName:
		return one(p.Pupil.GivenName)
	case FamilyName:
		return one(p.Pupil.FamilyName)
	case EPPN:
		if shared {
			id := p.Pupil.ExternalID
			if id == "" {
				id = p.Pupil.ID
			}
			return one(id + "@" + domain)
		}
		return one(pairwise + "@" + domain)
	case Affiliation:
		return one("student@" + domain)
	case HomeOrg:
		return one(domain)
	case SchoolCode:
		return one(p.School.Code)
	case Groups:
		var groups []string
		for _, c := range p.Classes {
			if c.Name != "" && !slices.Contains(groups, c.Name) {
				groups = append(groups, c.Name)
			}
		}
		sort.Strings(groups)
		return groups
	case PairwiseID:
		return one(pairwise + "@" + domain)
	case TargetedID:
		return one(pairwise)
	}
	return nil
}

// pairwiseEncoding is lower-case base32 without padding: letters and digits
// only, so a pairwise value is also a valid SAML pairwise-id unique part.
var pairwiseEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Pairwise returns the pairwise identifier of a pupil at a sector (an OIDC
// sector identifier or a SAML service provider's entity id): lower-case
// base32 of HMAC-SHA256(secret, pupilID NUL sector). The same inputs always
// give the same value; different sectors cannot correlate their values
// without the secret.
func Pairwise(secret []byte, pupilID, sector string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(pupilID))
	m.Write([]byte{0})
	m.Write([]byte(sector))
	return pairwiseEncoding.EncodeToString(m.Sum(nil))
}
