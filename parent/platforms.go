package parent

import (
	"context"
	"fmt"
	"slices"

	"github.com/elevid/elevid/enrollment"
	"github.com/elevid/elevid/school"
)

// SetPlatformActivation activates or deactivates a platform for a school
// on behalf of a (to be authorised by the caller), recorded in the
// school's audit chain, and reports whether anything changed.
// Deactivation ends the platform's access to the school's pupils like a
// withdrawal (endPlatformForSchool). school.ErrNotFound for an unknown
// school or platform.
func (s *Service) SetPlatformActivation(ctx context.Context, a enrollment.Actor, schoolID, platformID string, active bool) (bool, error) {
	var changed bool
	var pupils []string
	err := s.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		pupils = nil
		changed, err = q.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: schoolID, PlatformID: platformID, ActivatedBy: a.ID}, active)
		if err != nil || !changed {
			return err
		}
		action := "platform.activate"
		if !active {
			action = "platform.deactivate"
			list, err := q.ListPupils(ctx, school.PupilFilter{SchoolID: schoolID})
			if err != nil {
				return err
			}
			for _, p := range list {
				pupils = append(pupils, p.ID)
			}
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: schoolID, Time: s.now(), ActorID: a.ID, ActorRole: string(a.Role),
			Action: action, SubjectID: platformID, Remote: a.Remote, Detail: fmt.Sprintf(`{"platform":%q}`, platformID)})
		return err
	})
	if err != nil {
		return false, err
	}
	if changed && !active {
		s.endPlatformForSchool(ctx, pupils, platformID)
	}
	return changed, nil
}

// endPlatformForSchool ends a platform's access to the pupils of a school
// that deactivated it, by the path a withdrawal takes (logout): the
// platform logout hooks (back-channel logout), then the revocation of the
// pupils' tokens for the platform. New sign-ins are refused already (the
// activation is gone). The single end-of-access service is to take this
// over.
func (s *Service) endPlatformForSchool(ctx context.Context, pupilIDs []string, platformID string) {
	for _, id := range pupilIDs {
		s.logout(ctx, Outcome{PupilID: id, Lost: []string{platformID}})
	}
}

// PlatformChanged is called in the transaction that stored a changed
// platform registration (old → nw). For attributes the platform gained,
// every guardian whose standing grant does not decide them gets a request
// (a consent link by mail) that shows just the additions; until the
// guardian approves, the grant covers the old set only. A removed
// attribute needs nothing here: release is the registration ∩ consent,
// so it stops at once.
func (s *Service) PlatformChanged(ctx context.Context, q school.Queries, old, nw school.Platform) error {
	var added bool
	for _, a := range nw.Attributes {
		if !old.Allows(a.Name) {
			added = true
		}
	}
	if !added {
		return nil
	}
	acts, err := q.ListPlatformActivations(ctx, "")
	if err != nil {
		return err
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
	m, err := renderMail(KindConsentAddition, p.SchoolID, g.Email, mailData{SchoolName: sch.Name, GivenName: p.GivenName,
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
