package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

var codeRE = regexp.MustCompile(`class="code-big">([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})<`)

// Re-printing a class sheet keeps the unused codes valid (no new card,
// the page says so) unless the teacher chooses to replace them, and then
// the page says the old ones stopped working.
func TestReprintKeepsCodesUnlessReplaced(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ck := f.signIn(f.A.Teacher)
	enrol := func(form url.Values) string {
		t.Helper()
		rec := f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/classes/" + f.A.Class.ID + "/enrol", cookie: ck, form: form})
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("enrol: %d", rec.Code)
		}
		return f.do(req{method: "GET", path: rec.Header().Get("Location"), cookie: ck}).Body.String()
	}
	first := codeRE.FindStringSubmatch(enrol(url.Values{}))
	if first == nil {
		t.Fatal("first sheet has no code")
	}
	norm, _ := enrolment.Normalize(first[1])
	second := enrol(url.Values{})
	if codeRE.MatchString(second) || !strings.Contains(second, `id="sheet-kept"`) || !strings.Contains(second, f.A.Pupil.GivenName) {
		t.Fatalf("re-print should keep the code handed out and say so:\n%s", second)
	}
	if _, err := f.st.EnrolmentCodeByHash(ctx, enrolment.Hash(f.sealer, norm)); err != nil {
		t.Fatalf("the first code stopped working after a re-print: %v", err)
	}
	third := enrol(url.Values{"replace": {"1"}})
	if !codeRE.MatchString(third) || !strings.Contains(third, `id="sheet-replaced"`) {
		t.Fatalf("replace should print a new code and say the old one stopped:\n%s", third)
	}
	if _, err := f.st.EnrolmentCodeByHash(ctx, enrolment.Hash(f.sealer, norm)); err == nil {
		t.Fatal("the replaced code still works")
	}
}

// The class view tells the teacher where each pupil stands: a guardian's
// "no" shows as declined, a pupil with a passkey as enrolled.
func TestClassViewShowsDeclinedAndEnrolled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ck := f.signIn(f.A.Teacher)
	g := f.A.Pupil.GuardianIDs[0]
	declined, err := f.st.CreatePupil(ctx, school.Pupil{SchoolID: f.A.School.ID, GivenName: "Dorte", FamilyName: "Nej", ClassIDs: []string{f.A.Class.ID},
		GuardianIDs: []string{g}, Status: school.PupilActive})
	f.must(err)
	_, err = f.st.PutEnrolment(ctx, school.Enrolment{PupilID: declined.ID, State: school.EnrolmentDenied, Rule: school.ConsentAny})
	f.must(err)
	_, err = f.st.AddCredential(ctx, school.Credential{ID: []byte("cred-anna-0001"), Owner: school.PupilOwner(f.A.Pupil.ID), SchoolID: f.A.School.ID, PublicKey: []byte("pk"), Label: "telefon"})
	f.must(err)
	body := f.do(req{method: "GET", path: "/console/schools/" + f.A.School.ID + "/classes/" + f.A.Class.ID, cookie: ck}).Body.String()
	if !strings.Contains(body, `standing-declined`) || !strings.Contains(body, `standing-enrolled`) {
		t.Fatalf("class view:\n%s", body)
	}
}
