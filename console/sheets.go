package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

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
		creds, err := c.opt.Store.ListCredentials(ctx, school.PupilOwner(pu.ID), false)
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
