package main

import (
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/idp"
	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
)

// chromium returns the path of a Chromium binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("ELEVID_CHROMIUM"), "chromium", "/usr/bin/chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Unavailable(t, "chromium", "chromium is not installed (apt-get install chromium)")
	return ""
}

// cdp runs actions with their own timeout; the browser context itself has
// none, since a deadline there would stop the whole browser.
func cdp(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func jsEval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// TestChromiumWithdrawalSignsOutDemoPlatform walks the withdrawal in a
// real headless Chromium (CDP virtual authenticator holding the pupil's
// passkey): the pupil signs in to the demo platform, the guardian
// withdraws on the guardian page, and the demo platform's next page says
// it was signed out by ElevID (its back-channel logout arrived from the
// queue worker).
func TestChromiumWithdrawalSignsOutDemoPlatform(t *testing.T) {
	bin := chromium(t)
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
	demo := mustOK[school.Platform](t)(st.PlatformByClientID(ctx, idp.DemoClientID))
	// A teacher's enrolment code for Ida (her guardian consented in the
	// demo seeding).
	code, _, err := e.w.flows.IssueCode(ctx, enrolment.Actor{ID: "system", Role: school.RoleSchoolAdmin, SchoolID: sch.ID}, ida.ID)
	if err != nil {
		t.Fatal(err)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	sctx, scancel := context.WithTimeout(bctx, 15*time.Second)
	defer scancel()
	off := false
	if _, err := chromedp.Call(sctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{EnableUI: &off}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	if _, err := chromedp.Call(sctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
			Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	}); err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	// Ida enrols her passkey in the browser.
	cdp(t, bctx, "open /enrol",
		chromedp.Navigate(e.base+"/enrol?code="+code),
		chromedp.WaitVisible(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.Click(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-create")),
	)
	// The page's script (deferred) must have attached its handler before
	// the click, or the button would submit the form without a passkey.
	for end := time.Now().Add(10 * time.Second); !jsEval[bool](t, bctx, `document.readyState === "complete"`); {
		if time.Now().After(end) {
			t.Fatal("the enrolment page never finished loading")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cdp(t, bctx, "register the passkey", chromedp.SetValue(chromedp.CSS("#label"), "Chromium"), chromedp.Click(chromedp.CSS("#enrol-create")))
	for end := time.Now().Add(30 * time.Second); !jsEval[bool](t, bctx, `document.getElementById("enrol-done") !== null`); {
		if time.Now().After(end) {
			t.Fatalf("enrolment did not finish; the page shows:\n%s", jsEval[string](t, bctx, `document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The pupil signs in to the demo platform through ElevID.
	cdp(t, bctx, "open the demo platform", chromedp.Navigate(e.base+"/demo/platform/login"), chromedp.WaitReady(chromedp.CSS("body")))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && jsEval[bool](t, bctx, `location.pathname === "/login"`) {
		time.Sleep(100 * time.Millisecond)
	}
	if jsEval[bool](t, bctx, `location.pathname === "/login"`) {
		cdp(t, bctx, "click the login button", chromedp.Click(chromedp.CSS("#login-button")))
	}
	cdp(t, bctx, "reach the demo platform signed in", chromedp.WaitVisible(chromedp.CSS("#demo-logout")))
	if txt := jsEval[string](t, bctx, `document.body.innerText`); !strings.Contains(txt, "Ida") {
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
		cdp(t, bctx, "reload the demo platform", chromedp.Navigate(e.base+"/demo/platform"), chromedp.WaitReady(chromedp.CSS("body")))
		signedOut = jsEval[bool](t, bctx, `document.getElementById("signed-out-by-elevid") !== null`)
		if !signedOut {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !signedOut {
		t.Fatalf("the demo platform never said it was signed out; it shows:\n%s", jsEval[string](t, bctx, `document.body.innerText`))
	}
	if txt := jsEval[string](t, bctx, `document.body.innerText`); strings.Contains(txt, "demo-p1") || jsEval[bool](t, bctx, `document.getElementById("demo-logout") !== null`) {
		t.Fatalf("still signed in after the withdrawal:\n%s", txt)
	}
	if left := mustOK[[]school.LogoutNotice](t)(st.ListLogouts(ctx)); len(left) != 0 {
		t.Fatalf("logout notices not delivered: %+v", left)
	}
}
