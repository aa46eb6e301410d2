package console_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/internal/chromiumtest"
)

// outputDir is where browser tests write screenshots: test-output/ at the
// repository root (git-ignored), or ELEVID_TEST_OUTPUT.
func outputDir(t *testing.T) string {
	dir := os.Getenv("ELEVID_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join("..", "test-output")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browserSignIn signs m in to the console at base in the browser, with
// password and TOTP (in a fresh TOTP step), and waits for the console.
func (f *fixture) browserSignIn(b *chromiumtest.Browser, base string, m member) {
	f.t.Helper()
	f.clock.Advance(30 * time.Second)
	b.Step("sign in with password and TOTP",
		chromedp.Navigate(base+"/console/login"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), m.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), m.Password),
		chromedp.SendKeys(chromedp.CSS("#code"), f.code(m)),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".console-nav")),
	)
}

// TestChromiumTeacherPrintsSheet: a teacher signs in with password and
// TOTP in a real browser, starts enrolment for their class, and the print
// view of the enrolment sheet is captured as a screenshot (print media).
func TestChromiumTeacherPrintsSheet(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")

	b := chromiumtest.Start(t, chromedp.WindowSize(1024, 1400))
	f.browserSignIn(b, base, f.A.Teacher)
	classLink := `a[href="/console/schools/` + f.A.School.ID + `/classes/` + f.A.Class.ID + `"]`
	b.Step("open the class",
		chromedp.WaitVisible(chromedp.CSS(classLink)),
		chromedp.Click(chromedp.CSS(classLink)),
		chromedp.WaitVisible(chromedp.CSS("#start-enrolment")),
	)
	b.Step("start enrolment and open the print view",
		chromedp.Click(chromedp.CSS("#start-enrolment")),
		chromedp.WaitVisible(chromedp.CSS(".enrol-card")),
	)
	code := chromiumtest.Get(b, chromedp.Text(chromedp.CSS(".enrol-card .code-big")))
	title := chromiumtest.Get(b, chromedp.Title())
	if !regexp.MustCompile(`^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$`).MatchString(strings.TrimSpace(code)) {
		t.Fatalf("sheet code %q", code)
	}
	ctx, cancel2 := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel2()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		t.Fatal(err)
	}
	navShown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!matchMedia("print").matches || document.querySelector(".console-nav").getClientRects().length > 0`))
	if err != nil {
		t.Fatal(err)
	}
	if navShown {
		m, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`matchMedia("print").matches + " " + document.querySelector(".console-nav").getClientRects().length + " " + getComputedStyle(document.querySelector(".no-print")).display`))
		t.Errorf("the navigation is printed: %s", m)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(outputDir(t), "console-enrolment-sheet.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	t.Logf("enrolment sheet (%s, %d bytes): %s", title, len(png), abs)
}
