package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/school"
)

// A teacher's passkey reset in the console takes the path production
// takes (guardian.Service as the Resetter): the pupil's passkeys are
// revoked, a new code is printed, and the guardians are told by mail.
func TestResetGoesThroughTheConsentService(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g, err := f.st.CreateGuardian(ctx, school.Guardian{SchoolID: f.A.School.ID, Name: "Mor", Email: "mor@example.dk"})
	f.must(err)
	pu, err := f.st.CreatePupil(ctx, school.Pupil{SchoolID: f.A.School.ID, GivenName: "Karla", FamilyName: "Testesen",
		BirthDate: time.Date(2012, 1, 2, 0, 0, 0, 0, time.UTC), ClassIDs: []string{f.A.Class.ID}, GuardianIDs: []string{g.ID}, Status: school.PupilActive})
	f.must(err)
	f.consent(pu.ID, g.ID)
	_, err = f.st.AddCredential(ctx, school.Credential{ID: []byte("karla-phone"), Owner: school.PupilOwner(pu.ID), SchoolID: f.A.School.ID, PublicKey: []byte("k")})
	f.must(err)

	ck := f.signIn(f.A.Teacher)
	f.reauth(f.A.Teacher, ck)
	rec := f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/pupils/" + pu.ID + "/reset", cookie: ck,
		form: url.Values{"purpose": {"lost_device"}, "confirm": {"yes"}}})
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "/sheets/") {
		t.Fatalf("reset: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	creds, err := f.st.ListCredentials(ctx, school.PupilOwner(pu.ID), true)
	f.must(err)
	if len(creds) != 1 || creds[0].RevokedAt.IsZero() {
		t.Fatalf("passkeys after the reset: %+v", creds)
	}
	mails, err := f.st.ListMail(ctx, school.MailFilter{SchoolID: f.A.School.ID})
	f.must(err)
	var told bool
	for _, m := range mails {
		told = told || m.Kind == guardian.KindPasskeyReset && m.To == g.Email
	}
	if !told {
		t.Fatalf("the guardian was not told of the reset; outbox: %+v", mails)
	}
}
