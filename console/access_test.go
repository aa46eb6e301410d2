package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/transparency"
)

// Staff reads and changes of a pupil are in the access log the pupil and
// guardians read: a pupil view, a class list view (one entry for the
// class), and a passkey reset with its purpose. Another child's timeline
// shows none of it.
func TestStaffAccessIsLogged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ck := f.signIn(f.A.Teacher)
	p := "/console/schools/" + f.A.School.ID
	for _, path := range []string{p + "/pupils/" + f.A.Pupil.ID, p + "/classes/" + f.A.Class.ID} {
		if rec := f.do(req{method: "GET", path: path, cookie: ck}); rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		f.clock.Advance(time.Second)
	}
	f.reauth(f.A.Teacher, ck)
	rec := f.do(req{method: "POST", path: p + "/pupils/" + f.A.Pupil.ID + "/reset", cookie: ck, form: url.Values{"purpose": {"checked_in_person"}, "confirm": {"yes"}}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("reset: %d", rec.Code)
	}
	entries, err := f.st.AccessForPupil(ctx, f.A.Pupil.ID)
	f.must(err)
	var actions []string
	for _, e := range entries {
		if e.StaffID != f.A.Teacher.ID || e.Role != school.RoleTeacher || e.StaffName == "" {
			t.Fatalf("entry without its staff member: %+v", e)
		}
		actions = append(actions, e.Action+"/"+e.Purpose)
	}
	if strings.Join(actions, ",") != "passkey.reset/checked_in_person,class.view/,pupil.view/" {
		t.Fatalf("access log = %v", actions)
	}
	// The class view is one entry with no pupil named.
	if entries[1].PupilID != "" || entries[1].ClassID != f.A.Class.ID {
		t.Fatalf("class view entry = %+v", entries[1])
	}
	events, err := transparency.Timeline(ctx, f.st, webtest.NewSite(t), "en", f.A.Pupil.ID)
	f.must(err)
	if len(events) != 3 || !strings.Contains(events[0].Text, "reset the passkeys – purpose: Checked in person") {
		t.Fatalf("timeline = %+v", events)
	}
	// A pupil of another class (and the other school) sees none of it.
	if other, _ := f.st.AccessForPupil(ctx, f.A.OtherPupil.ID); len(other) != 0 {
		t.Fatalf("another pupil's log has %+v", other)
	}
	if other, _ := f.st.AccessForPupil(ctx, f.B.Pupil.ID); len(other) != 0 {
		t.Fatalf("another school's pupil's log has %+v", other)
	}
}

// A school admin answers a subject access request from the console: the
// export has the pupil's data and the download is in the access log.
func TestAdminExportsPupil(t *testing.T) {
	f := newFixture(t)
	ck := f.signIn(f.A.Admin)
	p := "/console/schools/" + f.A.School.ID + "/pupils/" + f.A.Pupil.ID
	if page := f.do(req{method: "GET", path: p, cookie: ck}); !strings.Contains(page.Body.String(), p+"/export") {
		t.Fatal("the pupil page offers the admin no export")
	}
	f.clock.Advance(time.Second) // the export is the newest entry
	rec := f.do(req{method: "GET", path: p + "/export", cookie: ck})
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `"format": "elevid-export/1"`) || !strings.Contains(body, f.A.Pupil.GivenName) {
		t.Fatalf("export = %d\n%.300s", rec.Code, body)
	}
	entries, err := f.st.AccessForPupil(context.Background(), f.A.Pupil.ID)
	f.must(err)
	if len(entries) == 0 || entries[0].Action != "export" || entries[0].Purpose != "subject access request" || entries[0].StaffID != f.A.Admin.ID {
		t.Fatalf("access log = %+v", entries)
	}
}

// The pupil's history in the console reads as sentences, not log keys.
func TestPupilHistoryInSentences(t *testing.T) {
	f := newFixture(t)
	ck := f.signIn(f.A.Teacher)
	p := "/console/schools/" + f.A.School.ID + "/pupils/" + f.A.Pupil.ID
	f.reauth(f.A.Teacher, ck)
	rec := f.do(req{method: "POST", path: p + "/reset", cookie: ck, form: url.Values{"purpose": {"checked_in_person"}, "confirm": {"yes"}}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("reset: %d", rec.Code)
	}
	rec = f.do(req{method: "GET", path: p, cookie: ck})
	body := rec.Body.String()
	i := strings.Index(body, `id="pupil-history"`)
	if i < 0 {
		t.Fatalf("no history on the pupil page:\n%s", body)
	}
	hist := body[i:]
	hist = hist[:strings.Index(hist, "</ul>")]
	if !strings.Contains(hist, "Elevens adgangsnøgler er nulstillet. (af lærer)") {
		t.Fatalf("history lacks the reset as a sentence:\n%s", hist)
	}
	if regexp.MustCompile(`\b[a-z]+\.[a-z_]+\b`).MatchString(strings.ReplaceAll(hist, "kl.", "")) {
		t.Fatalf("history shows a raw key:\n%s", hist)
	}
}
