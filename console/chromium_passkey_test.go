package console_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/internal/chromiumtest"
	"github.com/elevid/elevid/school"
)

// TestChromiumStaffPasskey drives console-passkey.js in a real headless
// Chromium with the CDP virtual authenticator (CTAP2, internal, resident
// keys, user verification): a teacher signs in with password and TOTP,
// adds a passkey on "My account", signs out, and signs in again with
// "Sign in with a passkey" alone.
func TestChromiumStaffPasskey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	f := newFixture(t, func(o *console.Options) {
		o.Passkey = passkey.Config{RPID: "localhost", Origins: []string{base}}
	})
	srv := &http.Server{Handler: f.h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	b := chromiumtest.Start(t)
	b.Authenticator(true)

	m := f.A.Teacher
	f.browserSignIn(b, base, m)
	b.Step("add a passkey",
		chromedp.Navigate(base+"/console/account"),
		chromedp.WaitVisible(chromedp.CSS("#passkey-register button[type=submit]")),
		chromedp.SendKeys(chromedp.CSS("#passkey-label"), "Chromium"),
		chromedp.Click(chromedp.CSS("#passkey-register button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#passkeys .notice")),
	)
	creds, err := f.st.ListCredentials(context.Background(), school.StaffOwner(m.ID), false)
	if err != nil || len(creds) != 1 || creds[0].Label != "Chromium" {
		t.Fatalf("stored staff credentials = %+v, %v", creds, err)
	}
	b.Step("sign out and in with the passkey",
		chromedp.Click(chromedp.CSS(`.console-nav form[action="/console/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#passkey-login button[type=submit]")),
		chromedp.Click(chromedp.CSS("#passkey-login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".console-nav")),
	)
	sessions, err := f.st.ListSessions(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range sessions {
		found = found || (string(s.CredentialID) == string(creds[0].ID) && s.ACR == "mfa")
	}
	if !found {
		t.Fatalf("no passkey session among %+v", sessions)
	}
}
