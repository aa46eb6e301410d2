package enrolment_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

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

// step runs actions with their own timeout; the browser context itself
// has none, since a deadline there would stop the whole browser.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

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

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// TestChromiumEnrolAndLogin drives a real headless Chromium with the CDP
// virtual authenticator (CTAP2, internal, resident keys, user
// verification): enrolment with a code, then a username-less login.
func TestChromiumEnrolAndLogin(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, onSQLite)
	code := e.issue(e.pupil)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// Start the browser without a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
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

	// Enrolment: the QR address, the code form, the confirmation, the passkey.
	step(t, ctx, "open /enrol",
		chromedp.Navigate(e.origin+"/enrol?code="+code),
		chromedp.WaitVisible(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.Click(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-create")),
	)
	if who := eval[string](t, ctx, `document.getElementById("enrol-who").textContent`); !strings.Contains(who, "Ida") || !strings.Contains(who, "Demoskolen") {
		t.Fatalf("confirmation shows %q", who)
	}
	step(t, ctx, "register the passkey",
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
	step(t, ctx, "open /login", chromedp.Navigate(e.origin+"/login?return_to=/me"),
		chromedp.WaitReady(chromedp.CSS("body")))
	step(t, ctx, "reach /me (conditional mediation signs in without a click)", chromedp.WaitVisible(chromedp.CSS("#me-hello")))
	if via := eval[string](t, ctx, `sessionStorage.getItem("elevid.passkeyLogin") || ""`); via != "conditional" {
		t.Fatalf("signed in via %q, want conditional mediation (passkey autofill)", via)
	}
	if hello := eval[string](t, ctx, `document.getElementById("me-hello").textContent`); !strings.Contains(hello, "Ida") {
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
	if eval[string](t, ctx, `document.cookie`) != "" {
		t.Fatal("session cookie readable from script")
	}
	_ = school.SessionPupil
}

// TestChromiumPasskeyWaitHintAndCancel: when the authenticator never
// answers (no user presence), the enrol page shows a cancel button at
// once and a hint after a while; cancel aborts the WebAuthn call and
// returns to the start, and a second try works.
func TestChromiumPasskeyWaitHintAndCancel(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, onSQLite)
	code := e.issue(e.pupil)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
	defer scancel()
	off := false
	if _, err := chromedp.Call(sctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{EnableUI: &off}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	// No automatic presence: the authenticator waits for a touch that
	// never comes.
	added, err := chromedp.Call(sctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
			Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: false,
		},
	})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	step(t, ctx, "open the confirmation",
		chromedp.Navigate(e.origin+"/enrol?code="+code),
		chromedp.Click(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-create")),
	)
	step(t, ctx, "start and wait", chromedp.Click(chromedp.CSS("#enrol-create")), chromedp.WaitVisible(chromedp.CSS("#passkey-cancel")))
	if eval[bool](t, ctx, `!document.getElementById("passkey-hint").hidden`) {
		t.Fatal("the hint shows at once")
	}
	step(t, ctx, "the hint after 8 s", chromedp.WaitVisible(chromedp.CSS("#passkey-hint")))
	if txt := eval[string](t, ctx, `document.getElementById("passkey-hint").textContent`); !strings.Contains(txt, "Nothing happening?") && !strings.Contains(txt, "Sker der ikke noget?") {
		t.Fatalf("hint = %q", txt)
	}
	step(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#passkey-cancel")), chromedp.WaitNotVisible(chromedp.CSS("#passkey-hint")))
	if st := eval[string](t, ctx, `document.getElementById("passkey-status").textContent + "|" + document.getElementById("passkey-error").hidden + "|" + document.getElementById("passkey-cancel").hidden`); st != "|true|true" {
		t.Fatalf("after cancel (status|error hidden|cancel hidden) = %q", st)
	}
	// Back at the start: with a device that answers, the same button works.
	if _, err := chromedp.Call(sctx, cdpwebauthn.SetAutomaticPresenceSimulation, cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: added.AuthenticatorID, Enabled: true}); err != nil {
		t.Fatalf("presence on: %v", err)
	}
	step(t, ctx, "register after cancelling", chromedp.Click(chromedp.CSS("#enrol-create")), chromedp.WaitVisible(chromedp.CSS("#enrol-done")))
	if creds := e.credentials(e.pupil); len(creds) != 1 {
		t.Fatalf("%d credentials after cancel and retry", len(creds))
	}
}
