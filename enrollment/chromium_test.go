package enrollment_test

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

	// Username-less login. Headless Chromium resolves conditional
	// mediation by itself; if it has not within a moment, use the button.
	// The markup is checked on the page as served: in the browser,
	// conditional mediation may already have signed in and left /login
	// before a script could look (it resolves within milliseconds).
	page := loginPage(t, e.origin+"/login?return_to=/me")
	if !strings.Contains(page, `autocomplete="username webauthn"`) || !strings.Contains(page, `id="login-button"`) {
		t.Fatal("login page lacks the passkey autofill input or the button")
	}
	step(t, ctx, "open /login", chromedp.Navigate(e.origin+"/login?return_to=/me"),
		chromedp.WaitReady(chromedp.CSS("body")))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && eval[bool](t, ctx, `location.pathname === "/login"`) {
		time.Sleep(100 * time.Millisecond)
	}
	if eval[bool](t, ctx, `location.pathname === "/login"`) {
		t.Log("conditional mediation did not complete: logging in with the button")
		step(t, ctx, "click the login button", chromedp.Click(chromedp.CSS("#login-button")))
	} else {
		t.Log("logged in through conditional mediation (passkey autofill)")
	}
	step(t, ctx, "reach /me", chromedp.WaitVisible(chromedp.CSS("#me-hello")))
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
