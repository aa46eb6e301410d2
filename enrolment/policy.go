package enrolment

import (
	"errors"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

// Policy is the instance's age and consent policy (config `policy.*`).
type Policy struct {
	MinAge, MaxAge int // the ages in scope, inclusive (12 and 15)
	// OutsideRange is "allow" (start, but flag the flow) or "deny" for a
	// pupil younger than MinAge or older than MaxAge.
	OutsideRange string
	// ConsentRequiredUnder is the age below which a guardian's consent is
	// needed; pupils under 13 need it whatever this says.
	ConsentRequiredUnder int
	// Guardians is "any" (one guardian on record suffices) or "all".
	Guardians string
}

// DefaultPolicy is the policy of an instance with no configuration.
func DefaultPolicy() Policy {
	return Policy{MinAge: 12, MaxAge: 15, OutsideRange: "deny", ConsentRequiredUnder: 15, Guardians: "any"}
}

// AlwaysConsentUnder is the age below which guardian consent is always
// required, whatever the policy.
const AlwaysConsentUnder = 13

// Errors of Assess (and so of Start), wrapped with detail.
var (
	ErrNoBirthDate = errors.New("enrolment: the pupil has no date of birth")
	ErrOutsideAge  = errors.New("enrolment: the pupil is outside the policy's age range")
)

// Assessment is what the policy says about one pupil on one day.
type Assessment struct {
	Age     int
	Flagged bool // outside MinAge..MaxAge, allowed by OutsideRange
	Rule    school.ConsentRule
}

// Assess applies the policy to a pupil on day now: ErrNoBirthDate without
// a date of birth, ErrOutsideAge for an out-of-range pupil when the policy
// denies those.
func (p Policy) Assess(pupil school.Pupil, now time.Time) (Assessment, error) {
	age, ok := pupil.AgeOn(now)
	if !ok {
		return Assessment{}, ErrNoBirthDate
	}
	a := Assessment{Age: age}
	if age < p.MinAge || age > p.MaxAge {
		if p.OutsideRange != "allow" {
			return a, fmt.Errorf("%w (%d–%d)", ErrOutsideAge, p.MinAge, p.MaxAge)
		}
		a.Flagged = true
	}
	under := max(p.ConsentRequiredUnder, AlwaysConsentUnder)
	switch {
	case age >= under:
		a.Rule = school.ConsentNone
	case p.Guardians == "all":
		a.Rule = school.ConsentAll
	default:
		a.Rule = school.ConsentAny
	}
	return a, nil
}
