package guardian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// guardianCookie holds a guardian's session id.
const guardianCookie = "elevid_guardian"

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
	s.setSession(w, out.SessionID)
	p, err := s.opt.Store.GetPupil(ctx, out.PupilID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.opt.Site.Render(w, r, http.StatusOK, "parent-done", DoneData{Granted: out.Granted, Denied: out.Denied, State: string(out.State), GivenName: p.GivenName})
}

func (s *Service) setSession(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: guardianCookie, Value: id, Path: "/", MaxAge: int(s.opt.SessionTTL.Seconds()),
		HttpOnly: true, Secure: s.opt.Secure, SameSite: http.SameSiteLaxMode})
}

// guardian returns the signed-in guardian, if any.
func (s *Service) guardian(r *http.Request) (school.Guardian, bool) {
	c, err := r.Cookie(guardianCookie)
	if err != nil || len(c.Value) != 64 {
		return school.Guardian{}, false
	}
	id, err := s.opt.Store.GuardianSession(r.Context(), c.Value)
	if err != nil {
		return school.Guardian{}, false
	}
	g, err := s.opt.Store.GetGuardian(r.Context(), id)
	return g, err == nil
}

// MayView reports whether the signed-in guardian (if any) is a guardian
// of pupilID now; it fits transparency.Authorizer.
func (s *Service) MayView(r *http.Request, pupilID string) (string, bool) {
	g, ok := s.guardian(r)
	if !ok {
		return "", false
	}
	pupils, err := s.opt.Store.PupilsOfGuardian(r.Context(), g.ID)
	if err != nil {
		return "guardian:" + g.ID, false
	}
	return "guardian:" + g.ID, slices.Contains(pupils, pupilID)
}

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
	g, ok := s.guardian(r)
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
	id, err := s.SignIn(r.Context(), r.PathValue("token"))
	if err != nil {
		s.linkProblem(w, r, err)
		return
	}
	s.setSession(w, id)
	http.Redirect(w, r, "/guardian", http.StatusSeeOther)
}

func (s *Service) withdraw(w http.ResponseWriter, r *http.Request) {
	private(w)
	g, ok := s.guardian(r)
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
	if c, err := r.Cookie(guardianCookie); err == nil {
		_ = s.opt.Store.EndGuardianSession(r.Context(), c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: guardianCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.opt.Secure, SameSite: http.SameSiteLaxMode})
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
