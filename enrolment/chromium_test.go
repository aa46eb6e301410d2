package enrolment_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/internal/chromiumtest"
	"github.com/elevid/elevid/school"
)

// loginPage fetches url with a plain HTTP client and returns the body.
func loginPage(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// TestChromiumEnrolAndLogin drives a real headless Chromium with the CDP
// virtual authenticator (CTAP2, internal, resident keys, user
// verification): enrolment with a code, then a username-less login.
func TestChromiumEnrolAndLogin(t *testing.T) {
	e := newEnv(t, onSQLite)
	code := e.issue(e.pupil)

	b := chromiumtest.Start(t)
	b.Authenticator(true)

	// Enrolment: the QR address, the code form, the confirmation, the passkey.
	b.OpenEnrolment(e.origin, code)
	if who := chromiumtest.Eval[string](b, `document.getElementById("enrol-who").textContent`); !strings.Contains(who, "Ida") || !strings.Contains(who, "Demoskolen") {
		t.Fatalf("confirmation shows %q", who)
	}
	b.Step("register the passkey",
		chromedp.SetValue(chromedp.CSS("#label"), "Chromium"),
		chromedp.Click(chromedp.CSS("#enrol-create")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-done")),
	)
	creds := e.credentials(e.pupil)
	if len(creds) != 1 || creds[0].Label != "Chromium" || !creds[0].Active() {
		t.Fatalf("stored credentials = %+v", creds)
	}

	// Username-less login through passkey autofill (conditional
	// mediation): headless Chromium resolves it by itself. passkey.js
	// records which path signed in; a login through the button would not
	// prove that autofill works, so it fails the test. The markup is
	// checked on the page as served (the browser may have left /login
	// before a script could look).
	page := loginPage(t, e.origin+"/login?return_to=/me")
	if !strings.Contains(page, `autocomplete="username webauthn"`) || !strings.Contains(page, `id="login-button"`) {
		t.Fatal("login page lacks the passkey autofill input or the button")
	}
	b.Step("open /login", chromedp.Navigate(e.origin+"/login?return_to=/me"),
		chromedp.WaitReady(chromedp.CSS("body")))
	b.Step("reach /me (conditional mediation signs in without a click)", chromedp.WaitVisible(chromedp.CSS("#me-hello")))
	if via := chromiumtest.Eval[string](b, `sessionStorage.getItem("elevid.passkeyLogin") || ""`); via != "conditional" {
		t.Fatalf("signed in via %q, want conditional mediation (passkey autofill)", via)
	}
	if hello := chromiumtest.Eval[string](b, `document.getElementById("me-hello").textContent`); !strings.Contains(hello, "Ida") {
		t.Fatalf("/me says %q", hello)
	}
	sessions, err := e.st.ListSessions(context.Background(), e.pupil.ID)
	if err != nil || len(sessions) != 1 || !sessions[0].UserVerified || !strings.Contains(sessions[0].UserAgent, "Chrom") {
		t.Fatalf("sessions = %+v, %v", sessions, err)
	}
	if c := e.credentials(e.pupil)[0]; c.LastUsedAt.IsZero() {
		t.Fatal("login not recorded on the credential")
	}
	// The cookie is HttpOnly: the page's script cannot read it.
	if chromiumtest.Eval[string](b, `document.cookie`) != "" {
		t.Fatal("session cookie readable from script")
	}
	_ = school.SessionPupil
}

// TestChromiumPasskeyWaitHintAndCancel: when the authenticator never
// answers (no user presence), the enrol page shows a cancel button at
// once and a hint after a while; cancel aborts the WebAuthn call and
// returns to the start, and a second try works.
func TestChromiumPasskeyWaitHintAndCancel(t *testing.T) {
	e := newEnv(t, onSQLite)
	code := e.issue(e.pupil)
	b := chromiumtest.Start(t)
	// No automatic presence: the authenticator waits for a touch that
	// never comes.
	authenticator := b.Authenticator(false)
	b.OpenEnrolment(e.origin, code)
	b.Step("start and wait", chromedp.Click(chromedp.CSS("#enrol-create")), chromedp.WaitVisible(chromedp.CSS("#passkey-cancel")))
	if chromiumtest.Eval[bool](b, `!document.getElementById("passkey-hint").hidden`) {
		t.Fatal("the hint shows at once")
	}
	b.Step("the hint after 8 s", chromedp.WaitVisible(chromedp.CSS("#passkey-hint")))
	if txt := chromiumtest.Eval[string](b, `document.getElementById("passkey-hint").textContent`); !strings.Contains(txt, "Nothing happening?") && !strings.Contains(txt, "Sker der ikke noget?") {
		t.Fatalf("hint = %q", txt)
	}
	b.Step("cancel", chromedp.Click(chromedp.CSS("#passkey-cancel")), chromedp.WaitNotVisible(chromedp.CSS("#passkey-hint")))
	if st := chromiumtest.Eval[string](b, `document.getElementById("passkey-status").textContent + "|" + document.getElementById("passkey-error").hidden + "|" + document.getElementById("passkey-cancel").hidden`); st != "|true|true" {
		t.Fatalf("after cancel (status|error hidden|cancel hidden) = %q", st)
	}
	// Back at the start: with a device that answers, the same button works.
	b.SetPresence(authenticator, true)
	b.Step("register after cancelling", chromedp.Click(chromedp.CSS("#enrol-create")), chromedp.WaitVisible(chromedp.CSS("#enrol-done")))
	if creds := e.credentials(e.pupil); len(creds) != 1 {
		t.Fatalf("%d credentials after cancel and retry", len(creds))
	}
}
