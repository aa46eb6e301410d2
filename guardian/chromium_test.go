package guardian_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
)

// TestChromiumConsentPage drives a real headless Chromium through the
// guardian's path: open the mailed link, approve, see the release log.
// The page works without JavaScript; Chromium checks it renders and
// submits under the real CSP and cross-origin protection.
func TestChromiumConsentPage(t *testing.T) {
	bin := testenv.Binary(t, "chromium", "chromium")
	e := newEnv(t)
	link := e.start()

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
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(js string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}

	step("open the consent link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#consent-form")))
	page := text(`document.querySelector('#consent').innerText`)
	just := "Læreren ser elevens fornavn ved afleveringer"
	if text(`document.documentElement.lang`) == "en" {
		just = "The teacher sees the pupil's first name on hand-ins"
	}
	for _, want := range []string{"Demo Skole", "MatematikFessor", just} {
		if !strings.Contains(page, want) {
			t.Fatalf("consent page lacks %q:\n%s", want, page)
		}
	}
	step("approve all", chromedp.Click(chromedp.CSS("#grant-all")), chromedp.WaitVisible(chromedp.CSS("#consent-done")))
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("approval in the browser did not allow releases")
	}
	must[school.Release](t)(e.st.AddRelease(e.ctx, school.Release{PupilID: e.pupil.ID, PlatformID: e.pf.ID, PlatformName: e.pf.Name,
		Protocol: school.ProtocolOIDC, Via: "id_token", Claims: []string{"sub", "given_name"}}))
	step("open the guardian page", chromedp.Click(chromedp.CSS("#to-guardian")), chromedp.WaitVisible(chromedp.CSS("#releases-"+e.pupil.ID+" .release")))
	log := text(`document.querySelector('#releases-` + e.pupil.ID + `').innerText`)
	if !strings.Contains(log, "MatematikFessor") || !(strings.Contains(log, "fornavn") || strings.Contains(log, "first name")) || strings.Contains(log, "given_name") {
		t.Fatalf("release log:\n%s", log)
	}
	step("withdraw", chromedp.Click(chromedp.CSS("#withdraw-all-"+e.pupil.ID)), chromedp.WaitVisible(chromedp.CSS("#withdraw-confirm")))
	if q := text(`document.querySelector('#withdraw-confirm').innerText`); !strings.Contains(q, "MatematikFessor") {
		t.Fatalf("the confirmation does not name the platform:\n%s", q)
	}
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("the question alone withdrew the consent")
	}
	step("confirm the withdrawal", chromedp.Click(chromedp.CSS("#withdraw-yes")), chromedp.WaitVisible(chromedp.CSS("#guardian-message")))
	if must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("withdrawal in the browser left releases allowed")
	}
}
