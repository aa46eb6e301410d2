package enrolment

import (
	"context"
	"slices"
	"time"

	"github.com/elevid/elevid/school"
)

// Reevaluate applies the guardians' current decisions to the pupil's flow
// inside q's transaction, after a decision was recorded: a waiting flow
// becomes consented once some platform is covered, or denied once no
// platform can be; a consented (or later) flow becomes withdrawn when no
// platform is covered any more. Only the platforms the pupil's school has
// activated count. It returns the flow afterwards.
func Reevaluate(ctx context.Context, q school.Queries, a Actor, pupilID string, now time.Time) (school.Enrolment, error) {
	e, err := q.GetEnrolment(ctx, pupilID)
	if err != nil {
		return e, err
	}
	if e, err = Settle(ctx, q, e, now); err != nil || e.State.Final() {
		return e, err
	}
	p, err := q.GetPupil(ctx, pupilID)
	if err != nil {
		return e, err
	}
	platforms, err := q.ListPlatforms(ctx)
	if err != nil {
		return e, err
	}
	acts, err := q.ListPlatformActivations(ctx, p.SchoolID)
	if err != nil {
		return e, err
	}
	consents, err := q.ListConsents(ctx, pupilID)
	if err != nil {
		return e, err
	}
	covered, open := false, false
	for _, pf := range platforms {
		if !slices.ContainsFunc(acts, func(a school.PlatformActivation) bool { return a.PlatformID == pf.ID }) {
			continue // guardians are not asked about it; it decides nothing
		}
		if school.ConsentCovers(e.Rule, p.GuardianIDs, consents, pf.ID) {
			covered = true
		} else if !blocked(p.GuardianIDs, consents, pf.ID) && undecided(p.GuardianIDs, consents, pf.ID) {
			open = true
		}
	}
	switch {
	case e.State == school.EnrolmentAwaitingConsent && covered:
		return Move(ctx, q, a, pupilID, school.EnrolmentConsented, now)
	case e.State == school.EnrolmentAwaitingConsent && !open:
		return Move(ctx, q, a, pupilID, school.EnrolmentDenied, now)
	case e.State.Allows() && !covered:
		return Move(ctx, q, a, pupilID, school.EnrolmentWithdrawn, now)
	}
	return e, nil
}

// blocked reports whether a guardian on record denied or withdrew the
// platform.
func blocked(guardians []string, consents []school.Consent, platformID string) bool {
	for _, c := range consents {
		if slices.Contains(guardians, c.GuardianID) && (c.PlatformID == "" || c.PlatformID == platformID) && !c.Granted() {
			return true
		}
	}
	return false
}

// undecided reports whether a guardian on record whose decision could
// still cover the platform has not decided about it.
func undecided(guardians []string, consents []school.Consent, platformID string) bool {
	for _, g := range guardians {
		decided := slices.ContainsFunc(consents, func(c school.Consent) bool {
			return c.GuardianID == g && (c.PlatformID == "" || c.PlatformID == platformID)
		})
		if !decided {
			return true
		}
	}
	return false
}
