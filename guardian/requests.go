package guardian

import (
	"context"
	"errors"
	"fmt"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// Requests sends the consent requests of starting enrolment flows: it is
// the enrolment.ConsentRequester the flows are built with, before the
// Service that needs the flows.
type Requests struct{ opt Options }

// NewRequests returns Requests for opt; Site, Sealer and BaseURL are
// required (the rest of Options as for New; Flows is not used).
func NewRequests(opt Options) (*Requests, error) {
	if opt.Site == nil || opt.BaseURL == "" || opt.Sealer == nil {
		return nil, errors.New("guardian: consent requests need a site, a sealer and a base URL")
	}
	opt.defaults()
	return &Requests{opt: opt}, nil
}

// RequestConsent implements enrolment.ConsentRequester: per guardian a
// single-use consent link and a mail in the outbox, in q's transaction.
func (s *Requests) RequestConsent(ctx context.Context, q school.Queries, r enrolment.ConsentRequest) error {
	for _, g := range r.Guardians {
		token := newToken()
		if _, err := q.CreateGuardianLink(ctx, school.GuardianLink{
			Hash: school.LinkHash(token), Kind: school.LinkConsent, GuardianID: g.ID, PupilID: r.Pupil.ID,
			SchoolID: r.Pupil.SchoolID, ExpiresAt: r.ExpiresAt,
		}); err != nil {
			return err
		}
		m, err := renderMail(KindConsentRequest, r.Pupil.SchoolID, g.Email, mailData{Site: s.opt.Site,
			SchoolName: r.School.Name, GivenName: r.Pupil.GivenName, Link: s.opt.BaseURL + "/consent/" + token, Expires: r.ExpiresAt,
		})
		if err != nil {
			return err
		}
		if _, err := q.EnqueueMail(ctx, SealMail(s.opt.Sealer, m)); err != nil {
			return err
		}
		if _, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: r.Pupil.SchoolID, Time: s.opt.Now(), ActorID: "system", ActorRole: "system",
			Action: "consent.request", SubjectID: r.Pupil.ID, Detail: fmt.Sprintf(`{"guardian":%q}`, g.ID)}); err != nil {
			return err
		}
	}
	if s.opt.Sender != nil {
		s.opt.Sender.Wake()
	}
	return nil
}
