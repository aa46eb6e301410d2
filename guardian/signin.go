package guardian

import (
	"context"
	"strings"

	"github.com/elevid/elevid/school"
)

// RequestGuardianLink mails a single-use link to the guardian's page to
// every guardian record with that address. It returns nil whether or not
// the address is known, so callers cannot tell (only store failures
// are errors).
func (s *Service) RequestGuardianLink(ctx context.Context, email string) error {
	email = strings.TrimSpace(email)
	if school.ValidEmail(email) != nil {
		return nil
	}
	guardians, err := s.opt.Store.GuardiansByEmail(ctx, email)
	if err != nil || len(guardians) == 0 {
		return err
	}
	exp := s.now().Add(s.opt.GuardianLinkTTL)
	err = s.opt.Store.InTx(ctx, func(q school.Queries) error {
		for _, g := range guardians {
			sch, err := q.GetSchool(ctx, g.SchoolID)
			if err != nil {
				return err
			}
			token := newToken()
			if _, err := q.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash(token), Kind: school.LinkGuardian, GuardianID: g.ID, SchoolID: g.SchoolID, ExpiresAt: exp}); err != nil {
				return err
			}
			m, err := renderMail(KindGuardianLink, g.SchoolID, g.Email, mailData{Site: s.opt.Site, SchoolName: sch.Name, Link: s.opt.BaseURL + "/guardian/login/" + token, Expires: exp})
			if err != nil {
				return err
			}
			if _, err := q.EnqueueMail(ctx, SealMail(s.opt.Sealer, m)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.wake()
	}
	return err
}

// SignIn uses a guardian-page link and returns a new guardian session
// (with its id, for the cookie).
func (s *Service) SignIn(ctx context.Context, token string) (school.Session, error) {
	if !plausibleToken(token) {
		return school.Session{}, ErrLinkInvalid
	}
	var out school.Session
	err := s.opt.Store.InTx(ctx, func(q school.Queries) error {
		l, err := q.UseGuardianLink(ctx, school.LinkHash(token))
		if err != nil {
			return linkErr(err)
		}
		if l.Kind != school.LinkGuardian {
			return ErrLinkInvalid
		}
		out, err = q.CreateSession(ctx, s.sessions.New(school.Session{SubjectID: l.GuardianID, SchoolID: l.SchoolID}))
		return err
	})
	return out, err
}
