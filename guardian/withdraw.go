package guardian

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// Withdraw withdraws a guardian's consent for a pupil: for one platform,
// or for every platform when platformID is empty. It takes effect at
// once, in the same transaction: the affected platforms' tokens and SAML
// sessions are revoked (and, when no consent is left, the pupil's ElevID
// sessions), and a logout notice is queued for every platform
// session (OIDC back-channel logout, SAML SOAP single logout), which the
// queue workers deliver. school.ErrNotFound
// when the guardian is not on record for the pupil.
func (s *Service) Withdraw(ctx context.Context, guardianID, pupilID, platformID, remote string) (Outcome, error) {
	var out Outcome
	now := s.now()
	err := s.opt.Store.InTx(ctx, func(q school.Queries) error {
		p, err := q.GetPupil(ctx, pupilID)
		if err != nil {
			return err
		}
		if !slices.Contains(p.GuardianIDs, guardianID) {
			return fmt.Errorf("%w: pupil", school.ErrNotFound)
		}
		platforms, err := q.ListPlatforms(ctx)
		if err != nil {
			return err
		}
		before, err := covered(ctx, q, p.ID, platforms)
		if err != nil {
			return err
		}
		consents, err := q.ListConsents(ctx, p.ID)
		if err != nil {
			return err
		}
		var withdrawn []string
		for _, c := range consents {
			if c.GuardianID != guardianID || !c.Granted() || (platformID != "" && c.PlatformID != platformID) || c.PlatformID == "" {
				continue
			}
			if _, err := q.SetConsent(ctx, school.Consent{PupilID: p.ID, GuardianID: guardianID, PlatformID: c.PlatformID, Decision: school.DecisionWithdrawn,
				Attributes: c.Attributes, VerifiedSubject: c.VerifiedSubject}); err != nil {
				return err
			}
			withdrawn = append(withdrawn, c.PlatformID)
		}
		if len(withdrawn) == 0 {
			return fmt.Errorf("%w: no standing consent to withdraw", school.ErrNotFound)
		}
		actor := enrolment.Actor{ID: "guardian:" + guardianID, Role: "guardian", SchoolID: p.SchoolID, Remote: remote}
		if _, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: p.SchoolID, Time: now, ActorID: actor.ID, ActorRole: "guardian",
			Action: "consent.withdraw", SubjectID: p.ID, Remote: remote, Detail: fmt.Sprintf(`{"platforms":%s}`, jsonList(withdrawn))}); err != nil {
			return err
		}
		e, err := enrolment.Reevaluate(ctx, q, actor, p.ID, now)
		if err != nil && !errors.Is(err, school.ErrNotFound) {
			return err
		}
		out = Outcome{PupilID: p.ID, GuardianID: guardianID, State: e.State}
		out.Lost, err = s.revokeLost(ctx, q, p, platforms, before)
		if err != nil {
			return err
		}
		// The withdrawn platforms lose their grants even if they were not
		// covered a moment ago (e.g. a quarantined pupil).
		var extra []string
		for _, pf := range withdrawn {
			if !slices.Contains(out.Lost, pf) {
				out.Lost = append(out.Lost, pf)
				extra = append(extra, pf)
			}
		}
		if err := s.endAccess(ctx, q, p.ID, extra); err != nil {
			return err
		}
		return s.endIfNoConsentLeft(ctx, q, p.ID, platformID == "")
	})
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}
