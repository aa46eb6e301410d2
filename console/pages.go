package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/elevid/elevid/transparency"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

func (c *Console) home(w http.ResponseWriter, r *http.Request, p Principal) {
	if p.Role == school.RoleOperator {
		http.Redirect(w, r, "/console/schools", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/schools/"+p.SchoolID, http.StatusSeeOther)
}

// schoolFor authorizes a on the school named in the path and loads it.
func (c *Console) schoolFor(r *http.Request, p Principal, a Action, classIDs ...string) (school.School, error) {
	id := r.PathValue("school")
	if err := Authorize(p, a, Target{SchoolID: id, ClassIDs: classIDs}); err != nil {
		return school.School{}, err
	}
	return c.opt.Store.GetSchool(r.Context(), id)
}

// ClassRow is a class in the school overview.
type ClassRow struct {
	school.Class
	Pupils int
}

// SchoolData is the data of the console-school page.
type SchoolData struct {
	Frame
	Classes []ClassRow
	LastRun *school.SyncRun
	// Platforms are the instance's platforms with the school's choice,
	// shown to those who may activate them.
	Platforms    []SchoolPlatformRow
	CanActivate  bool
	PlatformNote string
}

// SchoolPlatformRow is a platform on the school page.
type SchoolPlatformRow struct {
	school.Platform
	Active bool
}

func (c *Console) schoolPage(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ViewSchool)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	classes, err := c.opt.Store.ListClasses(ctx, s.ID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := SchoolData{Frame: Frame{Me: p, School: s}}
	for _, cl := range classes {
		if Authorize(p, ViewClass, Target{SchoolID: s.ID, ClassIDs: []string{cl.ID}}) != nil {
			continue
		}
		ps, err := c.opt.Store.ListPupils(ctx, school.PupilFilter{SchoolID: s.ID, ClassID: cl.ID, Status: school.PupilActive})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Classes = append(data.Classes, ClassRow{Class: cl, Pupils: len(ps)})
	}
	if Authorize(p, RunSync, Target{SchoolID: s.ID}) == nil {
		if runs, err := c.opt.Store.ListSyncRuns(ctx, s.ID, 1); err == nil && len(runs) > 0 {
			data.LastRun = &runs[0]
		}
	}
	if Authorize(p, ActivatePlatforms, Target{SchoolID: s.ID}) == nil {
		data.CanActivate = c.opt.Platforms != nil
		if data.Platforms, err = c.schoolPlatforms(ctx, s.ID); err != nil {
			c.fail(w, r, err)
			return
		}
		switch r.URL.Query().Get("platform") {
		case "activated":
			data.PlatformNote = "console.school.platform_activated"
		case "deactivated":
			data.PlatformNote = "console.school.platform_deactivated"
		}
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-school", data)
}

// schoolPlatforms lists the instance's platforms with the school's
// activation.
func (c *Console) schoolPlatforms(ctx context.Context, schoolID string) ([]SchoolPlatformRow, error) {
	acts, err := c.opt.Store.ListPlatformActivations(ctx, schoolID)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, a := range acts {
		active[a.PlatformID] = true
	}
	all, err := c.opt.Store.ListPlatforms(ctx)
	if err != nil {
		return nil, err
	}
	var out []SchoolPlatformRow
	for _, pf := range all {
		out = append(out, SchoolPlatformRow{Platform: pf, Active: active[pf.ID]})
	}
	return out, nil
}

// schoolPlatformSave activates or deactivates a platform for the school
// (school admin or operator); deactivation ends access like a withdrawal.
func (c *Console) schoolPlatformSave(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ActivatePlatforms)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if c.opt.Platforms == nil {
		c.opt.Site.Error(w, r, http.StatusServiceUnavailable, "console.school.platforms_unavailable")
		return
	}
	var active bool
	switch r.PostFormValue("action") {
	case "activate":
		active = true
	case "deactivate":
	default:
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	if _, err := c.opt.Platforms.SetPlatformActivation(r.Context(), c.actor(r, p), s.ID, r.PathValue("platform"), active); err != nil {
		c.fail(w, r, err)
		return
	}
	note := "deactivated"
	if active {
		note = "activated"
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"?platform="+note, http.StatusSeeOther)
}

// PupilRow is a pupil in a class list, with where their enrolment stands.
type PupilRow struct {
	school.Pupil
	Consent     bool // a guardian's consent allows enrolment
	Passkeys    int  // active passkeys
	PendingCode bool // an unused enrolment code is out
	// State is where the pupil's enrolment stands, for the teacher: one
	// of the State… constants.
	State string
}

// Enrolment standings in the class view.
const (
	StateNotStarted = "not_started"
	StateAwaiting   = "awaiting"  // waiting for a guardian's answer
	StateDeclined   = "declined"  // a guardian said no; it stands until they change it
	StateWithdrawn  = "withdrawn" // consent was withdrawn
	StateExpired    = "expired"   // nobody answered in time
	StateConsented  = "consented" // consent in place, no passkey yet
	StateEnrolled   = "enrolled"  // has a passkey
)

// ClassData is the data of the console-class page.
type ClassData struct {
	Frame
	Class       school.Class
	Pupils      []PupilRow
	CanEnrol    bool
	Unavailable bool // no enroller configured
}

func (c *Console) classPage(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ViewClass, r.PathValue("class"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	cl, err := c.opt.Store.GetClass(ctx, s.ID, r.PathValue("class"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	rows, err := c.pupilRows(ctx, s.ID, cl.ID)
	if err == nil {
		err = c.access(ctx, p, s.ID, "", cl.ID, "class.view", "")
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := ClassData{Frame: Frame{Me: p, School: s}, Class: cl, Pupils: rows,
		CanEnrol: Authorize(p, EnrolClass, Target{SchoolID: s.ID, ClassIDs: []string{cl.ID}}) == nil, Unavailable: c.opt.Enroller == nil}
	c.opt.Site.Render(w, r, http.StatusOK, "console-class", data)
}

func (c *Console) pupilRows(ctx context.Context, schoolID, classID string) ([]PupilRow, error) {
	ps, err := c.opt.Store.ListPupils(ctx, school.PupilFilter{SchoolID: schoolID, ClassID: classID})
	if err != nil {
		return nil, err
	}
	rows := make([]PupilRow, 0, len(ps))
	for _, pu := range ps {
		row := PupilRow{Pupil: pu}
		if row.Consent, err = c.opt.Store.EnrolmentAllowed(ctx, pu.ID); err != nil {
			return nil, err
		}
		creds, err := c.opt.Store.ListCredentials(ctx, pu.ID, false)
		if err != nil {
			return nil, err
		}
		row.Passkeys = len(creds)
		row.State = StateNotStarted
		if e, err := c.opt.Store.GetEnrolment(ctx, pu.ID); err == nil {
			switch e.State {
			case school.EnrolmentRequested, school.EnrolmentAwaitingConsent:
				row.State = StateAwaiting
			case school.EnrolmentDenied:
				row.State = StateDeclined
			case school.EnrolmentWithdrawn:
				row.State = StateWithdrawn
			case school.EnrolmentExpired:
				row.State = StateExpired
			default:
				row.State = StateConsented
			}
		} else if !errors.Is(err, school.ErrNotFound) {
			return nil, err
		}
		if row.Consent && row.Passkeys > 0 {
			row.State = StateEnrolled
		}
		if row.PendingCode, err = c.opt.Store.PendingEnrolmentCode(ctx, pu.ID); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b PupilRow) int { return strings.Compare(a.Name(), b.Name()) })
	return rows, nil
}

// Card is one pupil's enrolment code on a printed sheet.
type Card struct {
	Name    string
	Class   string
	Code    string
	Expires time.Time
	URL     string
}

// sheetContent is what a sheet holds, sealed in the store.
type sheetContent struct {
	School      string
	Class       string
	Cards       []Card
	Waiting     []string // pupils without consent: no code
	Declined    []string // a guardian said no: no code
	Enrolled    []string // pupils with a passkey already: no code
	Outstanding []string // an earlier code still works: no new card
	Replaced    []string // an earlier code was replaced by the new card
	Started     int      // enrolment flows started now (consent requested or granted)
}

// SheetData is the data of the console-sheet page.
type SheetData struct {
	Frame
	Sheet   sheetContent
	Cards   []SheetCard
	Created time.Time
	Expires time.Time
	Back    string
	// EnrolPage is the address pupils type when they cannot scan.
	EnrolPage string
}

// SheetCard is a card with its QR image.
type SheetCard struct {
	Card
	QR template.URL // data:image/svg+xml URI
}

func (c *Console) enrolClass(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, EnrolClass, r.PathValue("class"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	cl, err := c.opt.Store.GetClass(ctx, s.ID, r.PathValue("class"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if c.opt.Enroller == nil {
		c.opt.Site.Error(w, r, http.StatusServiceUnavailable, "console.err.no_enroller")
		return
	}
	content := sheetContent{School: s.Name, Class: cl.Name}
	if c.opt.Starter != nil {
		res, err := c.opt.Starter.StartClass(ctx, c.actor(r, p), s.ID, cl.ID)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		for _, x := range res {
			if x.Err == nil && !x.Already {
				content.Started++
			}
		}
	}
	res, err := SheetCodes(ctx, c.opt.Store, c.opt.Enroller, c.opt.Issuer, s.ID, cl.ID, c.actor(r, p), r.PostFormValue("replace") == "1")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	content.Cards, content.Waiting, content.Declined, content.Enrolled = res.Cards, res.Waiting, res.Declined, res.Enrolled
	content.Outstanding, content.Replaced = res.Outstanding, res.Replaced
	id, err := c.saveSheet(ctx, s.ID, cl.ID, p, content)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if err := c.audit(ctx, nil, r, p, s.ID, "enrolment.class_start", cl.ID,
		fmt.Sprintf(`{"codes":%d,"waiting_consent":%d,"declined":%d,"enrolled":%d,"kept_codes":%d,"replaced_codes":%d,"consent_started":%d,"sheet":%q}`,
			len(content.Cards), len(content.Waiting), len(content.Declined), len(content.Enrolled), len(content.Outstanding), len(content.Replaced), content.Started, id)); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"/sheets/"+id, http.StatusSeeOther)
}

func (c *Console) saveSheet(ctx context.Context, schoolID, classID string, p Principal, content sheetContent) (string, error) {
	id := school.NewID()
	raw, err := json.Marshal(content)
	if err != nil {
		return "", err
	}
	_, err = c.opt.Store.SaveSheet(ctx, school.EnrolmentSheet{
		ID: id, SchoolID: schoolID, ClassID: classID, CreatedBy: p.StaffID,
		Data: c.opt.Sealer.Seal(raw, "sheet:"+id), ExpiresAt: c.now().Add(c.opt.SheetTTL),
	})
	return id, err
}

func (c *Console) sheetPage(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ViewSchool)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	sh, err := c.opt.Store.GetSheet(ctx, s.ID, r.PathValue("sheet"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// The codes are bearer secrets: only the staff member who printed
	// them sees them again.
	if sh.CreatedBy != p.StaffID {
		c.fail(w, r, ErrHidden)
		return
	}
	raw, err := c.opt.Sealer.Open(sh.Data, "sheet:"+sh.ID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var content sheetContent
	if err := json.Unmarshal(raw, &content); err != nil {
		c.fail(w, r, err)
		return
	}
	data := SheetData{Frame: Frame{Me: p, School: s}, Sheet: content, Created: sh.CreatedAt, Expires: sh.ExpiresAt, Back: "/console/schools/" + s.ID,
		EnrolPage: strings.TrimRight(c.opt.Issuer, "/") + "/enrol"}
	if sh.ClassID != "" {
		data.Back += "/classes/" + sh.ClassID
	}
	for _, card := range content.Cards {
		svg, err := enrolment.QRSVG(card.URL)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Cards = append(data.Cards, SheetCard{Card: card, QR: template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg)))})
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-sheet", data)
}

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
		data.Credentials, err = c.opt.Store.ListCredentials(ctx, pu.ID, true)
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

// StaffData is the data of the console-staff page.
type StaffData struct {
	Frame
	Staff    []school.Staff
	Classes  []school.Class
	Form     StaffForm
	Errors   map[string]string
	Invited  string // username of a just-invited member
	Reset    string // username of a member whose credentials were just reset
	Password string // their one-time password, shown once
}

// StaffForm is what the invite form holds.
type StaffForm struct {
	Username, Name, Email, Role string
	ClassIDs                    []string
}

// HasClass reports whether the form has class id ticked.
func (f StaffForm) HasClass(id string) bool { return slices.Contains(f.ClassIDs, id) }

func (c *Console) staffData(ctx context.Context, p Principal, s school.School) (StaffData, error) {
	data := StaffData{Frame: Frame{Me: p, School: s}, Form: StaffForm{Role: string(school.RoleTeacher)}}
	var err error
	if data.Staff, err = c.opt.Store.ListStaff(ctx, s.ID); err != nil {
		return data, err
	}
	data.Classes, err = c.opt.Store.ListClasses(ctx, s.ID)
	return data, err
}

func (c *Console) staffPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ManageStaff)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, err := c.staffData(r.Context(), p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-staff", data)
}

func (c *Console) staffInvite(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ManageStaff)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, err := c.staffData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	f := StaffForm{Username: normUsername(r.PostFormValue("username")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Email: strings.TrimSpace(r.PostFormValue("email")), Role: r.PostFormValue("role"), ClassIDs: r.PostForm["class"]}
	data.Form = f
	inv := Invite{SchoolID: s.ID, Username: f.Username, Name: f.Name, Email: f.Email, Role: school.Role(f.Role), ClassIDs: f.ClassIDs}
	staff, password, errs, err := c.invite(ctx, r, p, inv)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if len(errs) > 0 {
		data.Errors = map[string]string{}
		for k, v := range errs {
			data.Errors[k] = c.opt.Site.T(web.Lang(r), v)
		}
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-staff", data)
		return
	}
	data, err = c.staffData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data.Invited, data.Password = staff.Username, password
	c.opt.Site.Render(w, r, http.StatusOK, "console-staff", data)
}

// Invite is a new staff member of a school.
type Invite struct {
	SchoolID                string
	Username, Name, Email   string
	Role                    school.Role
	ClassIDs                []string
	Password                string // empty: a random one-time password
	ActorID, ActorRole, Via string
}

// invite validates and creates a staff member with a one-time password;
// field errors come back as text keys by field name.
func (c *Console) invite(ctx context.Context, r *http.Request, p Principal, inv Invite) (school.Staff, string, map[string]string, error) {
	errs := validateInvite(inv)
	if len(errs) > 0 {
		return school.Staff{}, "", errs, nil
	}
	password := NewPassword()
	st := school.Staff{SchoolID: inv.SchoolID, Username: inv.Username, Name: inv.Name, Email: inv.Email, Role: inv.Role,
		ClassIDs: inv.ClassIDs, PasswordHash: HashPassword(password, c.opt.Argon2), PasswordExpires: c.now().Add(OneTimePasswordLifetime)}
	err := c.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		if st, err = q.CreateStaff(ctx, st); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, inv.SchoolID, "staff.invite", st.ID, fmt.Sprintf(`{"role":%q,"classes":%d}`, st.Role, len(st.ClassIDs)))
	})
	switch {
	case errors.Is(err, school.ErrConflict):
		return st, "", map[string]string{"username": "console.staff.taken"}, nil
	case errors.Is(err, school.ErrInvalid):
		return st, "", map[string]string{"class": "console.staff.bad_class"}, nil
	}
	return st, password, nil, err
}

func validateInvite(inv Invite) map[string]string {
	errs := map[string]string{}
	if !usernameOK(inv.Username) {
		errs["username"] = "console.staff.bad_username"
	}
	if inv.Name == "" || len(inv.Name) > 200 || !utf8.ValidString(inv.Name) {
		errs["name"] = "console.staff.bad_name"
	}
	if inv.Email != "" && (school.ValidEmail(inv.Email) != nil || !utf8.ValidString(inv.Email)) {
		errs["email"] = "console.staff.bad_email"
	}
	if inv.Role != school.RoleTeacher && inv.Role != school.RoleSchoolAdmin {
		errs["role"] = "console.staff.bad_role"
	}
	return errs
}

func usernameOK(u string) bool {
	if len(u) < 2 || len(u) > 64 {
		return false
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == '@') {
			return false
		}
	}
	return true
}

// otherStaff reads the staff member a staff-management route names, for
// a principal who may manage the school's staff: someone of another
// school is hidden, and nobody acts on their own account this way. It
// writes the error answer and reports false when the route cannot go on.
func (c *Console) otherStaff(w http.ResponseWriter, r *http.Request, p Principal) (school.Staff, school.School, bool) {
	st, err := c.opt.Store.GetStaff(r.Context(), r.PathValue("staff"))
	if err != nil {
		c.fail(w, r, err)
		return school.Staff{}, school.School{}, false
	}
	if st.SchoolID == "" || st.SchoolID != r.PathValue("school") {
		c.fail(w, r, ErrHidden)
		return school.Staff{}, school.School{}, false
	}
	s, err := c.schoolFor(r, p, ManageStaff)
	if err != nil {
		c.fail(w, r, err)
		return school.Staff{}, school.School{}, false
	}
	if st.ID == p.StaffID {
		c.opt.Site.Error(w, r, http.StatusBadRequest, "console.staff.not_self")
		return school.Staff{}, school.School{}, false
	}
	return st, s, true
}

func (c *Console) staffDisable(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	st, s, ok := c.otherStaff(w, r, p)
	if !ok {
		return
	}
	err := c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if _, err := q.UpdateStaff(ctx, st.ID, func(x school.Staff) (school.Staff, error) { x.Disabled = true; return x, nil }); err != nil {
			return err
		}
		if _, err := q.RevokeSessions(ctx, st.ID, "disabled"); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, s.ID, "staff.disable", st.ID, "")
	})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"/staff", http.StatusSeeOther)
}

// staffReset resets a staff member's credentials (ResetStaff): a new
// one-time password, shown once; passkeys deleted; sessions ended.
func (c *Console) staffReset(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	st, s, ok := c.otherStaff(w, r, p)
	if !ok {
		return
	}
	pw, err := ResetStaff(ctx, c.opt.Store, c.opt.Argon2, st.ID, p.StaffID, p.Role)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, err := c.staffData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data.Reset, data.Password = st.Username, pw
	noStore(w)
	c.opt.Site.Render(w, r, http.StatusOK, "console-staff", data)
}

// AuditData is the data of the console-audit page.
type AuditData struct {
	Frame
	Instance bool
	Entries  []school.AuditEntry
	Intact   bool
	Problem  string
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ViewAudit)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.renderAudit(w, r, AuditData{Frame: Frame{Me: p, School: s}}, s.ID)
}

func (c *Console) instanceAuditPage(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := Authorize(p, ViewInstance, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	c.renderAudit(w, r, AuditData{Frame: Frame{Me: p}, Instance: true}, school.InstanceChain)
}

func (c *Console) renderAudit(w http.ResponseWriter, r *http.Request, data AuditData, chain string) {
	ctx := r.Context()
	var err error
	if data.Entries, err = c.opt.Store.ListAudit(ctx, school.AuditFilter{SchoolID: chain, Limit: 200}); err != nil {
		c.fail(w, r, err)
		return
	}
	switch err := c.opt.Store.VerifyAudit(ctx, chain); {
	case err == nil:
		data.Intact = true
	case errors.Is(err, school.ErrChainBroken):
		data.Problem = err.Error()
		c.log.Error("console: audit chain broken", "chain", chain, "err", err)
	default:
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-audit", data)
}

// Purposes are the reasons a reset form offers.
func (PupilData) Purposes() []string { return resetPurposes }
