package guardian_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/internal/chromiumtest"
	"github.com/elevid/elevid/school"
)

// TestChromiumConsentPage drives a real headless Chromium through the
// guardian's path: open the mailed link, approve, see the release log.
// The page works without JavaScript; Chromium checks it renders and
// submits under the real CSP and cross-origin protection.
func TestChromiumConsentPage(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	b := chromiumtest.Start(t)

	b.Step("open the consent link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#consent-form")))
	page := chromiumtest.Eval[string](b, `document.querySelector('#consent').innerText`)
	just := "Læreren ser elevens fornavn ved afleveringer"
	if chromiumtest.Eval[string](b, `document.documentElement.lang`) == "en" {
		just = "The teacher sees the pupil's first name on hand-ins"
	}
	for _, want := range []string{"Demo Skole", "MatematikFessor", just} {
		if !strings.Contains(page, want) {
			t.Fatalf("consent page lacks %q:\n%s", want, page)
		}
	}
	b.Step("approve all", chromedp.Click(chromedp.CSS("#grant-all")), chromedp.WaitVisible(chromedp.CSS("#consent-done")))
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("approval in the browser did not allow releases")
	}
	must[school.Release](t)(e.st.AddRelease(e.ctx, school.Release{PupilID: e.pupil.ID, PlatformID: e.pf.ID, PlatformName: e.pf.Name,
		Protocol: school.ProtocolOIDC, Via: "id_token", Claims: []string{"sub", "given_name"}}))
	b.Step("open the guardian page", chromedp.Click(chromedp.CSS("#to-guardian")), chromedp.WaitVisible(chromedp.CSS("#releases-"+e.pupil.ID+" .release")))
	log := chromiumtest.Eval[string](b, `document.querySelector('#releases-`+e.pupil.ID+`').innerText`)
	if !strings.Contains(log, "MatematikFessor") || !(strings.Contains(log, "fornavn") || strings.Contains(log, "first name")) || strings.Contains(log, "given_name") {
		t.Fatalf("release log:\n%s", log)
	}
	b.Step("withdraw", chromedp.Click(chromedp.CSS("#withdraw-all-"+e.pupil.ID)), chromedp.WaitVisible(chromedp.CSS("#withdraw-confirm")))
	if q := chromiumtest.Eval[string](b, `document.querySelector('#withdraw-confirm').innerText`); !strings.Contains(q, "MatematikFessor") {
		t.Fatalf("the confirmation does not name the platform:\n%s", q)
	}
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("the question alone withdrew the consent")
	}
	b.Step("confirm the withdrawal", chromedp.Click(chromedp.CSS("#withdraw-yes")), chromedp.WaitVisible(chromedp.CSS("#guardian-message")))
	if must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("withdrawal in the browser left releases allowed")
	}
}
