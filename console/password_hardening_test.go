package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestPasswordChangeLimitedAndEndsSessions (issue 15, item 5): the probe
// answered 25 wrong "current password" tries; now the account backs off as
// at sign-in (even the right password waits), and a successful change
// ends the staff member's other sessions but not this one.
func TestPasswordChangeLimitedAndEndsSessions(t *testing.T) {
	f := newFixture(t)
	m := f.A.Teacher
	ck := f.signIn(m)
	change := func(current string) *http.Response {
		rec := f.do(req{method: "POST", path: "/console/account/password", cookie: ck,
			form: url.Values{"current": {current}, "new": {"a brand new long password"}, "repeat": {"a brand new long password"}}})
		return rec.Result()
	}
	codes := []int{}
	for range 25 {
		codes = append(codes, change("wrong guess").StatusCode)
	}
	if codes[0] != http.StatusBadRequest || codes[24] != http.StatusTooManyRequests {
		t.Fatalf("wrong current passwords answered %v", codes)
	}
	// Locked: the right password waits too.
	if got := change(m.Password).StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("right password while locked: %d", got)
	}
	// After the lock (and the idle timeout): two fresh sessions.
	f.clock.Advance(2 * time.Hour)
	other := f.signIn(m) // e.g. a stolen session
	ck = f.signIn(m)
	if res := change(m.Password); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/account?saved=1" {
		t.Fatalf("right password after the lock: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// This session goes on; the other one ended.
	if rec := f.do(req{method: "GET", path: "/console/account", cookie: ck}); rec.Code != 200 {
		t.Fatalf("own session after the change: %d", rec.Code)
	}
	rec := f.do(req{method: "GET", path: "/console/account", cookie: other})
	if rec.Code == 200 || !strings.Contains(rec.Header().Get("Location"), "/console/login") {
		t.Fatalf("other session after the change: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

// TestPasskeyResetNeedsReauthentication (issue 15, item 5): resetting a
// pupil's passkeys prints a new code, so like a directory change it needs
// an explicit re-authentication of this session: a fresh sign-in (a stolen
// cookie may be minutes old) or another session's re-authentication is not
// enough, and the re-authentication lapses after the window.
func TestPasskeyResetNeedsReauthentication(t *testing.T) {
	f := newFixture(t)
	m := f.A.Teacher
	ck := f.signIn(m)
	p := "/console/schools/" + f.A.School.ID + "/pupils/" + f.A.Pupil.ID
	reset := url.Values{"purpose": {"checked_in_person"}, "confirm": {"yes"}}
	refused := func(when string) {
		t.Helper()
		rec := f.do(req{method: "POST", path: p + "/reset", cookie: ck, form: reset})
		if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/console/reauth?") {
			t.Fatalf("reset %s: %d %q", when, rec.Code, rec.Header().Get("Location"))
		}
		if pending, err := f.st.PendingEnrolmentCode(context.Background(), f.A.Pupil.ID); err != nil || pending {
			t.Fatalf("reset %s issued a code (%v)", when, err)
		}
	}
	refused("right after sign-in")
	other := f.signIn(m)
	f.reauth(m, other)
	refused("after another session re-authenticated")
	f.reauth(m, ck)
	f.clock.Advance(6 * time.Minute) // past the window, within the idle timeout
	if rec := f.do(req{method: "GET", path: "/console/account", cookie: ck}); rec.Code != http.StatusOK {
		t.Fatalf("session ended: %d", rec.Code)
	}
	refused("after the window")
	f.reauth(m, ck)
	if rec := f.do(req{method: "POST", path: p + "/reset", cookie: ck, form: reset}); rec.Code != http.StatusSeeOther ||
		!strings.Contains(rec.Header().Get("Location"), "/sheets/") {
		t.Fatalf("reset after re-authentication: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}
