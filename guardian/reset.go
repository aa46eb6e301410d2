package guardian

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// ErrNotVerified is returned by ResetPasskeys when the teacher did not
// confirm checking the pupil in person.
var ErrNotVerified = errors.New("guardian: the pupil must be checked in person before a passkey reset")

// ResetPasskeys is the teacher-verified passkey reset: after checking the
// pupil in person (verifiedInPerson), it revokes all the pupil's
// passkeys and sessions, issues a new enrolment code (returned, not
// stored), and tells the guardians by e-mail, all in one transaction. The
// pupil's access to every platform ends with it (sessions, OIDC access and
// refresh tokens, SAML sessions; logout notices queued).
// enrolment.ErrForbidden for an actor outside the pupil's school or
// classes; school.ErrInvalid when the pupil's consent is not in place.
func (s *Service) ResetPasskeys(ctx context.Context, a enrolment.Actor, pupilID string, verifiedInPerson bool) (string, time.Time, error) {
	if !verifiedInPerson {
		return "", time.Time{}, ErrNotVerified
	}
	var code string
	var exp time.Time
	now := s.now()
	err := s.opt.Store.InTx(ctx, func(q school.Queries) error {
		p, err := q.GetPupil(ctx, pupilID)
		if err != nil {
			return err
		}
		creds, err := q.ListCredentials(ctx, school.PupilOwner(p.ID), false)
		if err != nil {
			return err
		}
		for _, c := range creds {
			if _, err := q.UpdateCredential(ctx, school.OwnerPupil, c.ID, func(c school.Credential) (school.Credential, error) {
				c.RevokedAt = now
				return c, nil
			}); err != nil {
				return err
			}
		}
		// IssueCodeTx checks the actor's access and the consent; a refusal
		// rolls the revocations back with everything else.
		if code, exp, err = s.opt.Flows.IssueCodeTx(ctx, q, a, p.ID); err != nil {
			return err
		}
		// A reset after a lost device ends every platform's access too:
		// refresh tokens issued to the lost device must not survive it.
		if _, err := s.opt.Access.End(ctx, q, access.Pupil(p.ID), "passkey reset"); err != nil {
			return err
		}
		if _, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: p.SchoolID, Time: now, ActorID: a.ID, ActorRole: string(a.Role),
			Action: "passkey.reset", SubjectID: p.ID, Remote: a.Remote, Detail: fmt.Sprintf(`{"revoked":%d,"verified_in_person":true}`, len(creds))}); err != nil {
			return err
		}
		sch, err := q.GetSchool(ctx, p.SchoolID)
		if err != nil {
			return err
		}
		guardians, err := q.GuardiansOf(ctx, p.ID)
		if err != nil {
			return err
		}
		for _, g := range guardians {
			if g.Email == "" || school.ValidEmail(g.Email) != nil {
				continue
			}
			m, err := renderMail(KindPasskeyReset, p.SchoolID, g.Email, mailData{Site: s.opt.Site, SchoolName: sch.Name, GivenName: p.GivenName, Link: s.opt.BaseURL + "/guardian"})
			if err != nil {
				return err
			}
			if _, err := q.EnqueueMail(ctx, SealMail(s.opt.Sealer, m)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	s.wake()
	return code, exp, nil
}
