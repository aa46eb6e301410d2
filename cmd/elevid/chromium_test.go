package main

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/internal/chromiumtest"
	"github.com/elevid/elevid/internal/demoplatform"
	"github.com/elevid/elevid/school"
)

// TestChromiumWithdrawalSignsOutDemoPlatform walks the withdrawal in a
// real headless Chromium (CDP virtual authenticator holding the pupil's
// passkey): the pupil signs in to the demo platform, the guardian
// withdraws on the guardian page, and the demo platform's next page says
// it was signed out by ElevID (its back-channel logout arrived from the
// queue worker).
func TestChromiumWithdrawalSignsOutDemoPlatform(t *testing.T) {
	e := newE2EMode(t, true)
	ctx := context.Background()
	st := e.a.store
	sch := mustOK[school.School](t)(st.SchoolByCode(ctx, "demo"))
	var ida school.Pupil
	for _, p := range mustOK[[]school.Pupil](t)(st.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID})) {
		if p.ExternalID == "demo-p1" {
			ida = p
		}
	}
	if ida.ID == "" {
		t.Fatal("demo pupil demo-p1 not seeded")
	}
	demo := mustOK[school.Platform](t)(st.PlatformByClientID(ctx, demoplatform.ClientID))
	// A teacher's enrolment code for Ida (her guardian consented in the
	// demo seeding).
	code, _, err := e.w.flows.IssueCode(ctx, enrolment.Actor{ID: "system", Role: school.RoleSchoolAdmin, SchoolID: sch.ID}, ida.ID)
	if err != nil {
		t.Fatal(err)
	}

	b := chromiumtest.Start(t)
	b.Authenticator(true)
	// Ida enrols her passkey in the browser.
	b.OpenEnrolment(e.base, code)
	// The page's script (deferred) must have attached its handler before
	// the click, or the button would submit the form without a passkey.
	for end := time.Now().Add(10 * time.Second); !chromiumtest.Eval[bool](b, `document.readyState === "complete"`); {
		if time.Now().After(end) {
			t.Fatal("the enrolment page never finished loading")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Step("register the passkey", chromedp.SetValue(chromedp.CSS("#label"), "Chromium"), chromedp.Click(chromedp.CSS("#enrol-create")))
	for end := time.Now().Add(30 * time.Second); !chromiumtest.Eval[bool](b, `document.getElementById("enrol-done") !== null`); {
		if time.Now().After(end) {
			t.Fatalf("enrolment did not finish; the page shows:\n%s", chromiumtest.Eval[string](b, `document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The pupil signs in to the demo platform through ElevID.
	b.Step("open the demo platform", chromedp.Navigate(e.base+"/demo/platform/login"), chromedp.WaitReady(chromedp.CSS("body")))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && chromiumtest.Eval[bool](b, `location.pathname === "/login"`) {
		time.Sleep(100 * time.Millisecond)
	}
	if chromiumtest.Eval[bool](b, `location.pathname === "/login"`) {
		b.Step("click the login button", chromedp.Click(chromedp.CSS("#login-button")))
	}
	b.Step("reach the demo platform signed in", chromedp.WaitVisible(chromedp.CSS("#demo-logout")))
	if txt := chromiumtest.Eval[string](b, `document.body.innerText`); !strings.Contains(txt, "Ida") {
		t.Fatalf("demo platform shows:\n%s", txt)
	}

	// The guardian withdraws on the guardian page (a magic-link session).
	token := base64.RawURLEncoding.EncodeToString(school.NewSecret(32))
	mustOK[school.GuardianLink](t)(st.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash(token), Kind: school.LinkGuardian,
		GuardianID: ida.GuardianIDs[0], SchoolID: sch.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	g := e.client()
	if status, _, _ := g.postForm("/guardian/login/"+token, url.Values{}); status/100 != 3 {
		t.Fatalf("guardian sign-in: %d", status)
	}
	if status, body, _ := g.postForm("/guardian/withdraw", url.Values{"pupil": {ida.ID}, "platform": {demo.ID}, "confirm": {"yes"}}); status != 303 {
		t.Fatalf("withdraw: %d %s", status, body)
	}

	// The demo platform's next page load: signed out by ElevID.
	signedOut := false
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && !signedOut; {
		b.Step("reload the demo platform", chromedp.Navigate(e.base+"/demo/platform"), chromedp.WaitReady(chromedp.CSS("body")))
		signedOut = chromiumtest.Eval[bool](b, `document.getElementById("signed-out-by-elevid") !== null`)
		if !signedOut {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !signedOut {
		t.Fatalf("the demo platform never said it was signed out; it shows:\n%s", chromiumtest.Eval[string](b, `document.body.innerText`))
	}
	if txt := chromiumtest.Eval[string](b, `document.body.innerText`); strings.Contains(txt, "demo-p1") || chromiumtest.Eval[bool](b, `document.getElementById("demo-logout") !== null`) {
		t.Fatalf("still signed in after the withdrawal:\n%s", txt)
	}
	if left := mustOK[[]school.LogoutNotice](t)(st.ListLogouts(ctx)); len(left) != 0 {
		t.Fatalf("logout notices not delivered: %+v", left)
	}
}
