package login

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// MeData is the data of the pupil's page.
type MeData struct {
	PupilID    string
	GivenName  string
	SchoolName string
	Passkeys   []MePasskey
	Sessions   []MeSession
	// CanRemoveLast is true while a teacher reset (a new enrolment code)
	// is pending: then even the last passkey may be removed.
	CanRemoveLast bool
	Message       string // a translated notice after an action
	Error         string // a translated error after an action
	// SAMLPlatforms are the SAML platforms the pupil may sign in to from
	// here (IdP-initiated): registered and covered by consent.
	SAMLPlatforms []MePlatform
}

// MePlatform is a platform on the pupil's page.
type MePlatform struct {
	Name     string
	EntityID string
}

// MePasskey is one passkey on the pupil's page.
type MePasskey struct {
	ID           string // base64url credential id, for the action URLs
	Label        string
	CreatedAt    time.Time
	LastUsedAt   time.Time
	Synced       bool
	CloneWarning bool
	Removable    bool
}

// MeSession is one active session on the pupil's page.
type MeSession struct {
	Ref       string
	UserAgent string
	CreatedAt time.Time
	LastSeen  time.Time
	Current   bool
}

var meMessages = map[string]string{
	"renamed": "me.msg.renamed", "removed": "me.msg.removed", "signed_out": "me.msg.signed_out", "signed_out_others": "me.msg.signed_out_others",
}

var meErrors = map[string]string{
	"last": "me.err.last", "label": "me.err.label", "unknown": "me.err.unknown", "session": "me.err.session",
}

func (l *Login) mountMe(mux *http.ServeMux) {
	mux.HandleFunc("GET /me", l.me)
	mux.HandleFunc("POST /me/passkeys/{id}/rename", l.renamePasskey)
	mux.HandleFunc("POST /me/passkeys/{id}/remove", l.removePasskey)
	mux.HandleFunc("POST /me/sessions/{ref}/revoke", l.revokeSession)
	mux.HandleFunc("POST /me/sessions/revoke-others", l.revokeOthers)
}

// pupilSession returns the request's session and active pupil, or sends
// the browser to log in (GET) or refuses (POST).
func (l *Login) pupilSession(w http.ResponseWriter, r *http.Request) (school.Session, school.Pupil, bool) {
	s, ok := l.Current(r)
	var p school.Pupil
	if ok {
		var err error
		p, err = l.opt.Store.GetPupil(r.Context(), s.SubjectID)
		ok = err == nil && p.Status == school.PupilActive
	}
	if !ok {
		if r.Method == http.MethodGet {
			http.Redirect(w, r, LoginURL(r.URL.RequestURI()), http.StatusSeeOther)
		} else {
			http.Redirect(w, r, LoginURL("/me"), http.StatusSeeOther)
		}
		return s, p, false
	}
	return s, p, true
}

func (l *Login) me(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, p, ok := l.pupilSession(w, r)
	if !ok {
		return
	}
	sc, err := l.opt.Store.GetSchool(ctx, p.SchoolID)
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	creds, err := l.opt.Store.ListCredentials(ctx, school.PupilOwner(p.ID), false)
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	pending, err := l.opt.Store.PendingEnrolmentCode(ctx, p.ID)
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	sessions, err := l.opt.Store.ListSessions(ctx, p.ID)
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	lang := web.Lang(r)
	d := MeData{PupilID: p.ID, GivenName: p.GivenName, SchoolName: sc.Name, CanRemoveLast: pending}
	platforms, err := l.opt.Store.ListPlatforms(ctx)
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	for _, pl := range platforms {
		if pl.Protocol != school.ProtocolSAML {
			continue
		}
		if ok, err := l.opt.Store.ReleaseAllowed(ctx, p.ID, pl.ID); err == nil && ok {
			d.SAMLPlatforms = append(d.SAMLPlatforms, MePlatform{Name: pl.Name, EntityID: pl.ClientID})
		}
	}
	if k, ok := meMessages[r.URL.Query().Get("msg")]; ok {
		d.Message = l.opt.Site.T(lang, k)
	}
	if k, ok := meErrors[r.URL.Query().Get("err")]; ok {
		d.Error = l.opt.Site.T(lang, k)
	}
	for _, c := range creds {
		d.Passkeys = append(d.Passkeys, MePasskey{
			ID: base64.RawURLEncoding.EncodeToString(c.ID), Label: c.Label, CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt,
			Synced: c.BackupEligible, CloneWarning: c.CloneWarning, Removable: len(creds) > 1 || pending,
		})
	}
	for _, ss := range sessions {
		d.Sessions = append(d.Sessions, MeSession{
			Ref: ss.Ref, UserAgent: shortAgent(ss.UserAgent), CreatedAt: ss.CreatedAt, LastSeen: ss.LastSeenAt, Current: ss.Ref == s.Ref,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	l.opt.Site.Render(w, r, http.StatusOK, "me", d)
}

// shortAgent names a browser and system from a User-Agent, roughly.
func shortAgent(ua string) string {
	browser, system := "", ""
	for _, b := range []string{"Edg/", "Firefox/", "Chrome/", "Safari/"} {
		if strings.Contains(ua, b) {
			browser = map[string]string{"Edg/": "Edge", "Firefox/": "Firefox", "Chrome/": "Chrome", "Safari/": "Safari"}[b]
			break
		}
	}
	for _, s := range []string{"iPhone", "iPad", "Android", "Windows", "Mac OS X", "CrOS", "Linux"} {
		if strings.Contains(ua, s) {
			system = map[string]string{"Mac OS X": "macOS", "CrOS": "ChromeOS"}[s]
			if system == "" {
				system = s
			}
			break
		}
	}
	switch {
	case browser != "" && system != "":
		return browser + " · " + system
	case browser != "" || system != "":
		return browser + system
	}
	if utf8.RuneCountInString(ua) > 40 {
		return string([]rune(ua)[:40]) + "…"
	}
	return ua
}

// ownCredential returns the pupil's active credential named in the path.
func (l *Login) ownCredential(ctx context.Context, r *http.Request, p school.Pupil) (school.Credential, error) {
	id, err := base64.RawURLEncoding.DecodeString(r.PathValue("id"))
	if err != nil || len(id) == 0 {
		return school.Credential{}, school.ErrNotFound
	}
	c, err := l.opt.Store.GetCredential(ctx, school.OwnerPupil, id)
	if err != nil {
		return c, err
	}
	if c.Owner.ID != p.ID || !c.Active() {
		return c, school.ErrNotFound
	}
	return c, nil
}

func (l *Login) renamePasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, p, ok := l.pupilSession(w, r)
	if !ok {
		return
	}
	c, err := l.ownCredential(ctx, r, p)
	if errors.Is(err, school.ErrNotFound) {
		http.Redirect(w, r, "/me?err=unknown", http.StatusSeeOther)
		return
	}
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	label := strings.Join(strings.Fields(r.PostFormValue("label")), " ")
	if label == "" || utf8.RuneCountInString(label) > 60 {
		http.Redirect(w, r, "/me?err=label", http.StatusSeeOther)
		return
	}
	if _, err := l.opt.Store.UpdateCredential(ctx, school.OwnerPupil, c.ID, func(c school.Credential) (school.Credential, error) {
		c.Label = label
		return c, nil
	}); err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	http.Redirect(w, r, "/me?msg=renamed", http.StatusSeeOther)
}

// errLastPasskey refuses removing the last passkey without a pending reset.
var errLastPasskey = errors.New("the last passkey cannot be removed")

func (l *Login) removePasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, p, ok := l.pupilSession(w, r)
	if !ok {
		return
	}
	c, err := l.ownCredential(ctx, r, p)
	if errors.Is(err, school.ErrNotFound) {
		http.Redirect(w, r, "/me?err=unknown", http.StatusSeeOther)
		return
	}
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	now := l.opt.Now()
	endsOwn := false
	err = l.opt.Store.InTx(ctx, func(q school.Queries) error {
		active, err := q.ListCredentials(ctx, school.PupilOwner(p.ID), false)
		if err != nil {
			return err
		}
		if len(active) <= 1 {
			pending, err := q.PendingEnrolmentCode(ctx, p.ID)
			if err != nil {
				return err
			}
			if !pending {
				return errLastPasskey
			}
		}
		if _, err := q.UpdateCredential(ctx, school.OwnerPupil, c.ID, func(c school.Credential) (school.Credential, error) {
			c.RevokedAt = now
			return c, nil
		}); err != nil {
			return err
		}
		// Sessions opened with the removed passkey end with it.
		sessions, err := q.ListSessions(ctx, p.ID)
		if err != nil {
			return err
		}
		for _, ss := range sessions {
			if bytes.Equal(ss.CredentialID, c.ID) {
				if _, err := l.endSession(ctx, q, p.ID, ss.Ref, "passkey removed"); err != nil {
					return err
				}
				endsOwn = endsOwn || ss.Ref == s.Ref
			}
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{
			SchoolID: p.SchoolID, Time: now, ActorID: "pupil:" + p.ID, ActorRole: "pupil",
			Action: "passkey.remove", SubjectID: p.ID, Remote: l.opt.ClientIP(r),
		})
		return err
	})
	if errors.Is(err, errLastPasskey) {
		http.Redirect(w, r, "/me?err=last", http.StatusSeeOther)
		return
	}
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	if endsOwn {
		l.sessions.Clear(w)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/me?msg=removed", http.StatusSeeOther)
}

func (l *Login) revokeSession(w http.ResponseWriter, r *http.Request) {
	s, p, ok := l.pupilSession(w, r)
	if !ok {
		return
	}
	ref := r.PathValue("ref")
	ended := false
	err := l.opt.Store.InTx(r.Context(), func(q school.Queries) error {
		var err error
		ended, err = l.endSession(r.Context(), q, p.ID, ref, "signed out from /me")
		return err
	})
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	if !ended {
		// Not one of this pupil's active sessions (another pupil's ref, or
		// already ended): nothing changed, and the page says so.
		http.Redirect(w, r, "/me?err=session", http.StatusSeeOther)
		return
	}
	if ref == s.Ref {
		l.sessions.Clear(w)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/me?msg=signed_out", http.StatusSeeOther)
}

func (l *Login) revokeOthers(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, p, ok := l.pupilSession(w, r)
	if !ok {
		return
	}
	err := l.opt.Store.InTx(ctx, func(q school.Queries) error {
		sessions, err := q.ListSessions(ctx, p.ID)
		if err != nil {
			return err
		}
		for _, ss := range sessions {
			if ss.Ref != s.Ref && ss.RevokedAt.IsZero() {
				if _, err := l.endSession(ctx, q, p.ID, ss.Ref, "signed out elsewhere"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		l.opt.Site.ServerError(w, r, err)
		return
	}
	http.Redirect(w, r, "/me?msg=signed_out_others", http.StatusSeeOther)
}
