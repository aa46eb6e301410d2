package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/internal/webauthntest"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/descope/virtualwebauthn"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/school"
)

// TestEndToEndConsentLoginWithdraw is the "done when" of the consent
// issue, run through the whole assembled server (newHandler with every
// feature and its background jobs) on a fresh SQLite database, with a real
// SMTP server (go-smtp), a virtual authenticator and a go-oidc relying
// party:
//
//	pupil in the roster → a teacher starts enrolment in the console →
//	the guardian gets the consent mail, follows the link and approves →
//	the teacher prints the enrolment code → the pupil registers a passkey
//	at /enrol and logs in at a platform by OIDC (PKCE, ID token, userinfo,
//	refresh token, pairwise sub) → the guardian asks for a link to the
//	guardian's page, sees the release, withdraws consent for the platform →
//	back-channel logout, refresh token dead, new logins refused with
//	access_denied, the pupil's ElevID session revoked; the guardian's
//	timeline shows the release; a teacher's passkey reset tells the
//	guardian and retires the old passkey.
func TestEndToEndConsentLoginWithdraw(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	e := newE2E(t)
	st := e.a.store

	// 1. The roster (as a sync leaves it): school, class, guardian, pupil,
	// a teacher of the class; two OIDC platforms registered by the
	// operator command, one with a back-channel logout endpoint.
	sch := mustOK[school.School](t)(st.CreateSchool(ctx, school.School{Code: "e2e", Name: "Egeskovskolen", Domain: "egeskov.example.dk"}))
	class := mustOK[school.Class](t)(st.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "7A"}))
	guardian := mustOK[school.Guardian](t)(st.CreateGuardian(ctx, school.Guardian{SchoolID: sch.ID, Name: "Mette Holm", Email: "mette.holm@example.dk"}))
	pupil := mustOK[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: sch.ID, ExternalID: "ext-ida", GivenName: "Ida", FamilyName: "Holm",
		BirthDate: time.Now().AddDate(-13, -2, 0).UTC().Truncate(24 * time.Hour), ClassIDs: []string{class.ID},
		GuardianIDs: []string{guardian.ID}, Status: school.PupilActive}))
	teacher := e.staffMember(sch.ID, "anna", "Anna Jensen", school.RoleTeacher, []string{class.ID})

	math := e.registerPlatform("Matematikportalen", "matematik", "https://matematik.example/callback", true,
		"given_name=Læreren ser elevens fornavn ved afleveringer", "groups=Eleven kommer i sin klasses forløb")
	dict := e.registerPlatform("Ordbogen", "ordbogen", "https://ordbogen.example/callback", false,
		"given_name=Hilser på eleven")
	// The school uses both platforms (the operator command activates them).
	for _, id := range []string{"matematik", "ordbogen"} {
		var out bytes.Buffer
		if err := cmdAdmin(ctx, e.a, &out, []string{"platform", "activate", "--school", "e2e", "--platform", id}); err != nil || !strings.Contains(out.String(), "activated") {
			t.Fatalf("platform activate %s: %v\n%s", id, err, out.String())
		}
	}

	// 2. The teacher signs in to the console with password + TOTP and
	// starts the class's enrolment: the pupil waits for consent.
	staff := e.client()
	staff.consoleSignIn(teacher)
	enrolClass := "/console/schools/" + sch.ID + "/classes/" + class.ID + "/enrol"
	sheet := staff.followPost(enrolClass, url.Values{})
	if !strings.Contains(sheet, "Ida Holm") || strings.Contains(sheet, `class="code-big"`) {
		t.Fatalf("first sheet should list Ida as waiting for consent, without a code:\n%s", sheet)
	}
	e.wantFlow(pupil.ID, school.EnrolmentAwaitingConsent)

	// 3. The background sender delivers the consent mail over SMTP; the
	// guardian opens the link and approves every platform.
	consentMail := e.sink.wait(t, guardian.Email, "/consent/")
	link := regexp.MustCompile(regexp.QuoteMeta(e.base) + `/consent/[A-Za-z0-9_-]{43}`).FindString(consentMail.text)
	if link == "" || !strings.Contains(consentMail.html, link) {
		t.Fatalf("no consent link to %s in the mail:\n%s", e.base, consentMail.text)
	}
	parentBrowser := e.client()
	status, page, _ := parentBrowser.get(link)
	if status != 200 || !strings.Contains(page, "Matematikportalen") || !strings.Contains(page, "Læreren ser elevens fornavn ved afleveringer") ||
		!strings.Contains(page, "Egeskovskolen") || !strings.Contains(page, "Ordbogen") {
		t.Fatalf("consent page: %d\n%s", status, page)
	}
	if status, page, _ := parentBrowser.postForm(strings.TrimPrefix(link, e.base), url.Values{"action": {"grant_all"}}); status != 200 {
		t.Fatalf("approve: %d\n%s", status, page)
	}
	e.wantFlow(pupil.ID, school.EnrolmentConsented)
	if status, _, _ := e.client().get(link); status != http.StatusGone {
		t.Fatalf("the used consent link answers %d, want 410", status)
	}

	// 4. The teacher prints the sheet again: now it holds Ida's code.
	sheet = staff.followPost(enrolClass, url.Values{})
	m := regexp.MustCompile(`<p class="code-big">([^<]+)</p>`).FindStringSubmatch(sheet)
	if m == nil {
		t.Fatalf("no enrolment code on the sheet:\n%s", sheet)
	}
	code := html.UnescapeString(m[1])
	e.wantFlow(pupil.ID, school.EnrolmentCodeIssued)

	// 5. The pupil registers a passkey with the code and logs in at the
	// platform through OIDC.
	pupilBrowser := e.client()
	dev := e.device()
	pupilBrowser.enrol(dev, code)
	e.wantFlow(pupil.ID, school.EnrolmentEnrolled)

	mathRP := e.relyingParty(math, []string{gooidc.ScopeOpenID, "profile", "groups", "eduperson", gooidc.ScopeOfflineAccess})
	res := e.authorize(pupilBrowser, dev, mathRP)
	if res.code == "" || !res.passkeyLogin || !res.continued {
		t.Fatalf("authorize at %s: %+v, want a code straight from the passkey login", math.ClientID, res)
	}
	tok, err := mathRP.cfg.Exchange(ctx, res.code, oauth2.VerifierOption(res.verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := mathRP.verifier.Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims["nonce"] != res.nonce || claims["sid"] == nil || claims["acr"] != login.ACRREFEDSMFA {
		t.Fatalf("ID token claims = %v", claims)
	}
	wantReleased(t, "ID token", claims, map[string]any{"given_name": "Ida", "groups": []any{"7A"}})
	sub := idt.Subject
	if sub == "" || sub == pupil.ID || sub == pupil.ExternalID || sub != release.Pairwise(e.a.pairwise, pupil.ID, "matematik.example") {
		t.Fatalf("sub %q is not the pairwise subject of the pupil at matematik.example", sub)
	}
	ui, err := mathRP.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uiClaims map[string]any
	if err := ui.Claims(&uiClaims); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != sub {
		t.Fatalf("userinfo sub %q, ID token sub %q", ui.Subject, sub)
	}
	wantReleased(t, "userinfo", uiClaims, map[string]any{"given_name": "Ida", "groups": []any{"7A"}})
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token although the platform may have offline access")
	}

	// The same pupil at a second platform: another subject, and no second
	// passkey login (the ElevID session is reused).
	dictRP := e.relyingParty(dict, []string{gooidc.ScopeOpenID, "profile"})
	res2 := e.authorize(pupilBrowser, dev, dictRP)
	if res2.code == "" || res2.passkeyLogin {
		t.Fatalf("authorize at %s: %+v", dict.ClientID, res2)
	}
	tok2, err := dictRP.cfg.Exchange(ctx, res2.code, oauth2.VerifierOption(res2.verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt2, err := dictRP.verifier.Verify(ctx, tok2.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	if idt2.Subject == sub || idt2.Subject == pupil.ID {
		t.Fatalf("sub at the second platform %q is not pairwise (first %q)", idt2.Subject, sub)
	}
	if status, _, _ := pupilBrowser.get("/me"); status != 200 {
		t.Fatalf("the pupil's /me answers %d", status)
	}

	// 6. The guardian asks for a link to the guardian's page, receives it
	// by mail, signs in with it, sees the release and withdraws consent
	// for the platform.
	guardianBrowser := e.client()
	if status, _, hdr := guardianBrowser.postForm("/guardian/link", url.Values{"email": {guardian.Email}}); status != http.StatusSeeOther || hdr.Get("Location") != "/guardian?msg=sent" {
		t.Fatalf("link request: %d %v", status, hdr)
	}
	linkMail := e.sink.wait(t, guardian.Email, "/guardian/login/")
	glink := regexp.MustCompile(regexp.QuoteMeta(e.base) + `/guardian/login/[A-Za-z0-9_-]{43}`).FindString(linkMail.text)
	if glink == "" {
		t.Fatalf("no guardian-page link in the mail:\n%s", linkMail.text)
	}
	if status, _, _ := guardianBrowser.get(glink); status != 200 {
		t.Fatalf("guardian link page: %d", status)
	}
	if status, _, hdr := guardianBrowser.postForm(strings.TrimPrefix(glink, e.base), nil); status != http.StatusSeeOther || hdr.Get("Location") != "/guardian" {
		t.Fatalf("guardian sign-in: %d %v", status, hdr)
	}
	status, page, _ = guardianBrowser.get("/guardian")
	releaseRow := regexp.MustCompile(`<tr class="release"><td[^>]*>[^<]+</td><td[^>]*>Matematikportalen</td><td[^>]*>([^<]*)</td></tr>`)
	rm := releaseRow.FindStringSubmatch(page)
	// In plain words (the page's language): first name, class.
	if status != 200 || rm == nil || !regexp.MustCompile(`fornavn|first name`).MatchString(rm[1]) || !regexp.MustCompile(`klasse|class`).MatchString(rm[1]) ||
		strings.Contains(rm[1], "given_name") ||
		!strings.Contains(page, `id="consent-`+pupil.ID+`-`+math.ID+`"`) {
		t.Fatalf("guardian's page lacks the release to Matematikportalen or its consent: %d\n%s", status, page)
	}
	releasesTo := func(platformID string) int {
		n := 0
		for _, r := range mustOK[[]school.Release](t)(st.ListReleases(ctx, pupil.ID)) {
			if r.PlatformID == platformID {
				n++
			}
		}
		return n
	}
	mathReleases := releasesTo(math.ID)
	if status, _, hdr := guardianBrowser.postForm("/guardian/withdraw", url.Values{"pupil": {pupil.ID}, "platform": {math.ID}, "confirm": {"yes"}}); status != http.StatusSeeOther || hdr.Get("Location") != "/guardian?msg=withdrawn" {
		t.Fatalf("withdraw: %d %v", status, hdr)
	}

	// 7. The platform's session ends.
	// A logout token for the pupil's subject and session reached the
	// platform's back-channel endpoint.
	lt := mathRP.waitLogout(t)
	checkLogoutToken(t, ctx, mathRP, lt, sub, claims["sid"].(string))
	if n := len(dictRP.logouts()); n != 0 {
		t.Fatalf("the platform whose consent stands was sent %d logout tokens", n)
	}
	// The refresh token and the access token are dead.
	_, err = mathRP.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("refresh after withdrawal: %v, want invalid_grant", err)
	}
	if _, err := mathRP.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("the access token still works at userinfo after withdrawal")
	}
	// The pupil's ElevID session is revoked.
	if status, _, hdr := pupilBrowser.get("/me"); status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/login") {
		t.Fatalf("/me after withdrawal: %d %v (session not revoked)", status, hdr)
	}
	if sess := mustOK[[]school.Session](t)(st.ListSessions(ctx, pupil.ID)); len(sess) != 0 {
		t.Fatalf("the pupil still has %d active sessions", len(sess))
	}
	// A new login at the platform: the pupil logs in again with the
	// passkey, and the platform gets access_denied, no code.
	res = e.authorize(pupilBrowser, dev, mathRP)
	if res.err != "access_denied" || res.code != "" || !res.passkeyLogin || res.continued {
		t.Fatalf("authorize after withdrawal: %+v, want access_denied after a fresh passkey login", res)
	}
	if n := releasesTo(math.ID); n != mathReleases {
		t.Fatalf("%d releases to the platform after withdrawal, want %d", n, mathReleases)
	}
	e.wantFlow(pupil.ID, school.EnrolmentEnrolled) // the other platform's consent stands
	// The other platform's consent stands: it still gets a code.
	if res2 = e.authorize(pupilBrowser, dev, dictRP); res2.code == "" {
		t.Fatalf("authorize at the still-consented platform: %+v", res2)
	}
	status, page, _ = guardianBrowser.get("/guardian?msg=withdrawn")
	if status != 200 || !regexp.MustCompile(`(?s)id="consent-`+pupil.ID+`-`+math.ID+`">.*?(Trukket tilbage|Withdrawn|withdrawn)`).MatchString(page) {
		t.Fatalf("guardian's page does not show the withdrawal:\n%s", page)
	}

	// 8. The guardian's timeline shows the release; a teacher's passkey
	// reset (checked in person) tells the guardian by mail, retires the
	// old passkey and gives a new code.
	status, page, _ = guardianBrowser.get("/rights/" + pupil.ID + "/timeline")
	if status != 200 || !strings.Contains(page, "Platform Matematikportalen received name and class") {
		t.Fatalf("guardian's timeline: %d\n%s", status, page)
	}
	staff.consoleReauth(teacher)
	sheet = staff.followPost("/console/schools/"+sch.ID+"/pupils/"+pupil.ID+"/reset", url.Values{"purpose": {"lost_device"}, "confirm": {"yes"}})
	m = regexp.MustCompile(`<p class="code-big">([^<]+)</p>`).FindStringSubmatch(sheet)
	if m == nil {
		t.Fatalf("no new code after the passkey reset:\n%s", sheet)
	}
	e.sink.wait(t, guardian.Email, "/guardian")
	if creds := mustOK[[]school.Credential](t)(st.ListCredentials(ctx, school.PupilOwner(pupil.ID), false)); len(creds) != 0 {
		t.Fatalf("%d passkeys active after the reset", len(creds))
	}
	if status, out := e.client().passkeyLogin(dev, "/me"); status != http.StatusUnauthorized {
		t.Fatalf("login with the reset passkey: %d %v", status, out)
	}
	status, page, _ = guardianBrowser.get("/rights/" + pupil.ID + "/timeline")
	if status != 200 || !strings.Contains(page, "Teacher Anna Jensen (7A) reset the passkeys – purpose: Lost device") {
		t.Fatalf("the guardian's timeline lacks the teacher's passkey reset (access log): %d\n%s", status, page)
	}
	// The new code enrols a new passkey, which logs in.
	newDev := e.device()
	newBrowser := e.client()
	newBrowser.enrol(newDev, html.UnescapeString(m[1]))
	if status, out := newBrowser.passkeyLogin(newDev, "/me"); status != 200 {
		t.Fatalf("login with the new passkey: %d %s", status, out)
	}
	e.wantFlow(pupil.ID, school.EnrolmentEnrolled)

	// 9. The pupil sees the same timeline and can download the export;
	// another pupil's id (or a forged one) is a 404 for them.
	status, page, _ = newBrowser.get("/rights/" + pupil.ID + "/timeline")
	if status != 200 || !strings.Contains(page, "reset the passkeys") || !strings.Contains(page, "Platform Matematikportalen received") {
		t.Fatalf("the pupil's own timeline: %d\n%s", status, page)
	}
	status, page, _ = newBrowser.get("/rights/" + pupil.ID + "/export")
	if status != 200 || !strings.Contains(page, `"format": "elevid-export/1"`) || !strings.Contains(page, `"access_log"`) {
		t.Fatalf("the pupil's export: %d", status)
	}
	other := mustOK[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: pupil.SchoolID, GivenName: "Bo", ClassIDs: pupil.ClassIDs}))
	for _, id := range []string{other.ID, "forged-id"} {
		if status, page, _ := newBrowser.get("/rights/" + id + "/timeline"); status != http.StatusNotFound || strings.Contains(page, "Anna Jensen") {
			t.Fatalf("pupil looking at %s: %d", id, status)
		}
	}
	if status, _, _ := e.client().get("/rights/" + pupil.ID + "/export"); status != http.StatusNotFound {
		t.Fatalf("anonymous export: %d", status)
	}
	t.Logf("end-to-end run took %s", time.Since(start).Round(time.Millisecond))
}

// e2e is the whole ElevID server on a fresh SQLite database, with its
// background jobs running, an SMTP sink as mail server, and the issuer
// http://localhost:PORT (the WebAuthn RP ID is localhost).
type e2e struct {
	t    *testing.T
	a    *app
	w    *wiring
	srv  *httptest.Server
	base string
	sink *mailSink
}

func newE2E(t *testing.T) *e2e { t.Helper(); return newE2EMode(t, false) }

// newE2EMode is newE2E, in demo mode (seeded demo school, demo platform)
// when demo is set.
func newE2EMode(t *testing.T, demo bool) *e2e {
	t.Helper()
	return newE2EOn(t, filepath.Join(t.TempDir(), "elevid.db"), demo)
}

// newE2EOn is newE2EMode on the given database (a SQLite file or a
// PostgreSQL DSN).
func newE2EOn(t *testing.T, database string, demo bool) *e2e {
	t.Helper()
	ctx := context.Background()
	e := &e2e{t: t, sink: startMailSink(t)}
	// The listener exists before the handler, so the issuer is known.
	e.srv = httptest.NewUnstartedServer(nil)
	e.base = fmt.Sprintf("http://localhost:%d", e.srv.Listener.Addr().(*net.TCPAddr).Port)
	env := map[string]string{"ELEVID_ISSUER": e.base, "ELEVID_DATABASE": database}
	cfg, err := LoadConfig("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.sink.addr)
	cfg.SMTP = SMTPConfig{Host: host, Port: atoiPort(t, port), TLS: "none", From: "elevid@egeskov.example.dk"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ELEVID_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.a = openTestApp(t, cfg, log)
	if demo {
		if err := seedDemo(ctx, e.a, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	h, w, err := newHandler(ctx, e.a, demo)
	if err != nil {
		t.Fatal(err)
	}
	e.w = w
	e.srv.Config.Handler = h
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	// The background jobs, as serve starts them; stopped (and waited for)
	// before the server and the store close.
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, job := range w.background {
		wg.Go(func() { job(bg) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	return e
}

func atoiPort(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// mustOK returns a function that fails t on error.
func mustOK[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// wantFlow checks the pupil's enrolment state (with lazy transitions).
func (e *e2e) wantFlow(pupilID string, want school.EnrolmentState) {
	e.t.Helper()
	f, err := e.w.flows.Get(context.Background(), pupilID)
	if err != nil || f.State != want {
		e.t.Fatalf("enrolment flow = %q (%v), want %q", f.State, err, want)
	}
}

// staffAccount is a staff member with a password and a TOTP secret.
type staffAccount struct {
	school.Staff
	password, secret string
}

// staffMember creates a staff member and sets their credentials as
// `elevid admin staff` does (with cheap Argon2 parameters: the hash
// carries them, so verification works the same).
func (e *e2e) staffMember(schoolID, username, name string, role school.Role, classes []string) staffAccount {
	e.t.Helper()
	ctx := context.Background()
	s := mustOK[school.Staff](e.t)(e.a.store.CreateStaff(ctx, school.Staff{SchoolID: schoolID, Username: username, Name: name, Role: role, ClassIDs: classes}))
	key, err := console.NewTOTPKey(username)
	if err != nil {
		e.t.Fatal(err)
	}
	acc := staffAccount{Staff: s, password: "pw-" + username + "-e2e-long-enough", secret: key.Secret()}
	if err := console.SetCredentials(ctx, e.a.store, e.a.sealer, console.Argon2Params{Memory: 256, Time: 1, Threads: 1}, s.ID, "test",
		&console.Credentials{Password: acc.password, TOTP: key}); err != nil {
		e.t.Fatal(err)
	}
	return acc
}

// e2ePlatform is a registered OIDC platform with its client secret and
// its back-channel logout endpoint.
type e2ePlatform struct {
	school.Platform
	secret      string
	redirectURI string
	mu          sync.Mutex
	tokens      []string // logout tokens received
	bc          *httptest.Server
}

// registerPlatform registers an OIDC platform with the operator command
// (`elevid admin platform add`), with its own back-channel logout
// endpoint when backchannel.
func (e *e2e) registerPlatform(name, clientID, redirectURI string, backchannel bool, attrs ...string) *e2ePlatform {
	e.t.Helper()
	p := &e2ePlatform{redirectURI: redirectURI}
	args := []string{"add", "--name", name, "--client-id", clientID, "--redirect-uri", redirectURI}
	p.bc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/backchannel-logout" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("logout_token") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.tokens = append(p.tokens, r.PostForm.Get("logout_token"))
		p.mu.Unlock()
	}))
	e.t.Cleanup(p.bc.Close)
	if backchannel {
		args = append(args, "--backchannel-logout-uri", p.bc.URL+"/backchannel-logout", "--offline-access")
	}
	for _, a := range attrs {
		name, _, _ := strings.Cut(a, "=")
		args = append(args, "--attr", a, "--attr-en", name+"=(in English) "+a[len(name)+1:])
	}
	var out bytes.Buffer
	if err := platformCommand(context.Background(), e.a.store, &out, args); err != nil {
		e.t.Fatalf("platform add: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`client secret (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		e.t.Fatalf("platform add printed no secret:\n%s", out.String())
	}
	p.secret = m[1]
	p.Platform = mustOK[school.Platform](e.t)(e.a.store.PlatformByClientID(context.Background(), clientID))
	return p
}

func (p *e2ePlatform) logouts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tokens...)
}

// rp is a relying party built from go-oidc and oauth2 for a platform.
type rp struct {
	*e2ePlatform
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	cfg      oauth2.Config
}

func (e *e2e) relyingParty(p *e2ePlatform, scopes []string) *rp {
	e.t.Helper()
	provider, err := gooidc.NewProvider(context.Background(), e.base)
	if err != nil {
		e.t.Fatalf("OIDC discovery at %s: %v", e.base, err)
	}
	return &rp{e2ePlatform: p, provider: provider,
		verifier: provider.Verifier(&gooidc.Config{ClientID: p.ClientID}),
		cfg: oauth2.Config{ClientID: p.ClientID, ClientSecret: p.secret, Endpoint: provider.Endpoint(),
			RedirectURL: p.redirectURI, Scopes: scopes}}
}

// waitLogout waits (bounded) for the first logout token.
func (r *rp) waitLogout(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := r.logouts(); len(l) > 0 {
			if len(l) != 1 {
				t.Fatalf("%d logout tokens, want 1", len(l))
			}
			return l[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no back-channel logout token within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLogoutToken verifies a logout token with the provider's keys and
// checks its claims (OIDC Back-Channel Logout 1.0 §2.4).
func checkLogoutToken(t *testing.T, ctx context.Context, r *rp, raw, wantSub, wantSID string) {
	t.Helper()
	tok, err := r.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("logout token does not verify: %v", err)
	}
	var c struct {
		Sub    string         `json:"sub"`
		SID    string         `json:"sid"`
		Nonce  string         `json:"nonce"`
		Events map[string]any `json:"events"`
	}
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || c.Sub != wantSub || c.SID != wantSID || c.Nonce != "" {
		t.Fatalf("logout token claims = %+v, want sub %s sid %s", c, wantSub, wantSID)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if !strings.Contains(string(hdr), `"logout+jwt"`) {
		t.Fatalf("logout token header = %s", hdr)
	}
}

// wantReleased checks that claims hold exactly the wanted attribute
// claims (besides the protocol claims).
func wantReleased(t *testing.T, where string, claims map[string]any, want map[string]any) {
	t.Helper()
	protocol := []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash", "c_hash", "client_id"}
	for k, v := range claims {
		if slices.Contains(protocol, k) {
			continue
		}
		w, ok := want[k]
		if !ok {
			t.Fatalf("%s released %s=%v, which the platform is not allowed", where, k, v)
		}
		if fmt.Sprint(v) != fmt.Sprint(w) {
			t.Fatalf("%s: %s = %v, want %v", where, k, v, w)
		}
	}
	for k := range want {
		if _, ok := claims[k]; !ok {
			t.Fatalf("%s lacks %s: %v", where, k, claims)
		}
	}
}

// client is a browser: cookies, English, and the headers a same-origin
// form post carries; it does not follow redirects by itself.
type client struct {
	e *e2e
	c *http.Client
}

func (e *e2e) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, target, ctype string, body io.Reader) (int, string, http.Header) {
	c.e.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = c.e.base + target
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	req.Header.Set("Accept-Language", "en")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if method == http.MethodPost {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", c.e.base)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) get(target string) (int, string, http.Header) {
	return c.do(http.MethodGet, target, "", nil)
}

func (c *client) postForm(path string, v url.Values) (int, string, http.Header) {
	return c.do(http.MethodPost, path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
}

// followPost posts a form that answers with a redirect, follows it and
// returns the page, failing on anything but 303 → 200.
func (c *client) followPost(path string, v url.Values) string {
	c.e.t.Helper()
	status, body, hdr := c.postForm(path, v)
	if status != http.StatusSeeOther {
		c.e.t.Fatalf("POST %s: %d\n%s", path, status, body)
	}
	status, body, _ = c.get(hdr.Get("Location"))
	if status != 200 {
		c.e.t.Fatalf("GET %s: %d\n%s", hdr.Get("Location"), status, body)
	}
	return body
}

func (c *client) postJSON(path string, v any) (int, map[string]json.RawMessage) {
	c.e.t.Helper()
	raw, _ := json.Marshal(v)
	status, body, _ := c.do(http.MethodPost, path, "application/json", bytes.NewReader(raw))
	var out map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		c.e.t.Fatalf("%s: %d %q is not JSON", path, status, body)
	}
	return status, out
}

// consoleSignIn signs a staff member in with password and TOTP.
func (c *client) consoleSignIn(s staffAccount) {
	c.e.t.Helper()
	code, err := console.TOTPCode(s.secret, time.Now())
	if err != nil {
		c.e.t.Fatal(err)
	}
	status, body, _ := c.postForm("/console/login", url.Values{"username": {s.Username}, "password": {s.password}, "code": {code}})
	if status != http.StatusSeeOther {
		c.e.t.Fatalf("console sign-in of %s: %d\n%s", s.Username, status, body)
	}
}

// consoleReauth re-authenticates the staff member's session, as a pupil's
// passkey reset requires. It uses the next period's TOTP code (accepted
// within the skew), since sign-in may have used this period's.
func (c *client) consoleReauth(s staffAccount) {
	c.e.t.Helper()
	code, err := console.TOTPCode(s.secret, time.Now().Add(30*time.Second))
	if err != nil {
		c.e.t.Fatal(err)
	}
	status, body, _ := c.postForm("/console/reauth", url.Values{"password": {s.password}, "code": {code}, "return": {"/console"}})
	if status != http.StatusSeeOther {
		c.e.t.Fatalf("console re-authentication of %s: %d\n%s", s.Username, status, body)
	}
}

// device is a virtual authenticator holding the pupil's passkey.
type device struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func (e *e2e) device() *device {
	return &device{rp: virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID", Origin: e.base},
		auth: virtualwebauthn.NewAuthenticator(), cred: webauthntest.NewCredential()}
}

// enrol registers the device's passkey at /enrol with code.
func (c *client) enrol(d *device, code string) {
	c.e.t.Helper()
	t := c.e.t
	if status, body, _ := c.postForm("/enrol", url.Values{"code": {code}}); status != 200 || !strings.Contains(body, "Ida") || !strings.Contains(body, "Egeskovskolen") {
		t.Fatalf("enrol confirm: %d\n%s", status, body)
	}
	status, begun := c.postJSON("/enrol/begin", map[string]string{"code": code})
	if status != 200 {
		t.Fatalf("enrol/begin: %d %s", status, begun)
	}
	var ceremony string
	_ = json.Unmarshal(begun["ceremony"], &ceremony)
	opts, err := virtualwebauthn.ParseAttestationOptions(string(begun["options"]))
	if err != nil {
		t.Fatal(err)
	}
	d.auth.Options.UserHandle = []byte(opts.UserID)
	att := virtualwebauthn.CreateAttestationResponse(d.rp, d.auth, d.cred, *opts)
	status, done := c.postJSON("/enrol/finish", map[string]any{"ceremony": ceremony, "label": "Skole-iPad", "credential": json.RawMessage(att)})
	if status != 200 || string(done["ok"]) != "true" {
		t.Fatalf("enrol/finish: %d %s", status, done)
	}
	d.auth.AddCredential(d.cred)
}

// passkeyLogin runs a discoverable login and returns the finish status
// and answer.
func (c *client) passkeyLogin(d *device, returnTo string) (int, map[string]json.RawMessage) {
	c.e.t.Helper()
	status, begun := c.postJSON("/login/begin", map[string]string{})
	if status != 200 {
		c.e.t.Fatalf("login/begin: %d %s", status, begun)
	}
	var ceremony string
	_ = json.Unmarshal(begun["ceremony"], &ceremony)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(begun["options"]))
	if err != nil {
		c.e.t.Fatal(err)
	}
	assertion := virtualwebauthn.CreateAssertionResponse(d.rp, d.auth, d.cred, *opts)
	return c.postJSON("/login/finish", map[string]any{"ceremony": ceremony, "return_to": returnTo, "credential": json.RawMessage(assertion)})
}

// authResult is what the browser brought back to the platform.
type authResult struct {
	code, err, errDesc string
	verifier, nonce    string
	passkeyLogin       bool // the flow went through the passkey login
	// continued: the login's answer sent the browser straight to the
	// platform (no request to the hand-off).
	continued bool
}

// authorize starts at the platform's authorization URL (PKCE S256, nonce)
// and follows the browser through ElevID, logging in with the passkey
// when sent to /login, until it is redirected to the platform's callback.
func (e *e2e) authorize(b *client, d *device, r *rp) authResult {
	e.t.Helper()
	res := authResult{verifier: oauth2.GenerateVerifier(), nonce: school.NewID()}
	state := school.NewID()
	next := r.cfg.AuthCodeURL(state, gooidc.Nonce(res.nonce), oauth2.S256ChallengeOption(res.verifier))
	for range 12 {
		if strings.HasPrefix(next, "/") {
			next = e.base + next
		}
		if strings.HasPrefix(next, r.redirectURI) {
			u, _ := url.Parse(next)
			q := u.Query()
			if q.Get("state") != state {
				e.t.Fatalf("state = %q, want %q", q.Get("state"), state)
			}
			res.code, res.err, res.errDesc = q.Get("code"), q.Get("error"), q.Get("error_description")
			return res
		}
		if u, _ := url.Parse(next); u.Path == "/login" {
			status, out := b.passkeyLogin(d, u.Query().Get("return_to"))
			if status != 200 {
				e.t.Fatalf("passkey login: %d %s", status, out)
			}
			res.passkeyLogin = true
			_ = json.Unmarshal(out["next"], &next)
			res.continued = strings.HasPrefix(next, r.redirectURI)
			continue
		}
		status, body, hdr := b.get(next)
		if status/100 != 3 {
			e.t.Fatalf("authorize stopped at %s: %d\n%s", next, status, body)
		}
		next = hdr.Get("Location")
	}
	e.t.Fatal("authorize: too many redirects")
	return res
}

// mailSink is a real SMTP server (go-smtp) that keeps what it receives.
type mailSink struct {
	mu   sync.Mutex
	msgs []sinkMessage
	addr string
}

type sinkMessage struct {
	to   string
	data []byte
}

type sinkSession struct {
	s  *mailSink
	to []string
}

func (ss *sinkSession) Reset()                               {}
func (ss *sinkSession) Logout() error                        { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	for _, to := range ss.to {
		ss.s.msgs = append(ss.s.msgs, sinkMessage{to: to, data: b})
	}
	return nil
}

func startMailSink(t *testing.T) *mailSink {
	t.Helper()
	s := &mailSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return s
}

// decodedMail is a delivered message's text and HTML parts.
type decodedMail struct{ text, html string }

// wait returns the first message to to whose text part contains marker
// and that was not returned before, waiting (bounded) for the outbox
// sender to deliver it.
func (s *mailSink) wait(t *testing.T, to, marker string) decodedMail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, ok := s.take(t, to, marker); ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s containing %q within 10 s", to, marker)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// take removes and returns the first message to to containing marker.
func (s *mailSink) take(t *testing.T, to, marker string) (decodedMail, bool) {
	s.mu.Lock()
	msgs := slices.Clone(s.msgs)
	s.mu.Unlock()
	for _, m := range msgs {
		if m.to != to {
			continue
		}
		if d := parseMail(t, m.data); strings.Contains(d.text, marker) {
			s.mu.Lock()
			s.msgs = slices.DeleteFunc(s.msgs, func(x sinkMessage) bool { return &x.data[0] == &m.data[0] })
			s.mu.Unlock()
			return d, true
		}
	}
	return decodedMail{}, false
}

// parseMail decodes a multipart/alternative message.
func parseMail(t *testing.T, data []byte) decodedMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", mt, err)
	}
	var out decodedMail
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			out.text = string(b)
		case "text/html":
			out.html = string(b)
		}
	}
	return out
}
