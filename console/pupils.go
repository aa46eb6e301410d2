package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/elevid/elevid/transparency"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// PupilData is the data of the console-pupil page.
type PupilData struct {
	Frame
	Pupil       PupilRow
	Classes     []school.Class
	Credentials []school.Credential
	Audit       []school.AuditEntry
	CanReset    bool
	CanExport   bool // a subject access request: the school admin's
	Purpose     string
	Confirmed   bool
	Errors      map[string]string
	Notice      string
}

// resetPurposes are the recorded reasons for a passkey reset.
var resetPurposes = []string{"checked_in_person", "lost_device", "new_device", "compromised"}

func (c *Console) pupilFor(r *http.Request, p Principal, a Action) (school.School, school.Pupil, error) {
	ctx := r.Context()
	pu, err := c.opt.Store.GetPupil(ctx, r.PathValue("pupil"))
	if err != nil {
		return school.School{}, pu, err
	}
	if pu.SchoolID != r.PathValue("school") {
		return school.School{}, school.Pupil{}, ErrHidden
	}
	s, err := c.schoolFor(r, p, a, pu.ClassIDs...)
	return s, pu, err
}

// exportPupil answers a subject access request: the JSON document of
// everything ElevID holds about the pupil (the same as the pupil's and
// guardians' own export), recorded in the access log.
func (c *Console) exportPupil(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, pu, err := c.pupilFor(r, p, ExportPupil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	x, err := transparency.BuildExport(ctx, c.opt.Store, pu.ID, c.now())
	if err == nil {
		err = c.access(ctx, p, s.ID, pu.ID, "", "export", "subject access request")
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="elevid-export-`+pu.ID+`.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(x)
}

func (c *Console) pupilPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, pu, err := c.pupilFor(r, p, ViewPupil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if err := c.access(r.Context(), p, s.ID, pu.ID, "", "pupil.view", ""); err != nil {
		c.fail(w, r, err)
		return
	}
	data := PupilData{Frame: Frame{Me: p, School: s}}
	if r.URL.Query().Get("notice") == "reset" {
		data.Notice = c.opt.Site.T(web.Lang(r), "console.pupil.reset_no_code")
	}
	c.renderPupil(w, r, http.StatusOK, data, pu)
}

func (c *Console) renderPupil(w http.ResponseWriter, r *http.Request, status int, data PupilData, pu school.Pupil) {
	ctx := r.Context()
	var err error
	data.Pupil = PupilRow{Pupil: pu}
	if data.Pupil.Consent, err = c.opt.Store.EnrolmentAllowed(ctx, pu.ID); err == nil {
		data.Pupil.PendingCode, err = c.opt.Store.PendingEnrolmentCode(ctx, pu.ID)
	}
	if err == nil {
		data.Credentials, err = c.opt.Store.ListCredentials(ctx, school.PupilOwner(pu.ID), true)
	}
	for _, cid := range pu.ClassIDs {
		if err != nil {
			break
		}
		var cl school.Class
		if cl, err = c.opt.Store.GetClass(ctx, pu.SchoolID, cid); err == nil {
			data.Classes = append(data.Classes, cl)
		}
	}
	if err == nil {
		data.Audit, err = c.opt.Store.ListAudit(ctx, school.AuditFilter{SchoolID: pu.SchoolID, SubjectID: pu.ID, Limit: 20})
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for _, cr := range data.Credentials {
		if cr.Active() {
			data.Pupil.Passkeys++
		}
	}
	data.CanReset = c.opt.Resetter != nil && Authorize(data.Me, ResetPasskeys, Target{SchoolID: pu.SchoolID, ClassIDs: pu.ClassIDs}) == nil
	data.CanExport = Authorize(data.Me, ExportPupil, Target{SchoolID: pu.SchoolID, ClassIDs: pu.ClassIDs}) == nil
	c.opt.Site.Render(w, r, status, "console-pupil", data)
}

func (c *Console) resetPupil(w http.ResponseWriter, r *http.Request, p Principal) {
	if c.opt.Resetter == nil {
		c.opt.Site.NotFound(w, r)
		return
	}
	ctx := r.Context()
	s, pu, err := c.pupilFor(r, p, ResetPasskeys)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	lang := web.Lang(r)
	purpose := r.PostFormValue("purpose")
	confirmed := r.PostFormValue("confirm") == "yes"
	errs := map[string]string{}
	if !slices.Contains(resetPurposes, purpose) {
		errs["purpose"] = c.opt.Site.T(lang, "console.pupil.purpose_required")
	}
	if !confirmed {
		errs["confirm"] = c.opt.Site.T(lang, "console.pupil.confirm_required")
	}
	if len(errs) > 0 {
		c.renderPupil(w, r, http.StatusBadRequest, PupilData{Frame: Frame{Me: p, School: s}, Purpose: purpose, Confirmed: confirmed, Errors: errs}, pu)
		return
	}
	// A reset prints a new enrolment code: in a stolen session that is an
	// account takeover. Like directory changes it needs an explicit
	// re-authentication (password and second factor) within the
	// re-authentication window; a recent sign-in is not enough, since a
	// stolen session cookie may be only minutes old.
	fresh, err := c.recentlyReauthenticated(ctx, p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !fresh {
		c.needReauth(w, r, "/console/schools/"+s.ID+"/pupils/"+pu.ID)
		return
	}
	code, exp, err := c.reset(ctx, r, p, s, pu, purpose)
	if err == nil {
		classID := ""
		if len(pu.ClassIDs) > 0 {
			classID = pu.ClassIDs[0]
		}
		err = c.access(ctx, p, s.ID, pu.ID, classID, "passkey.reset", purpose)
	}
	if errors.Is(err, school.ErrInvalid) {
		c.renderPupil(w, r, http.StatusConflict, PupilData{Frame: Frame{Me: p, School: s}, Purpose: purpose, Confirmed: confirmed,
			Errors: map[string]string{"purpose": c.opt.Site.T(lang, "console.pupil.no_consent")}}, pu)
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if code == "" {
		http.Redirect(w, r, "/console/schools/"+s.ID+"/pupils/"+pu.ID+"?notice=reset", http.StatusSeeOther)
		return
	}
	className := ""
	if len(pu.ClassIDs) > 0 {
		if cl, err := c.opt.Store.GetClass(ctx, s.ID, pu.ClassIDs[0]); err == nil {
			className = cl.Name
		}
	}
	id, err := c.saveSheet(ctx, s.ID, "", p, sheetContent{School: s.Name, Class: className,
		Cards: []Card{{Name: pu.Name(), Class: className, Code: code, Expires: exp, URL: enrolment.EnrolURL(c.opt.Issuer, code)}}})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"/sheets/"+id, http.StatusSeeOther)
}

// reset resets the pupil's passkeys through the Resetter (revoke passkeys
// and sessions, end platform access, issue a new code, tell the
// guardians) and records the purpose.
func (c *Console) reset(ctx context.Context, r *http.Request, p Principal, s school.School, pu school.Pupil, purpose string) (string, time.Time, error) {
	code, exp, err := c.opt.Resetter.ResetPasskeys(ctx, c.actor(r, p), pu.ID, true)
	if err != nil {
		return "", time.Time{}, err
	}
	return code, exp, c.audit(ctx, nil, r, p, s.ID, "passkey.reset_purpose", pu.ID, fmt.Sprintf(`{"purpose":%q}`, purpose))
}

// Purposes are the reasons a reset form offers.
func (PupilData) Purposes() []string { return resetPurposes }
