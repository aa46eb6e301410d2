package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/internal/chromiumtest"
	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
)

// TestChromiumDemoTour walks the README's demo tour in headless Chromium,
// in Danish and in English, as a newcomer would: the teacher signs in
// with password and TOTP, starts enrolment and prints; the guardian reads
// the mail at /demo/mail and consents through its link; the teacher
// prints again; the pupil enrols with the code, signs in to the demo
// platform (through passkey autofill: the test fails if the page fell
// back to the button) and looks at /me; the guardian asks for a link,
// withdraws consent and confirms. Every page is screenshot at 1280 and at
// 375 px (device-metrics emulation) into test-output/tour/, must not be
// wider than the viewport, and must have no axe-core violations.
func TestChromiumDemoTour(t *testing.T) {
	axePath := os.Getenv("ELEVID_AXE")
	if axePath == "" {
		axePath = "../../.ci/axe/node_modules/axe-core/axe.min.js"
	}
	axe, err := os.ReadFile(axePath)
	if err != nil {
		testenv.Unavailable(t, "axe", "axe-core is not installed: (cd .ci/axe && npm ci), or set ELEVID_AXE to axe.min.js")
	}
	out := filepath.Join("..", "..", "test-output", "tour")
	for _, lang := range []string{"da", "en"} {
		t.Run(lang, func(t *testing.T) {
			tr := newTour(t, string(axe), filepath.Join(out, lang), lang)
			tr.walk()
		})
	}
}

// tour is one walk: a demo server on a fresh database and one browser.
type tour struct {
	t    *testing.T
	a    *app
	base string
	ctx  context.Context
	axe  string
	out  string
	lang string
	n    int // pages seen
}

func newTour(t *testing.T, axe, out, lang string) *tour {
	ctx := context.Background()
	srv := httptest.NewUnstartedServer(nil)
	base := fmt.Sprintf("http://localhost:%d", srv.Listener.Addr().(*net.TCPAddr).Port)
	env := map[string]string{"ELEVID_ISSUER": base, "ELEVID_DATABASE": filepath.Join(t.TempDir(), "elevid.db")}
	cfg, err := LoadConfig("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := openTestApp(t, cfg, slog.New(slog.DiscardHandler))
	if err := seedDemo(ctx, a, io.Discard); err != nil {
		t.Fatal(err)
	}
	h, w, err := newHandler(ctx, a, true)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, job := range w.background {
		wg.Go(func() { job(bg) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })

	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	b := chromiumtest.Start(t)
	b.Authenticator(true)
	tr := &tour{t: t, a: a, base: base, ctx: b.Ctx, axe: axe, out: out, lang: lang}
	return tr
}

func (tr *tour) timeout() context.Context {
	ctx, cancel := context.WithTimeout(tr.ctx, 20*time.Second)
	tr.t.Cleanup(cancel)
	return ctx
}

// do runs browser actions with their own timeout.
func (tr *tour) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tr.t.Helper()
	if err := chromedp.Do(tr.timeout(), actions...); err != nil {
		tr.t.Fatalf("%s: %v", what, err)
	}
}

func tourEval[T any](tr *tour, js string) T {
	tr.t.Helper()
	v, err := chromedp.Run(tr.timeout(), chromedp.Evaluate[T](js))
	if err != nil {
		tr.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// open navigates to path (relative to the server) and waits for sel.
func (tr *tour) open(path, sel string) {
	tr.t.Helper()
	tr.do("open "+path, chromedp.Navigate(tr.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// click clicks sel and waits for next.
func (tr *tour) click(sel, next string) {
	tr.t.Helper()
	tr.do("click "+sel, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(next)))
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// check screenshots the current page at 1280 and 375 px, fails when it
// is wider than the viewport, and runs axe-core on it.
func (tr *tour) check(name string) {
	t := tr.t
	t.Helper()
	tr.n++
	start := time.Now()
	defer func() { t.Logf("%s checked in %s", name, time.Since(start).Round(time.Millisecond)) }()
	if lang := tourEval[string](tr, `document.documentElement.lang`); lang != tr.lang {
		t.Errorf("%s: page language %q, want %q", name, lang, tr.lang)
	}
	for _, w := range []int64{375, 1280} {
		opts := []chromedp.EmulateViewportOption{}
		if w < 500 {
			opts = append(opts, chromedp.EmulateMobile)
		}
		tr.do("viewport", chromedp.EmulateViewport(w, 800, opts...), chromedp.Sleep(150*time.Millisecond))
		scroll := tourEval[int64](tr, `Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)`)
		// Compare with the emulated width itself: a mobile viewport widens
		// itself (zooms out) to fit a too-wide page, so innerWidth grows too.
		if scroll > w {
			wide := tourEval[string](tr, `Array.from(document.querySelectorAll("body *")).filter(e => e.getBoundingClientRect().right > `+fmt.Sprint(w)+` + 0.5).slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : "") + " right=" + Math.round(e.getBoundingClientRect().right)).join(", ")`)
			t.Errorf("%s at %d px: the page is %d px wide (scrolls sideways); too wide: %s", name, w, scroll, wide)
		}
		png, err := chromedp.Run(tr.timeout(), chromedp.FullScreenshot(80))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(tr.out, fmt.Sprintf("%02d-%s-%d.jpg", tr.n, name, w))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !tourEval[bool](tr, `typeof window.axe !== "undefined"`) {
		if _, err := chromedp.Run(tr.timeout(), chromedp.Evaluate[bool](tr.axe+";true")); err != nil {
			t.Fatalf("inject axe-core: %v", err)
		}
	}
	res, err := chromedp.Run(tr.timeout(), chromedp.Evaluate[string](
		`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe on %s: %v", name, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(res), &vs); err != nil {
		t.Fatalf("axe result: %v", err)
	}
	for _, v := range vs {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target...))
		}
		t.Errorf("%s: axe %s (%s): %s at %s", name, v.ID, v.Impact, v.Help, strings.Join(where, "; "))
	}
}

func (tr *tour) walk() {
	t, ctx, st := tr.t, context.Background(), tr.a.store
	sch, err := st.SchoolByCode(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	classes, err := st.ListClasses(ctx, sch.ID)
	if err != nil || len(classes) != 1 {
		t.Fatalf("demo classes: %v %v", classes, err)
	}
	classPath := "/console/schools/" + sch.ID + "/classes/" + classes[0].ID

	// The language, as a newcomer chooses it.
	tr.open("/lang/"+tr.lang+"?return=/", "main")
	tr.check("home")
	tr.open("/privacy", "main h1")
	tr.check("privacy")
	tr.open("/login", "#login-form")
	tr.check("login")

	// 1. Teacher: password and TOTP, class 7A, start enrolment.
	tr.open("/console", "#login-form")
	tr.check("console-login")
	code, err := console.TOTPCode(demoTeacherTOTP, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr.do("teacher signs in",
		chromedp.SendKeys(chromedp.CSS("#username"), "laerer"),
		chromedp.SendKeys(chromedp.CSS("#password"), demoTeacherPassword),
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".console-nav")),
	)
	tr.check("console")
	tr.open(classPath, "#start-enrolment")
	tr.check("console-class")
	tr.click("#start-enrolment", ".enrol-card")
	tr.check("console-sheet")
	if n := tourEval[int](tr, `document.querySelectorAll(".enrol-card").length`); n != 2 {
		t.Fatalf("first sheet has %d cards, want 2 (Ida and Noah)", n)
	}

	// 2. Guardian: the consent mail at /demo/mail, its link, yes.
	tr.open("/demo/mail", "main h1")
	tr.check("demo-mail")
	link := tourEval[string](tr, `(() => { for (const a of document.querySelectorAll(".mail-item")) {
		if (a.textContent.includes("sofie.jensen@example.dk")) { const l = a.querySelector('a[href*="/consent/"]'); if (l) return l.href; } } return ""; })()`)
	if !strings.HasPrefix(link, tr.base+"/consent/") {
		t.Fatalf("no working consent link for Freja's guardian in /demo/mail (got %q)", link)
	}
	tr.do("open the consent link", chromedp.Click(chromedp.CSS(`a[href="`+strings.TrimPrefix(link, "")+`"]`)), chromedp.WaitVisible(chromedp.CSS("#consent-form")))
	tr.check("consent")
	tr.click("#grant-all", "#consent-done")
	tr.check("consent-done")

	// The teacher prints again: Freja's card now has a code.
	tr.open(classPath, "#start-enrolment")
	tr.click("#start-enrolment", ".enrol-card")
	tr.check("console-sheet-again")
	enrolCode := tourEval[string](tr, `(() => { for (const c of document.querySelectorAll(".enrol-card")) {
		if (c.querySelector("h2").textContent.includes("Freja")) return c.querySelector(".code-big").textContent; } return ""; })()`)
	if enrolCode == "" {
		t.Fatal("Freja has no card after the consent")
	}

	// 3. Pupil: the code, the name, the passkey.
	tr.open("/enrol", "#enrol-code-form")
	tr.check("enrol")
	tr.do("type the code", chromedp.SendKeys(chromedp.CSS("#code"), enrolCode),
		chromedp.Click(chromedp.CSS("#enrol-code-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#enrol-create")))
	tr.check("enrol-confirm")
	tr.click("#enrol-create", "#enrol-done")
	tr.check("enrol-done")

	// 4. Platform: the demo platform signs in over OpenID Connect; the
	// login page signs in by passkey autofill (conditional mediation).
	tr.open("/demo/platform", "main h1")
	tr.check("demo-platform")
	tr.do("sign in at the platform", chromedp.Click(chromedp.CSS(`a[href="/demo/platform/login"]`)),
		chromedp.WaitVisible(chromedp.CSS("main table")))
	if via := tourEval[string](tr, `sessionStorage.getItem("elevid.passkeyLogin") || ""`); via != "conditional" {
		t.Fatalf("the pupil signed in via %q, want conditional mediation (passkey autofill)", via)
	}
	tr.check("demo-platform-signed-in")

	// 5. Transparency: /me, /me/consents, the timeline.
	tr.open("/me", "#me-hello")
	tr.check("me")
	tr.open("/me/consents", "main h1")
	tr.check("me-consents")
	var freja school.Pupil
	pupils, _ := st.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID})
	for _, p := range pupils {
		if p.GivenName == "Freja" {
			freja = p
		}
	}
	tr.open("/rights/"+freja.ID+"/timeline", "main h1")
	tr.check("timeline")

	// The guardian asks for a link, opens it from /demo/mail, withdraws.
	tr.open("/guardian", "#guardian")
	if tourEval[bool](tr, `!document.getElementById("link-form")`) { // the consent left a session: sign out first
		tr.click(`form[action="/guardian/logout"] button`, "#link-form")
	}
	tr.check("guardian-ask")
	tr.do("ask for a link", chromedp.SendKeys(chromedp.CSS("#email"), "sofie.jensen@example.dk"),
		chromedp.Click(chromedp.CSS("#link-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#guardian-message")))
	tr.check("guardian-sent")
	tr.open("/demo/mail", "main h1")
	glink := tourEval[string](tr, `(() => { const l = document.querySelector('.mail-item a[href*="/guardian/"]'); return l ? l.href : ""; })()`)
	if glink == "" {
		t.Fatal("no guardian link in /demo/mail")
	}
	tr.do("open the guardian link", chromedp.Navigate(glink), chromedp.WaitVisible(chromedp.CSS("#guardian-continue")))
	tr.check("guardian-link")
	tr.click("#guardian-continue", "#child-"+freja.ID)
	tr.check("guardian")
	tr.click("#child-"+freja.ID+" button.withdraw", "#withdraw-confirm")
	tr.check("withdraw-confirm")
	tr.click("#withdraw-yes", "#guardian-message")
	tr.check("withdrawn")
	if ok, err := st.ReleaseAllowed(ctx, freja.ID, tourDemoPlatform(t, tr)); err != nil || ok {
		t.Fatalf("after the withdrawal releases are allowed: %v %v", ok, err)
	}
	t.Logf("%s: %d pages checked at 1280 and 375 px with axe-core; screenshots in %s", tr.lang, tr.n, tr.out)
}

func tourDemoPlatform(t *testing.T, tr *tour) string {
	pfs, err := tr.a.store.ListPlatforms(context.Background())
	if err != nil || len(pfs) == 0 {
		t.Fatalf("platforms: %v", err)
	}
	return pfs[0].ID
}
