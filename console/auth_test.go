package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/school"
)

const wrongDA = "Brugernavn, adgangskode eller kode er forkert."

func TestPasswordHash(t *testing.T) {
	h := console.HashPassword("correct horse", testArgon2)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=256,t=1,p=1$") {
		t.Fatalf("PHC = %q", h)
	}
	if !console.VerifyPassword(h, "correct horse") || console.VerifyPassword(h, "correct horsE") || console.VerifyPassword("", "") ||
		console.VerifyPassword("$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "x") {
		t.Fatal("verification wrong")
	}
	if h2 := console.HashPassword("correct horse", testArgon2); h2 == h {
		t.Fatal("salt not random")
	}
	if p := console.NewPassword(); len(p) != 23 {
		t.Fatalf("one-time password %q", p)
	}
}

func TestGenericMessageAndAudit(t *testing.T) {
	f := newFixture(t)
	m := f.A.Teacher
	f.clock.Advance(30 * time.Second)
	cases := map[string]url.Values{
		"unknown user":   {"username": {"nobody"}, "password": {m.Password}, "code": {f.code(m)}},
		"wrong password": {"username": {m.Username}, "password": {"nope"}, "code": {f.code(m)}},
		"wrong code":     {"username": {m.Username}, "password": {m.Password}, "code": {"000000"}},
		"no code":        {"username": {m.Username}, "password": {m.Password}},
	}
	for name, form := range cases {
		rec := f.do(req{method: "POST", path: "/console/login", form: form})
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), wrongDA) {
			t.Errorf("%s: %d, body lacks the generic message", name, rec.Code)
		}
		if strings.Contains(rec.Body.String(), `value="`+form.Get("password")+`"`) {
			t.Errorf("%s: the password is echoed", name)
		}
		if !strings.Contains(rec.Body.String(), `value="`+form.Get("username")+`"`) {
			t.Errorf("%s: the username is not kept", name)
		}
	}
	list, err := f.st.ListAudit(context.Background(), school.AuditFilter{SchoolID: f.A.School.ID, SubjectID: m.ID})
	f.must(err)
	n := 0
	for _, e := range list {
		if e.Action == "staff.signin_failed" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d failure audit entries, want 3", n)
	}
}

func TestBackoffCannotLockOutTheTeacher(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.A.Teacher
	// An attacker elsewhere (many addresses) guesses the teacher's
	// password: after 5 failures the account backs off, 1 s doubling.
	attacker := func(i int) string { return fmt.Sprintf("203.0.113.%d:1", i+1) }
	for i := range 5 {
		if rec := f.login(m.Username, "wrong", "123456", attacker(i)); rec.Code != 401 {
			t.Fatalf("attempt %d: %d", i, rec.Code)
		}
	}
	a, err := f.st.GetStaffAuth(ctx, m.ID)
	f.must(err)
	if a.Failures != 5 || !a.LockedUntil.Equal(f.clock.Now().Add(time.Second)) {
		t.Fatalf("after 5 failures: %+v", a)
	}
	for i := 5; i < 12; i++ {
		f.clock.Advance(a.LockedUntil.Sub(f.clock.Now()))
		f.login(m.Username, "wrong", "123456", attacker(i))
		a, _ = f.st.GetStaffAuth(ctx, m.ID)
	}
	if wait := a.LockedUntil.Sub(f.clock.Now()); wait != time.Minute {
		t.Fatalf("backoff after 12 failures = %s, want the 1m cap", wait)
	}
	// During the wait even the right password and code are refused, with
	// the time to wait; hammering does not lengthen the wait.
	for i := range 50 {
		f.login(m.Username, "wrong", "123456", attacker(20+i))
	}
	f.clock.Advance(30 * time.Second)
	rec := f.login(m.Username, m.Password, f.code(m), "198.51.100.5:1")
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "Prøv igen om 30 sekunder") || rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("sign-in during the wait: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// After the window the teacher signs in.
	f.clock.Advance(30 * time.Second)
	if rec := f.login(m.Username, m.Password, f.code(m), "198.51.100.5:1"); rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in after the wait: %d", rec.Code)
	}
	if a, _ := f.st.GetStaffAuth(ctx, m.ID); a.Failures != 0 || !a.LockedUntil.IsZero() {
		t.Fatalf("success did not reset: %+v", a)
	}
	// One address guessing one account is stopped for the window after 10.
	const ip = "203.0.113.250:9"
	for i := range 10 {
		f.clock.Advance(time.Minute + time.Second)
		f.login(m.Username, "wrong"+fmt.Sprint(i), "123456", ip)
	}
	f.clock.Advance(time.Minute + time.Second)
	if rec := f.login(m.Username, m.Password, f.code(m), ip); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("11th try from one address: %d", rec.Code)
	}
	if rec := f.login(m.Username, m.Password, f.code(m), "198.51.100.5:1"); rec.Code != http.StatusSeeOther {
		t.Fatalf("the teacher from the school: %d", rec.Code)
	}
	// Unknown usernames are limited too.
	for range 5 {
		f.login("ghost", "x", "123456", "")
	}
	if rec := f.login("ghost", "x", "123456", ""); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("unknown user after 5 failures: %d", rec.Code)
	}
}

func TestClientRateLimit(t *testing.T) {
	f := newFixture(t)
	const ip = "198.51.100.7:5555"
	for i := range 50 {
		f.login("someone"+fmt.Sprint(i), "x", "", ip)
	}
	m := f.A.Admin
	f.clock.Advance(30 * time.Second)
	if rec := f.login(m.Username, m.Password, f.code(m), ip); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("blocked client: %d", rec.Code)
	}
	if rec := f.login(m.Username, m.Password, f.code(m), "203.0.113.9:1"); rec.Code != http.StatusSeeOther {
		t.Fatalf("other client: %d", rec.Code)
	}
	f.clock.Advance(15 * time.Minute)
	f.clock.Advance(30 * time.Second)
	if rec := f.login(m.Username, m.Password, f.code(m), ip); rec.Code != http.StatusSeeOther {
		t.Fatalf("after the window: %d", rec.Code)
	}
}

func TestTOTPCodeSingleUse(t *testing.T) {
	f := newFixture(t)
	m := f.A.Teacher
	f.clock.Advance(30 * time.Second)
	code := f.code(m)
	if rec := f.login(m.Username, m.Password, code, ""); rec.Code != http.StatusSeeOther {
		t.Fatalf("first use: %d", rec.Code)
	}
	if rec := f.login(m.Username, m.Password, code, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("reuse in the same window: %d", rec.Code)
	}
	// The previous step's code is also refused once a later one was used.
	prev, err := console.TOTPCode(m.Secret, f.clock.Now().Add(-30*time.Second))
	f.must(err)
	if rec := f.login(m.Username, m.Password, prev, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("older code: %d", rec.Code)
	}
	f.clock.Advance(30 * time.Second)
	if rec := f.login(m.Username, m.Password, f.code(m), ""); rec.Code != http.StatusSeeOther {
		t.Fatalf("next window: %d", rec.Code)
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	f := newFixture(t)
	ck := f.signIn(f.A.Teacher)
	rec := f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/classes/" + f.A.Class.ID + "/enrol", cookie: ck, crossSite: true, form: url.Values{}})
	if rec.Code != http.StatusForbidden {
		t.Fatalf("cross-site enrol: %d", rec.Code)
	}
	if pending, _ := f.st.PendingEnrolmentCode(context.Background(), f.A.Pupil.ID); pending {
		t.Fatal("a cross-site POST issued a code")
	}
	m := f.A.Admin
	f.clock.Advance(30 * time.Second)
	rec = f.do(req{method: "POST", path: "/console/login", crossSite: true, form: url.Values{"username": {m.Username}, "password": {m.Password}, "code": {f.code(m)}}})
	if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("cross-site login: %d", rec.Code)
	}
	// The same POST from the site itself works.
	rec = f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/classes/" + f.A.Class.ID + "/enrol", cookie: ck, form: url.Values{}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("same-site enrol: %d", rec.Code)
	}
}

func TestInviteTOTPEnrolmentAndRecovery(t *testing.T) {
	f := newFixture(t)
	admin := f.signIn(f.A.Admin)
	// A form with errors is shown again with what was typed.
	rec := f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/staff", cookie: admin,
		form: url.Values{"username": {"Bad Name!"}, "name": {"Karen Lærer"}, "email": {"not-mail"}, "role": {"teacher"}, "class": {f.A.Class.ID}}})
	body := rec.Body.String()
	if rec.Code != 400 || !strings.Contains(body, `value="Karen Lærer"`) || !strings.Contains(body, "username-error") || !strings.Contains(body, "email-error") {
		t.Fatalf("invalid invite: %d\n%s", rec.Code, body)
	}
	rec = f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/staff", cookie: admin,
		form: url.Values{"username": {"karen"}, "name": {"Karen Lærer"}, "role": {"teacher"}, "class": {f.A.Class.ID}}})
	pw := regexp.MustCompile(`id="one-time-password">([^<]+)<`).FindStringSubmatch(rec.Body.String())
	if rec.Code != 200 || pw == nil {
		t.Fatalf("invite: %d", rec.Code)
	}
	// First sign-in: password only, then TOTP must be set up.
	rec = f.login("karen", pw[1], "", "")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/console/totp" {
		t.Fatalf("first sign-in: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	ck := rec.Result().Cookies()[0]
	if rec := f.do(req{method: "GET", path: "/console/schools/" + f.A.School.ID, cookie: ck}); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/console/totp" {
		t.Fatalf("console before TOTP: %d", rec.Code)
	}
	rec = f.do(req{method: "GET", path: "/console/totp", cookie: ck})
	secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(rec.Body.String())
	if secret == nil || !strings.Contains(rec.Body.String(), `src="data:image/png;base64,`) {
		t.Fatalf("TOTP page: %d\n%s", rec.Code, rec.Body.String())
	}
	if rec := f.do(req{method: "POST", path: "/console/totp", cookie: ck, form: url.Values{"code": {"000000"}}}); rec.Code != 400 {
		t.Fatalf("wrong first code: %d", rec.Code)
	}
	code, err := console.TOTPCode(secret[1], f.clock.Now())
	f.must(err)
	rec = f.do(req{method: "POST", path: "/console/totp", cookie: ck, form: url.Values{"code": {code}}})
	codes := regexp.MustCompile(`<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>`).FindAllStringSubmatch(rec.Body.String(), -1)
	if rec.Code != 200 || len(codes) != console.RecoveryCodeCount {
		t.Fatalf("TOTP confirm: %d, %d recovery codes", rec.Code, len(codes))
	}
	full := rec.Result().Cookies()[0]
	// Issue 15, item 5: the one-time password must be changed first:
	// every other console route leads to the password change.
	classPath := "/console/schools/" + f.A.School.ID + "/classes/" + f.A.Class.ID
	for _, p := range []string{classPath, "/console/schools/" + f.A.School.ID, "/console/schools/" + f.A.School.ID + "/staff"} {
		if rec := f.do(req{method: "GET", path: p, cookie: full}); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/console/account" {
			t.Fatalf("%s before the password change: %d %s", p, rec.Code, rec.Header().Get("Location"))
		}
	}
	if rec := f.do(req{method: "GET", path: "/console/account", cookie: full}); rec.Code != 200 || !strings.Contains(rec.Body.String(), "engangsadgangskode") {
		t.Fatalf("account page before the change: %d", rec.Code)
	}
	if rec := f.do(req{method: "POST", path: "/console/account/password", cookie: full,
		form: url.Values{"current": {pw[1]}, "new": {"karens egen adgangskode"}, "repeat": {"karens egen adgangskode"}}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("password change: %d", rec.Code)
	}
	if rec := f.do(req{method: "GET", path: classPath, cookie: full}); rec.Code != 200 {
		t.Fatalf("console after TOTP and the password change: %d", rec.Code)
	}
	// The one-time password no longer signs in.
	if rec := f.login("karen", pw[1], "", ""); rec.Code != 401 {
		t.Fatalf("one-time password after the change: %d", rec.Code)
	}
	pw[1] = "karens egen adgangskode"
	// The enrolment code of the TOTP setup cannot be used to sign in again.
	if rec := f.login("karen", pw[1], code, ""); rec.Code != 401 {
		t.Fatalf("setup code reused: %d", rec.Code)
	}
	// A recovery code works once.
	if rec := f.login("karen", pw[1], codes[0][1], ""); rec.Code != http.StatusSeeOther {
		t.Fatalf("recovery code: %d", rec.Code)
	}
	if rec := f.login("karen", pw[1], codes[0][1], ""); rec.Code != 401 {
		t.Fatalf("recovery code reused: %d", rec.Code)
	}
	a, err := f.st.GetStaffAuth(context.Background(), mustStaff(f, "karen").ID)
	f.must(err)
	if len(a.RecoveryHashes) != console.RecoveryCodeCount-1 {
		t.Fatalf("%d recovery codes left", len(a.RecoveryHashes))
	}
	// Issue 15, item 4: the stored form is keyed. A copy of the database
	// and the old plain hash of a code (as an offline search computes it)
	// find nothing.
	plain := sha256.Sum256([]byte("elevid-recovery:" + strings.ReplaceAll(codes[1][1], "-", "")))
	for _, h := range a.RecoveryHashes {
		if bytes.Equal(h, plain[:]) {
			t.Fatal("a recovery code is stored as a plain SHA-256")
		}
	}
}

func mustStaff(f *fixture, username string) school.Staff {
	s, err := f.st.StaffByUsername(context.Background(), username)
	f.must(err)
	return s
}

func TestReauthForDirectoryCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.A.Admin
	ck := f.signIn(m)
	path := "/console/schools/" + f.A.School.ID + "/directory"
	form := url.Values{"url": {"ldaps://ldap.alpha.example.dk"}, "preset": {"openldap"}, "pupil_base": {"ou=elever,dc=alpha"}, "bind_dn": {"cn=elevid,dc=alpha"},
		"bind_password": {"hunter2"}, "page_size": {"500"}, "max_delete_percent": {"10"}, "max_deletions": {"500"}, "interval_hours": {"6"}}
	rec := f.do(req{method: "POST", path: path, cookie: ck, form: form})
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `value="ou=elever,dc=alpha"`) || strings.Contains(rec.Body.String(), "hunter2") {
		t.Fatalf("save without re-authentication: %d", rec.Code)
	}
	// Field errors keep what was typed.
	bad := url.Values{"url": {"http://x"}, "preset": {"openldap"}, "pupil_base": {""}, "bind_dn": {"cn=typed"}, "page_size": {"0"}, "max_delete_percent": {"10"}, "max_deletions": {"5"}, "interval_hours": {"1"}}
	rec = f.do(req{method: "POST", path: path, cookie: ck, form: bad})
	if b := rec.Body.String(); rec.Code != 400 || !strings.Contains(b, "url-error") || !strings.Contains(b, "pupil_base-error") || !strings.Contains(b, `value="cn=typed"`) {
		t.Fatalf("invalid form: %d", rec.Code)
	}
	f.clock.Advance(30 * time.Second)
	if rec := f.do(req{method: "POST", path: "/console/reauth", cookie: ck, form: url.Values{"password": {m.Password}, "code": {"111111"}, "return": {path}}}); rec.Code != 401 {
		t.Fatalf("re-authentication with a wrong code: %d", rec.Code)
	}
	rec = f.do(req{method: "POST", path: "/console/reauth", cookie: ck, form: url.Values{"password": {m.Password}, "code": {f.code(m)}, "return": {path}}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != path {
		t.Fatalf("re-authentication: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	if rec := f.do(req{method: "POST", path: path, cookie: ck, form: form}); rec.Code != http.StatusSeeOther {
		t.Fatalf("save after re-authentication: %d\n%s", rec.Code, rec.Body.String())
	}
	src, err := f.st.GetDirectorySource(ctx, f.A.School.ID)
	f.must(err)
	if pw, err := f.sealer.Open(src.BindPassword, "ldap:"+f.A.School.ID); err != nil || string(pw) != "hunter2" || src.Interval != 6*time.Hour {
		t.Fatalf("stored source: %+v %v", src, err)
	}
	// Five minutes later, re-authentication is needed again.
	f.clock.Advance(5 * time.Minute)
	if rec := f.do(req{method: "POST", path: path, cookie: ck, form: form}); rec.Code != http.StatusForbidden {
		t.Fatalf("save after the window: %d", rec.Code)
	}
	// Test connection reports the failure without the password.
	rec = f.do(req{method: "POST", path: path + "/test", cookie: ck, form: url.Values{}})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `id="test-result"`) || strings.Contains(rec.Body.String(), "hunter2") {
		t.Fatalf("test connection: %d", rec.Code)
	}
}

func TestStaffSessionTimeouts(t *testing.T) {
	f := newFixture(t)
	ck := f.signIn(f.A.Teacher)
	p := "/console/schools/" + f.A.School.ID
	if rec := f.do(req{method: "GET", path: p, cookie: ck}); rec.Code != 200 {
		t.Fatalf("fresh session: %d", rec.Code)
	}
	f.clock.Advance(31 * time.Minute)
	if rec := f.do(req{method: "GET", path: p, cookie: ck}); rec.Code != http.StatusSeeOther {
		t.Fatalf("idle session: %d", rec.Code)
	}
	// Logout ends the session.
	ck = f.signIn(f.A.Teacher)
	f.do(req{method: "POST", path: "/console/logout", cookie: ck, form: url.Values{}})
	if rec := f.do(req{method: "GET", path: p, cookie: ck}); rec.Code != http.StatusSeeOther {
		t.Fatalf("after logout: %d", rec.Code)
	}
	// A disabled member's session ends.
	ck = f.signIn(f.A.Teacher)
	_, err := f.st.UpdateStaff(context.Background(), f.A.Teacher.ID, func(s school.Staff) (school.Staff, error) { s.Disabled = true; return s, nil })
	f.must(err)
	if rec := f.do(req{method: "GET", path: p, cookie: ck}); rec.Code != http.StatusSeeOther {
		t.Fatalf("disabled member: %d", rec.Code)
	}
}

func TestEnrolSheetAndReset(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ck := f.signIn(f.A.Teacher)
	rec := f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/classes/" + f.A.Class.ID + "/enrol", cookie: ck, form: url.Values{}})
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusSeeOther || !strings.Contains(loc, "/sheets/") {
		t.Fatalf("enrol: %d %s", rec.Code, loc)
	}
	rec = f.do(req{method: "GET", path: loc, cookie: ck})
	body := rec.Body.String()
	code := regexp.MustCompile(`class="code-big">([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})<`).FindStringSubmatch(body)
	if rec.Code != 200 || code == nil || !strings.Contains(body, f.A.Pupil.GivenName) || !strings.Contains(body, `src="data:image/svg&#43;xml;base64,`) {
		t.Fatalf("sheet: %d\n%s", rec.Code, body)
	}
	if pending, _ := f.st.PendingEnrolmentCode(ctx, f.A.Pupil.ID); !pending {
		t.Fatal("no code stored")
	}
	// The reset form validates and keeps the choice.
	p := "/console/schools/" + f.A.School.ID + "/pupils/" + f.A.Pupil.ID
	rec = f.do(req{method: "POST", path: p + "/reset", cookie: ck, form: url.Values{"purpose": {"lost_device"}}})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `value="lost_device" selected`) {
		t.Fatalf("reset without confirmation: %d", rec.Code)
	}
	f.reauth(f.A.Teacher, ck)
	rec = f.do(req{method: "POST", path: p + "/reset", cookie: ck, form: url.Values{"purpose": {"checked_in_person"}, "confirm": {"yes"}}})
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "/sheets/") {
		t.Fatalf("reset: %d", rec.Code)
	}
	list, err := f.st.ListAudit(ctx, school.AuditFilter{SchoolID: f.A.School.ID, SubjectID: f.A.Pupil.ID})
	f.must(err)
	// The reset (package guardian's, as in production) and its purpose
	// are audited under the teacher.
	var reset, purpose bool
	for _, e := range list {
		reset = reset || e.Action == "passkey.reset" && strings.Contains(e.Detail, `"verified_in_person":true`) && e.ActorID == f.A.Teacher.ID
		purpose = purpose || e.Action == "passkey.reset_purpose" && strings.Contains(e.Detail, "checked_in_person") && e.ActorID == f.A.Teacher.ID
	}
	if !reset || !purpose {
		t.Fatalf("audit of the reset: reset %v, purpose %v in %+v", reset, purpose, list)
	}
	// The audit page verifies the chain.
	admin := f.signIn(f.A.Admin)
	rec = f.do(req{method: "GET", path: "/console/schools/" + f.A.School.ID + "/audit", cookie: admin})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Loggens kæde er kontrolleret og hel.") {
		t.Fatalf("audit page: %d", rec.Code)
	}
	_, err = f.st.DB().Exec(`UPDATE audit_log SET detail = 'tampered' WHERE school_id = $1 AND seq = 1`, f.A.School.ID)
	f.must(err)
	rec = f.do(req{method: "GET", path: "/console/schools/" + f.A.School.ID + "/audit", cookie: admin})
	if !strings.Contains(rec.Body.String(), "BRUDT") {
		t.Fatal("a tampered chain is not reported")
	}
}

// Issue 15, item 5: an invite (one-time) password expires after 7 days,
// with a message that says to ask for a new one; a reset gives a new one.
func TestOneTimePasswordExpires(t *testing.T) {
	f := newFixture(t)
	admin := f.signIn(f.A.Admin)
	rec := f.do(req{method: "POST", path: "/console/schools/" + f.A.School.ID + "/staff", cookie: admin,
		form: url.Values{"username": {"ole"}, "name": {"Ole Lærer"}, "role": {"teacher"}, "class": {f.A.Class.ID}}})
	pw := regexp.MustCompile(`id="one-time-password">([^<]+)<`).FindStringSubmatch(rec.Body.String())
	if rec.Code != 200 || pw == nil {
		t.Fatalf("invite: %d", rec.Code)
	}
	f.clock.Advance(console.OneTimePasswordLifetime + time.Second)
	rec = f.login("ole", pw[1], "", "")
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "engangsadgangskode er udløbet") {
		t.Fatalf("expired one-time password: %d\n%.2000s", rec.Code, rec.Body.String())
	}
	if len(rec.Result().Cookies()) != 0 && rec.Result().Cookies()[0].Value != "" {
		t.Fatal("an expired one-time password started a session")
	}
	// A reset gives a fresh one-time password that signs in (to TOTP setup).
	ole := mustStaff(f, "ole")
	fresh, err := console.ResetStaff(context.Background(), f.st, console.Argon2Params{}, ole.ID, "test", school.RoleOperator)
	f.must(err)
	if ole = mustStaff(f, "ole"); ole.PasswordExpires.IsZero() {
		t.Fatal("a reset password is not marked one-time")
	}
	if rec := f.login("ole", fresh, "", ""); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/console/totp" {
		t.Fatalf("reset password: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

// An operator created without a password file gets a one-time password
// (marked like an invite's); one given in a file is the operator's own.
func TestCreateOperatorOneTimePassword(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := console.CreateOperator(ctx, f.st, f.sealer, "drift1", "Drift En", ""); err != nil {
		t.Fatal(err)
	}
	if st := mustStaff(f, "drift1"); st.PasswordExpires.IsZero() || st.PasswordExpires.After(time.Now().Add(console.OneTimePasswordLifetime)) {
		t.Fatalf("generated operator password expires %v", st.PasswordExpires)
	}
	if _, _, err := console.CreateOperator(ctx, f.st, f.sealer, "drift2", "Drift To", "driftens egen adgangskode"); err != nil {
		t.Fatal(err)
	}
	if st := mustStaff(f, "drift2"); !st.PasswordExpires.IsZero() {
		t.Fatalf("chosen operator password marked one-time until %v", st.PasswordExpires)
	}
}
