package guardian

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// Rate limits of the link request form.
const (
	linkWindow     = time.Hour
	linkPerClient  = 10
	linkPerAddress = 3
)

// Mount registers the guardian's and the pupil's consent routes:
//
//	GET  /consent/{token}          the consent page of a mailed link
//	POST /consent/{token}          approve / deny (per platform or all)
//	POST /consent/{token}/verify   start upstream verification (if configured)
//	GET  /consent/verified         the upstream provider's redirect back
//	GET  /guardian                 the guardian's page, or the link request form
//	POST /guardian/link            mail a link to the guardian's page
//	GET  /guardian/login/{token}   confirm sign-in (mail scanners only GET)
//	POST /guardian/login/{token}   use the link, start a session
//	POST /guardian/withdraw        withdraw consent (platform or all)
//	POST /guardian/logout          end the guardian's session
//	GET  /me/consents              the pupil's read-only view (with Pupils set)
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /consent/{token}", s.consentPage)
	mux.HandleFunc("POST /consent/{token}", s.consentSubmit)
	if s.up != nil {
		mux.HandleFunc("POST /consent/{token}/verify", s.verifyStart)
		mux.HandleFunc("GET /consent/verified", s.verifyCallback)
	}
	mux.HandleFunc("GET /guardian", s.guardianPage)
	mux.HandleFunc("POST /guardian/link", s.linkRequest)
	mux.HandleFunc("GET /guardian/login/{token}", s.loginPage)
	mux.HandleFunc("POST /guardian/login/{token}", s.loginSubmit)
	mux.HandleFunc("POST /guardian/withdraw", s.withdraw)
	mux.HandleFunc("POST /guardian/logout", s.logoutGuardian)
	if s.opt.Pupils != nil {
		mux.HandleFunc("GET /me/consents", s.pupilPage)
	}
}

func private(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// MountPupilPage registers GET /me/consents, the pupil's read-only view
// of consents and releases, for the pupils signed in through pupils.
func (s *Service) MountPupilPage(mux *http.ServeMux, pupils PupilSessions) {
	s.opt.Pupils = pupils
	mux.HandleFunc("GET /me/consents", s.pupilPage)
}

// linkProblem renders the page for an unusable link.
func (s *Service) linkProblem(w http.ResponseWriter, r *http.Request, err error) {
	status, key := http.StatusNotFound, "parent.err.link_invalid"
	switch {
	case errors.Is(err, ErrLinkUsed):
		status, key = http.StatusGone, "parent.err.link_used"
	case errors.Is(err, ErrLinkExpired):
		status, key = http.StatusGone, "parent.err.link_expired"
	case errors.Is(err, ErrClosed):
		status, key = http.StatusGone, "parent.err.closed"
	case errors.Is(err, ErrVerificationRequired):
		status, key = http.StatusForbidden, "parent.err.verify_required"
	case !errors.Is(err, ErrLinkInvalid):
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.log.Info("guardian: link refused", "reason", key)
	s.opt.Site.Render(w, r, status, "parent-link", LinkProblemData{Message: s.opt.Site.T(web.Lang(r), key)})
}

// LinkProblemData is the data of the parent-link page.
type LinkProblemData struct{ Message string }

// ConsentPageData is the data of the parent-consent page.
type ConsentPageData struct {
	Token        string
	SchoolName   string
	GivenName    string
	GuardianName string
	Platforms    []PlatformView
	LinkExpires  time.Time
	// Verify names the upstream provider when verification is
	// configured; VerifyRequired when it is required; Verified is the
	// guardian's verified identity, once verified.
	Verify         string
	VerifyRequired bool
	Verified       string
}

// PlatformView is one platform as a guardian or pupil sees it.
type PlatformView struct {
	ID         string
	Name       string
	Attributes []school.AttributeGrant
	Decision   string    // this guardian's current decision, if any
	DecidedAt  time.Time // when
	Active     bool      // releases to it are allowed now
	// Addition marks a platform that gained Attributes since the
	// guardian's grant, which still covers Kept: the page asks only about
	// the additions.
	Addition bool
	Kept     []school.AttributeGrant
}

func (s *Service) consentPage(w http.ResponseWriter, r *http.Request) {
	private(w)
	ctx := r.Context()
	token := r.PathValue("token")
	if !plausibleToken(token) {
		s.linkProblem(w, r, ErrLinkInvalid)
		return
	}
	l, err := s.opt.Store.GuardianLinkByHash(ctx, school.LinkHash(token))
	if err != nil {
		s.linkProblem(w, r, linkErr(err))
		return
	}
	var t consentTarget
	err = s.opt.Store.InTx(ctx, func(q school.Queries) error {
		t, err = s.target(ctx, q, l)
		return err
	})
	if err != nil {
		s.linkProblem(w, r, err)
		return
	}
	asked, _, err := askFor(ctx, s.opt.Store, t.pupil.SchoolID, t.pupil.ID, t.guardian.ID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	d := ConsentPageData{Token: token, SchoolName: t.school.Name, GivenName: t.pupil.GivenName, GuardianName: t.guardian.Name, LinkExpires: l.ExpiresAt}
	if s.up != nil {
		d.Verify, d.VerifyRequired = s.up.cfg.Name, s.up.cfg.Required
		if d.Verified, err = s.verifiedFor(ctx, token); err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
	}
	d.Platforms = asked
	s.opt.Site.Render(w, r, http.StatusOK, "parent-consent", d)
}

// DoneData is the data of the parent-done page.
type DoneData struct {
	Granted   int
	Denied    int
	State     string
	GivenName string
}

func (s *Service) consentSubmit(w http.ResponseWriter, r *http.Request) {
	private(w)
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		s.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	platforms, err := s.opt.Store.ListPlatforms(ctx)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	action := r.PostForm.Get("action")
	var decisions []Decision
	for _, pf := range platforms {
		grant := action == "grant_all" || (action == "choose" && r.PostForm.Get("p_"+pf.ID) == "grant")
		decisions = append(decisions, Decision{PlatformID: pf.ID, Grant: grant})
	}
	if action != "grant_all" && action != "deny_all" && action != "choose" {
		s.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	// Nothing is pre-chosen: the browser asks for a yes or a no for every
	// platform shown (required radios); a "save my choices" without any
	// answer is refused here and saves nothing.
	if action == "choose" {
		answered := false
		for _, pf := range platforms {
			if v := r.PostForm.Get("p_" + pf.ID); v == "grant" || v == "deny" {
				answered = true
			}
		}
		if !answered {
			s.opt.Site.Error(w, r, http.StatusBadRequest, "parent.err.choose_each")
			return
		}
	}
	token := r.PathValue("token")
	if !plausibleToken(token) {
		s.linkProblem(w, r, ErrLinkInvalid)
		return
	}
	verified, err := s.verifiedFor(ctx, token)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	out, err := s.Decide(ctx, token, decisions, verified, s.opt.ClientIP(r))
	if err != nil {
		s.linkProblem(w, r, err)
		return
	}
	if err := s.sessions.Start(w, r, out.Session); err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	p, err := s.opt.Store.GetPupil(ctx, out.PupilID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.opt.Site.Render(w, r, http.StatusOK, "parent-done", DoneData{Granted: out.Granted, Denied: out.Denied, State: string(out.State), GivenName: p.GivenName})
}

// guardian returns the signed-in guardian, if any. With w, the cookie of
// a session that ended is cleared.
func (s *Service) guardian(w http.ResponseWriter, r *http.Request) (school.Guardian, bool) {
	sess, err := s.sessions.Current(w, r)
	if err != nil {
		if !errors.Is(err, school.ErrNotFound) && !errors.Is(err, school.ErrExpired) {
			s.log.Error("guardian: reading session failed", "err", err)
		}
		return school.Guardian{}, false
	}
	g, err := s.opt.Store.GetGuardian(r.Context(), sess.SubjectID)
	return g, err == nil
}

// MayView reports whether the signed-in guardian (if any) is a guardian
// of pupilID now; it fits transparency.Authorizer.
func (s *Service) MayView(r *http.Request, pupilID string) (string, bool) {
	g, ok := s.guardian(nil, r)
	if !ok {
		return "", false
	}
	pupils, err := s.opt.Store.PupilsOfGuardian(r.Context(), g.ID)
	if err != nil {
		return "guardian:" + g.ID, false
	}
	return "guardian:" + g.ID, slices.Contains(pupils, pupilID)
}
