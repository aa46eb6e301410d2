package guardian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// ChildView is one child on the guardian's or the pupil's page.
type ChildView struct {
	PupilID     string
	GivenName   string
	SchoolName  string
	State       string
	Quarantine  bool
	Platforms   []PlatformView
	Releases    []school.Release
	CanWithdraw bool
}

// GuardianPageData is the data of the parent-guardian page.
type GuardianPageData struct {
	SignedIn bool
	Name     string
	Children []ChildView
	Message  string
}

var guardianMessages = map[string]string{
	"withdrawn": "parent.msg.withdrawn", "sent": "parent.msg.sent", "nothing": "parent.msg.nothing",
}

func (s *Service) guardianPage(w http.ResponseWriter, r *http.Request) {
	private(w)
	d := GuardianPageData{}
	if key, ok := guardianMessages[r.URL.Query().Get("msg")]; ok {
		d.Message = s.opt.Site.T(web.Lang(r), key)
	}
	g, ok := s.guardian(w, r)
	if !ok {
		s.opt.Site.Render(w, r, http.StatusOK, "parent-guardian", d)
		return
	}
	d.SignedIn, d.Name = true, g.Name
	ids, err := s.opt.Store.PupilsOfGuardian(r.Context(), g.ID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	for _, id := range ids {
		c, err := s.child(r.Context(), id, g.ID)
		if err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
		d.Children = append(d.Children, c)
	}
	s.opt.Site.Render(w, r, http.StatusOK, "parent-guardian", d)
}

// child builds the view of one pupil; guardianID selects whose decisions
// are shown (empty: the pupil's own view, every guardian's grants).
func (s *Service) child(ctx context.Context, pupilID, guardianID string) (ChildView, error) {
	st := s.opt.Store
	p, err := st.GetPupil(ctx, pupilID)
	if err != nil {
		return ChildView{}, err
	}
	sch, err := st.GetSchool(ctx, p.SchoolID)
	if err != nil {
		return ChildView{}, err
	}
	c := ChildView{PupilID: p.ID, GivenName: p.GivenName, SchoolName: sch.Name, Quarantine: p.Status != school.PupilActive}
	if e, err := st.GetEnrolment(ctx, p.ID); err == nil {
		c.State = string(e.State)
	} else if !errors.Is(err, school.ErrNotFound) {
		return c, err
	}
	platforms, err := st.ListPlatforms(ctx)
	if err != nil {
		return c, err
	}
	consents, err := st.ListConsents(ctx, p.ID)
	if err != nil {
		return c, err
	}
	for _, pf := range platforms {
		v := PlatformView{ID: pf.ID, Name: pf.Name}
		cs, err := st.ConsentState(ctx, p.ID, pf.ID)
		if err != nil {
			return c, err
		}
		// What the platform may receive now, in plain words on the page.
		v.Active = cs.CoversPlatform(pf.ID)
		for _, name := range cs.Covered(pf) {
			g, _ := pf.Grant(name)
			v.Attributes = append(v.Attributes, g)
		}
		for _, k := range consents {
			if k.PlatformID != pf.ID || (guardianID != "" && k.GuardianID != guardianID) {
				continue
			}
			if guardianID == "" && !k.Granted() && v.Decision == school.DecisionGranted {
				continue
			}
			v.Decision, v.DecidedAt = k.Decision, k.DecidedAt
			if k.Decision == school.DecisionGranted && guardianID != "" {
				c.CanWithdraw = true
			}
		}
		if v.Decision == "" && !v.Active {
			continue // never asked about, nothing to show
		}
		c.Platforms = append(c.Platforms, v)
	}
	if c.Releases, err = st.ListReleases(ctx, p.ID); err != nil {
		return c, err
	}
	return c, nil
}

func (s *Service) linkRequest(w http.ResponseWriter, r *http.Request) {
	private(w)
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	n1, err := s.opt.Store.HitRate(ctx, "guardian-link-client:"+s.opt.ClientIP(r), linkWindow)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	n2, err := s.opt.Store.HitRate(ctx, "guardian-link-addr:"+hex.EncodeToString(sum[:16]), linkWindow)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	if n1 > linkPerClient {
		s.opt.Site.Error(w, r, http.StatusTooManyRequests, "parent.err.rate")
		return
	}
	if n2 <= linkPerAddress {
		if err := s.RequestGuardianLink(ctx, email); err != nil {
			s.log.Error("guardian: guardian link request", "err", err)
		}
	}
	// The same answer whether or not the address is known (or limited).
	http.Redirect(w, r, "/guardian?msg=sent", http.StatusSeeOther)
}

// LoginData is the data of the parent-login page.
type LoginData struct{ Token string }

func (s *Service) loginPage(w http.ResponseWriter, r *http.Request) {
	private(w)
	token := r.PathValue("token")
	if !plausibleToken(token) {
		s.linkProblem(w, r, ErrLinkInvalid)
		return
	}
	l, err := s.opt.Store.GuardianLinkByHash(r.Context(), school.LinkHash(token))
	if err == nil && l.Kind != school.LinkGuardian {
		err = school.ErrNotFound
	}
	if err != nil {
		s.linkProblem(w, r, linkErr(err))
		return
	}
	s.opt.Site.Render(w, r, http.StatusOK, "parent-login", LoginData{Token: token})
}

func (s *Service) loginSubmit(w http.ResponseWriter, r *http.Request) {
	private(w)
	sess, err := s.SignIn(r.Context(), r.PathValue("token"))
	if err != nil {
		s.linkProblem(w, r, err)
		return
	}
	if err := s.sessions.Start(w, r, sess); err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	http.Redirect(w, r, "/guardian", http.StatusSeeOther)
}

func (s *Service) withdraw(w http.ResponseWriter, r *http.Request) {
	private(w)
	g, ok := s.guardian(w, r)
	if !ok {
		s.opt.Site.Error(w, r, http.StatusForbidden, "parent.err.signin")
		return
	}
	pupilID, platformID := r.PostFormValue("pupil"), r.PostFormValue("platform")
	if r.PostFormValue("confirm") != "yes" {
		s.confirmWithdraw(w, r, g.ID, pupilID, platformID)
		return
	}
	if platformID == "all" {
		platformID = ""
	}
	_, err := s.Withdraw(r.Context(), g.ID, pupilID, platformID, s.opt.ClientIP(r))
	switch {
	case errors.Is(err, school.ErrNotFound):
		http.Redirect(w, r, "/guardian?msg=nothing", http.StatusSeeOther)
	case err != nil:
		s.opt.Site.ServerError(w, r, err)
	default:
		http.Redirect(w, r, "/guardian?msg=withdrawn", http.StatusSeeOther)
	}
}

// WithdrawData is the data of the parent-withdraw page: the question
// before a withdrawal, naming the child, the platforms and what stops.
type WithdrawData struct {
	PupilID   string
	GivenName string
	Platform  string   // the form's platform value (an id or "all")
	Names     []string // the platforms that stop
}

// confirmWithdraw asks the guardian to confirm a withdrawal (no
// JavaScript: a page with a form that repeats the request with
// confirm=yes).
func (s *Service) confirmWithdraw(w http.ResponseWriter, r *http.Request, guardianID, pupilID, platformID string) {
	ctx := r.Context()
	ids, err := s.opt.Store.PupilsOfGuardian(ctx, guardianID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	if !slices.Contains(ids, pupilID) {
		http.Redirect(w, r, "/guardian?msg=nothing", http.StatusSeeOther)
		return
	}
	c, err := s.child(ctx, pupilID, guardianID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	d := WithdrawData{PupilID: pupilID, GivenName: c.GivenName, Platform: platformID}
	for _, pf := range c.Platforms {
		if pf.Decision == string(school.DecisionGranted) && (platformID == "all" || pf.ID == platformID) {
			d.Names = append(d.Names, pf.Name)
		}
	}
	if len(d.Names) == 0 {
		http.Redirect(w, r, "/guardian?msg=nothing", http.StatusSeeOther)
		return
	}
	s.opt.Site.Render(w, r, http.StatusOK, "parent-withdraw", d)
}

func (s *Service) logoutGuardian(w http.ResponseWriter, r *http.Request) {
	if _, err := s.sessions.End(w, r, "logout"); err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	http.Redirect(w, r, "/guardian", http.StatusSeeOther)
}

// PupilPageData is the data of the me-consents page.
type PupilPageData struct{ Child ChildView }

// PupilView returns what the pupil's own page shows: consents per
// platform (read-only) and the release log. The passkey /me page may
// embed it.
func (s *Service) PupilView(ctx context.Context, pupilID string) (ChildView, error) {
	return s.child(ctx, pupilID, "")
}

func (s *Service) pupilPage(w http.ResponseWriter, r *http.Request) {
	private(w)
	sess, ok := s.opt.Pupils.Current(r)
	if !ok {
		http.Redirect(w, r, "/login?return="+"/me/consents", http.StatusSeeOther)
		return
	}
	c, err := s.PupilView(r.Context(), sess.SubjectID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.opt.Site.Render(w, r, http.StatusOK, "me-consents", PupilPageData{Child: c})
}
