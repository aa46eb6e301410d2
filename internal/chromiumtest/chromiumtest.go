// Package chromiumtest starts a headless Chromium for the browser tests
// of cmd/elevid, enrolment, guardian and console (chromedp over CDP), with
// the WebAuthn virtual authenticator the passkey tests use. A test
// without Chromium installed is skipped with a message (or, in CI, fails:
// internal/testenv).
//
// Tests only: it imports package testing, so production packages must
// never import it (.ci/deps.sh checks that the binary does not depend on
// package testing).
package chromiumtest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/internal/testenv"
)

// StepTimeout bounds one Step, EvalTimeout one Eval. The browser's own
// context has no deadline, since a deadline there would stop the whole
// browser.
const (
	StepTimeout = 20 * time.Second
	EvalTimeout = 10 * time.Second
)

// Binary returns the path of a Chromium binary (ELEVID_CHROMIUM, then
// chromium, /usr/bin/chromium or chromium-browser), or skips t.
func Binary(t testing.TB) string {
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

// Browser is one test's headless Chromium.
type Browser struct {
	t testing.TB
	// Ctx is the browser's context (no deadline); chromedp actions run on
	// it, through Step or with a Timeout context.
	Ctx     context.Context
	enabled bool // WebAuthn.enable was called
}

// Start starts a headless Chromium with a fresh profile, or skips t when
// none is installed; extra options (e.g. chromedp.WindowSize) are added
// to the common ones. The browser stops when the test ends.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Binary(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}, extra...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // start the browser without a deadline
		t.Fatalf("starting chromium: %v", err)
	}
	return &Browser{t: t, Ctx: ctx}
}

// Timeout returns a context of the browser that ends after StepTimeout
// (or with the test).
func (b *Browser) Timeout() context.Context {
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	b.t.Cleanup(cancel)
	return ctx
}

// Step runs actions within StepTimeout; on failure it fails the test
// with what, the error and the start of the page's HTML.
func (b *Browser) Step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		hctx, hcancel := context.WithTimeout(b.Ctx, EvalTimeout)
		defer hcancel()
		html, _ := chromedp.Run(hctx, chromedp.Evaluate[string]("document.body ? document.body.outerHTML : ''"))
		b.t.Fatalf("%s: %v\n%.3000s", what, err, html)
	}
}

// Eval evaluates js in the page within EvalTimeout, failing the test on
// an error.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	return Get(b, chromedp.Evaluate[T](js))
}

// Get runs an action that yields a value (chromedp.Evaluate,
// chromedp.Text …) within EvalTimeout, failing the test on an error.
func Get[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, EvalTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
	return v
}

// Authenticator adds a CDP virtual authenticator as a phone or laptop
// has one (CTAP 2.1, internal transport, resident keys, user
// verification done); with presence false it waits for a touch that never
// comes (SetPresence turns it on). It returns the authenticator's id.
func (b *Browser) Authenticator(presence bool) cdpwebauthn.AuthenticatorID {
	b.t.Helper()
	ctx := b.Timeout()
	if !b.enabled {
		off := false
		if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{EnableUI: &off}); err != nil {
			b.t.Fatalf("WebAuthn.enable: %v", err)
		}
		b.enabled = true
	}
	added, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
			Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: presence,
		},
	})
	if err != nil {
		b.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return added.AuthenticatorID
}

// OpenEnrolment opens ElevID's /enrol page at origin with code (as the
// QR code's address does), submits the code and waits for the button that
// creates the passkey.
func (b *Browser) OpenEnrolment(origin, code string) {
	b.t.Helper()
	b.Step("open /enrol with the code",
		chromedp.Navigate(origin+"/enrol?code="+code),
		chromedp.WaitVisible(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.Click(chromedp.CSS("#enrol-code-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-create")),
	)
}

// SetPresence turns the automatic user presence of authenticator id on
// or off.
func (b *Browser) SetPresence(id cdpwebauthn.AuthenticatorID, on bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.Timeout(), cdpwebauthn.SetAutomaticPresenceSimulation,
		cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: id, Enabled: on}); err != nil {
		b.t.Fatalf("WebAuthn.setAutomaticPresenceSimulation: %v", err)
	}
}
