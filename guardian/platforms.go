package guardian

import (
	"context"
	"fmt"
	"slices"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// SetPlatformActivation activates or deactivates a platform for a school
// on behalf of a (to be authorised by the caller), recorded in the
// school's audit chain, and reports whether anything changed.
// Deactivation ends the platform's access to the school's pupils like a
// withdrawal, in the same transaction (endPlatformForSchool).
// school.ErrNotFound for an unknown school or platform.
func (s *Service) SetPlatformActivation(ctx context.Context, a enrolment.Actor, schoolID, platformID string, active bool) (bool, error) {
	var changed bool
	err := s.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		changed, err = q.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: schoolID, PlatformID: platformID, ActivatedBy: a.ID}, active)
		if err != nil || !changed {
			return err
		}
		action := "platform.activate"
		if !active {
			action = "platform.deactivate"
			if err := s.endPlatformForSchool(ctx, q, schoolID, platformID, "platform deactivated for the school"); err != nil {
				return err
			}
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: schoolID, Time: s.now(), ActorID: a.ID, ActorRole: string(a.Role),
			Action: action, SubjectID: platformID, Remote: a.Remote, Detail: fmt.Sprintf(`{"platform":%q}`, platformID)})
		return err
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}

// endPlatformForSchool ends a platform's access to every pupil of a
// school, through the access service inside q's transaction: the pupils'
// tokens and SAML sessions at the platform end and a logout notice is
// queued for every session it held (the pupils stay signed in to ElevID
// and to other platforms). New sign-ins are refused already when the
// activation is gone.
func (s *Service) endPlatformForSchool(ctx context.Context, q school.Queries, schoolID, platformID, reason string) error {
	_, err := s.opt.Access.End(ctx, q, access.SchoolPlatform(schoolID, platformID), reason)
	return err
}

// PlatformChanged is called in the transaction that stored a changed
// platform registration (old → nw). For attributes the platform gained,
// every guardian whose standing grant does not decide them gets a request
// (a consent link by mail) that shows just the additions; until the
// guardian approves, the grant covers the old set only. A removed
// attribute stops at once (release is the registration ∩ consent), and
// the platform's sessions with the pupils of every school that uses it
// end through the access service (with logout notices), so that it
// cannot keep what it received under the wider set.
func (s *Service) PlatformChanged(ctx context.Context, q school.Queries, old, nw school.Platform) error {
	var added, removed bool
	for _, a := range nw.Attributes {
		if !old.Allows(a.Name) {
			added = true
		}
	}
	for _, a := range old.Attributes {
		if !nw.Allows(a.Name) {
			removed = true
		}
	}
	if !added && !removed {
		return nil
	}
	acts, err := q.ListPlatformActivations(ctx, "")
	if err != nil {
		return err
	}
	if removed {
		for _, act := range acts {
			if act.PlatformID != nw.ID {
				continue
			}
			if err := s.endPlatformForSchool(ctx, q, act.SchoolID, nw.ID, "platform lost an attribute"); err != nil {
				return err
			}
		}
	}
	if !added {
		return nil
	}
	sent := false
	for _, act := range acts {
		if act.PlatformID != nw.ID {
			continue
		}
		sch, err := q.GetSchool(ctx, act.SchoolID)
		if err != nil {
			return err
		}
		pupils, err := q.ListPupils(ctx, school.PupilFilter{SchoolID: act.SchoolID, Status: school.PupilActive})
		if err != nil {
			return err
		}
		for _, p := range pupils {
			consents, err := q.ListConsents(ctx, p.ID)
			if err != nil {
				return err
			}
			for _, c := range consents {
				if c.PlatformID != nw.ID || !c.Granted() || !slices.Contains(p.GuardianIDs, c.GuardianID) ||
					len(school.Pending(nw, consents, c.GuardianID)) == 0 {
					continue
				}
				g, err := q.GetGuardian(ctx, c.GuardianID)
				if err != nil {
					return err
				}
				if school.ValidEmail(g.Email) != nil {
					continue
				}
				if err := s.requestAddition(ctx, q, sch, p, g, nw); err != nil {
					return err
				}
				sent = true
			}
		}
	}
	if sent {
		q.AfterCommit(func(context.Context) { s.wake() })
	}
	return nil
}

// requestAddition mails a guardian a consent link about a platform's
// added attributes.
func (s *Service) requestAddition(ctx context.Context, q school.Queries, sch school.School, p school.Pupil, g school.Guardian, pf school.Platform) error {
	token := newToken()
	exp := s.now().Add(s.opt.LinkTTL)
	if _, err := q.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash(token), Kind: school.LinkConsent, GuardianID: g.ID,
		PupilID: p.ID, SchoolID: p.SchoolID, ExpiresAt: exp}); err != nil {
		return err
	}
	m, err := renderMail(KindConsentAddition, p.SchoolID, g.Email, mailData{Site: s.opt.Site, SchoolName: sch.Name, GivenName: p.GivenName,
		PlatformName: pf.Name, Link: s.opt.BaseURL + "/consent/" + token, Expires: exp})
	if err != nil {
		return err
	}
	if _, err := q.EnqueueMail(ctx, m); err != nil {
		return err
	}
	_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: p.SchoolID, Time: s.now(), ActorID: "system", ActorRole: "system",
		Action: "consent.request_addition", SubjectID: p.ID, Detail: fmt.Sprintf(`{"guardian":%q,"platform":%q}`, g.ID, pf.ID)})
	return err
}
