package enrolment_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// classOf adds a class with n consented pupils and issues each a code,
// as one printed class sheet.
func (e *env) classOf(name string, n int) (pupils []school.Pupil, codes []string) {
	ctx := context.Background()
	cl := must[school.Class](e.t)(e.st.CreateClass(ctx, school.Class{SchoolID: e.school.ID, ExternalID: name, Name: name}))
	for i := range n {
		p := must[school.Pupil](e.t)(e.st.CreatePupil(ctx, school.Pupil{SchoolID: e.school.ID, GivenName: fmt.Sprintf("%s-%d", name, i), FamilyName: "Test", ClassIDs: []string{cl.ID}}))
		must[school.Enrolment](e.t)(e.st.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, State: school.EnrolmentConsented, Rule: school.ConsentNone, StartedBy: "test"}))
		pupils = append(pupils, p)
		codes = append(codes, e.issue(p))
	}
	return pupils, codes
}

// typo changes the last (secret) character of a code.
func typo(code string, i int) string {
	last := code[len(code)-1]
	for _, c := range enrolment.Alphabet[i%len(enrolment.Alphabet):] + enrolment.Alphabet {
		if byte(c) != last {
			return code[:len(code)-1] + string(c)
		}
	}
	panic("no typo")
}

// wrongSecret is code with a different secret part (same locator).
func wrongSecret(code string, i int) string {
	norm, _ := enrolment.Normalize(code)
	a, b := string(enrolment.Alphabet[i%32]), string(enrolment.Alphabet[(i/32)%32])
	return enrolment.Format(norm[:enrolment.LocatorLength] + strings.Repeat(a, 4) + strings.Repeat(b, 4))
}

func TestClassBehindOneAddressAllEnrol(t *testing.T) {
	e := newEnv(t, onSQLite)
	_, codes := e.classOf("7A", 30)
	// 30 pupils behind the school's one address: each first types a wrong
	// code (half a typo of their own, half something else), then the
	// right one, and registers a passkey.
	for i, code := range codes {
		b := e.browser("da")
		b.ip = "198.51.100.10"
		wrong := typo(code, i)
		if i%2 == 1 {
			wrong = fmt.Sprintf("ZZZZ-ZZZZ-ZZ%c%c", enrolment.Alphabet[i%32], enrolment.Alphabet[(i+5)%32])
		}
		if status, body, _ := b.form("/enrol", url.Values{"code": {wrong}}); status != 400 {
			t.Fatalf("pupil %d: wrong code = %d %s", i, status, body)
		}
		if status, body, _ := b.form("/enrol", url.Values{"code": {code}}); status != 200 {
			t.Fatalf("pupil %d: right code after a typo = %d %s", i, status, body)
		}
		b.enrol(e.device(), code, "")
	}
	// A pupil typing a used code (or an old card) is not a guesser: the
	// class keeps going.
	b := e.browser("en")
	b.ip = "198.51.100.10"
	for range 150 {
		if status, body, _ := b.form("/enrol", url.Values{"code": {codes[0]}}); status != 400 || !strings.Contains(body, "already been used") {
			t.Fatalf("used code = %d %s", status, body)
		}
	}
	p, fresh := e.classOf("7B", 1)
	old := fresh[0]
	newer := e.issue(p[0]) // the teacher printed a new card
	for range 150 {
		if status, body, _ := b.form("/enrol", url.Values{"code": {old}}); status != 400 || !strings.Contains(body, "newer one") {
			t.Fatalf("replaced code = %d %s", status, body)
		}
	}
	if status, body, _ := b.form("/enrol", url.Values{"code": {newer}}); status != 200 {
		t.Fatalf("after used and replaced codes = %d %s", status, body)
	}
}

func TestGuessingOneAddressIsStopped(t *testing.T) {
	e := newEnv(t, onSQLite)
	_, codes := e.classOf("7A", 2)
	b := e.browser("en")
	b.ip = "203.0.113.66"
	for i := range 100 {
		if status, _, _ := b.form("/enrol", url.Values{"code": {fmt.Sprintf("Q%03d-ZZZZ-ZZZZ", i)}}); status != 400 {
			t.Fatalf("wrong code %d = %d", i, status)
		}
	}
	// Blocked now, even for a right code, on both endpoints.
	status, body, _ := b.form("/enrol", url.Values{"code": {codes[0]}})
	if status != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong codes") {
		t.Fatalf("101st attempt = %d %s", status, body)
	}
	if status, _ := b.json("/enrol/begin", map[string]string{"code": codes[0]}); status != http.StatusTooManyRequests {
		t.Fatalf("begin while blocked = %d", status)
	}
	// Another address is not affected.
	other := e.browser("en")
	other.ip = "198.51.100.10"
	if status, _, _ := other.form("/enrol", url.Values{"code": {codes[0]}}); status != 200 {
		t.Fatalf("other address = %d", status)
	}
	// The block ends with the window.
	e.clock.Advance(16 * time.Minute)
	if status, body, _ := b.form("/enrol", url.Values{"code": {codes[1]}}); status != 200 {
		t.Fatalf("after the window = %d %s", status, body)
	}
}

func TestGuessingOneCodeIsStoppedFromAnyAddress(t *testing.T) {
	e := newEnv(t, onSQLite)
	_, codes := e.classOf("7A", 3)
	// An attacker who read the start of one card guesses the rest, each
	// try from a new address.
	for i := range 10 {
		b := e.browser("en")
		b.ip = fmt.Sprintf("203.0.113.%d", i+1)
		if status, body, _ := b.form("/enrol", url.Values{"code": {wrongSecret(codes[0], i)}}); status != 400 {
			t.Fatalf("guess %d = %d %s", i, status, body)
		}
	}
	b := e.browser("en")
	b.ip = "203.0.113.200"
	if status, _, _ := b.form("/enrol", url.Values{"code": {codes[0]}}); status != http.StatusTooManyRequests {
		t.Fatalf("the guessed code after 10 wrong tries = %d", status)
	}
	// The classmates' codes still work.
	if status, _, _ := b.form("/enrol", url.Values{"code": {codes[1]}}); status != 200 {
		t.Fatalf("classmate = %d", status)
	}
	e.clock.Advance(16 * time.Minute)
	if status, _, _ := b.form("/enrol", url.Values{"code": {codes[0]}}); status != 200 {
		t.Fatalf("after the window = %d", status)
	}
}

func TestGuessingOneSheetIsStoppedFromAnyAddress(t *testing.T) {
	e := newEnv(t, onSQLite)
	_, codes := e.classOf("7A", 30)
	_, other := e.classOf("7B", 1)
	// A photo of the class sheet: the attacker knows every card's start
	// and guesses a few secrets for each, from rotating addresses.
	n := 0
	for round := 0; n < 60; round++ {
		for _, c := range codes {
			if n == 60 {
				break
			}
			b := e.browser("en")
			b.ip = fmt.Sprintf("203.0.%d.%d", n/200, n%200+1)
			if status, body, _ := b.form("/enrol", url.Values{"code": {wrongSecret(c, round)}}); status != 400 {
				t.Fatalf("guess %d = %d %s", n, status, body)
			}
			n++
		}
	}
	b := e.browser("en")
	b.ip = "198.51.100.99"
	if status, _, _ := b.form("/enrol", url.Values{"code": {codes[29]}}); status != http.StatusTooManyRequests {
		t.Fatalf("a code of the sheet after 60 guesses on it = %d", status)
	}
	if status, _, _ := b.form("/enrol", url.Values{"code": {other[0]}}); status != 200 {
		t.Fatalf("another class's code = %d", status)
	}
}

func TestForgedForwardedForIsIgnoredWithoutTrustedProxy(t *testing.T) {
	e := newEnv(t, onSQLite)
	e.srv.Config.Handler = e.enrMux() // no trusted proxy in front
	_, codes := e.classOf("7A", 1)
	for i := range 100 {
		b := e.browser("en")
		b.ip = fmt.Sprintf("203.0.113.%d", i+1) // forged, ignored
		if status, _, _ := b.form("/enrol", url.Values{"code": {"ZZZZ-ZZZZ-ZZZZ"}}); status != 400 {
			t.Fatalf("guess %d = %d", i, status)
		}
	}
	b := e.browser("en")
	b.ip = "198.51.100.1"
	if status, _, _ := b.form("/enrol", url.Values{"code": {codes[0]}}); status != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", status)
	}
}

func TestLoginBeginLimitedPerClient(t *testing.T) {
	e := newEnv(t, onSQLite)
	count := func() int {
		var n int
		if err := e.st.(interface {
			DB() *sql.DB
		}).DB().QueryRow(`SELECT COUNT(*) FROM webauthn_ceremonies`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	b := e.browser("en")
	b.ip = "203.0.113.7"
	for i := range 3000 {
		if status, res := b.json("/login/begin", map[string]string{"mediation": "conditional"}); status != 200 {
			t.Fatalf("begin %d = %d %v", i, status, res)
		}
	}
	before := count()
	for range 50 {
		if status, _ := b.json("/login/begin", map[string]string{}); status != http.StatusTooManyRequests {
			t.Fatalf("begin past the limit = %d", status)
		}
	}
	if after := count(); after != before {
		t.Fatalf("refused begins wrote %d ceremonies", after-before)
	}
	// The class next door (another address) signs in as usual.
	other := e.browser("en")
	other.ip = "198.51.100.10"
	if status, _ := other.json("/login/begin", map[string]string{}); status != 200 {
		t.Fatalf("other address = %d", status)
	}
	e.clock.Advance(16 * time.Minute)
	if status, _ := b.json("/login/begin", map[string]string{}); status != 200 {
		t.Fatalf("after the window = %d", status)
	}
}
