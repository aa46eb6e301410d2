package login_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
)

// TestMeForeignSessionRef: signing out another pupil's session from /me
// says nothing changed and changes nothing.
func TestMeForeignSessionRef(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	b := idptest.NewBrowser()
	e.PasskeyLogin(t, b, "/me")
	other, err := e.Store.CreatePupil(ctx, school.Pupil{SchoolID: e.School.ID, ExternalID: "ext-bo", GivenName: "Bo", FamilyName: "Berg", Status: school.PupilActive})
	if err != nil {
		t.Fatal(err)
	}
	now := e.Clock.Now()
	victim, err := e.Store.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: other.ID, SchoolID: e.School.ID,
		ExpiresAt: now.Add(time.Hour), IdleTimeout: time.Hour, AuthTime: now})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.Client.PostForm(e.Server.URL+"/me/sessions/"+victim.Ref+"/revoke", nil)
	if err != nil {
		t.Fatal(err)
	}
	idptest.Body(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/me?err=session" {
		t.Fatalf("foreign ref: %d %q", resp.StatusCode, loc)
	}
	if _, err := e.Store.TouchSession(ctx, victim.ID); err != nil {
		t.Fatalf("the other pupil's session: %v", err)
	}
	resp = b.Get(t, e.Server.URL+"/me?err=session")
	if s := idptest.Body(t, resp); !strings.Contains(s, "nothing was changed") && !strings.Contains(s, "intet er ændret") {
		t.Fatalf("the page does not say nothing changed:\n%.2000s", s)
	}
}
