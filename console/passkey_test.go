package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/elevid/elevid/internal/webauthntest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
)

var testRP = passkey.Config{RPID: "localhost", RPName: "ElevID test", Origins: []string{"http://localhost:8080"}}

func withPasskeys(o *console.Options) { o.Passkey = testRP }

// device is a virtual authenticator holding one passkey.
type device struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newDevice() *device {
	return &device{
		rp:   virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID test", Origin: "http://localhost:8080"},
		auth: virtualwebauthn.NewAuthenticator(),
		cred: webauthntest.NewCredential(),
	}
}

// postJSON posts v as JSON to h, same-origin unless crossSite.
func (f *fixture) postJSON(h http.Handler, path string, v any, cookie *http.Cookie, crossSite bool) (*httptest.ResponseRecorder, map[string]any) {
	f.t.Helper()
	body, err := json.Marshal(v)
	f.must(err)
	r := httptest.NewRequest("POST", "http://localhost:8080"+path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if crossSite {
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Origin", "https://evil.example")
	} else {
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Origin", "http://localhost:8080")
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec, out
}

func optionsOf(t *testing.T, begun map[string]any) string {
	raw, err := json.Marshal(begun["options"])
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// register registers d as a passkey of the signed-in staff member.
func (f *fixture) register(d *device, cookie *http.Cookie, label string) (*httptest.ResponseRecorder, map[string]any) {
	f.t.Helper()
	rec, begun := f.postJSON(f.h, "/console/account/passkeys/begin", map[string]any{}, cookie, false)
	if rec.Code != 200 {
		f.t.Fatalf("register begin = %d %s", rec.Code, rec.Body)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(optionsOf(f.t, begun))
	f.must(err)
	d.auth.Options.UserHandle = []byte(opts.UserID)
	att := virtualwebauthn.CreateAttestationResponse(d.rp, d.auth, d.cred, *opts)
	rec, res := f.postJSON(f.h, "/console/account/passkeys/finish", map[string]any{"ceremony": begun["ceremony"], "label": label, "credential": json.RawMessage(att)}, cookie, false)
	if rec.Code == 200 {
		d.auth.AddCredential(d.cred)
	}
	return rec, res
}

// beginLogin starts a console passkey sign-in.
func (f *fixture) beginLogin(h http.Handler, path string, cookie *http.Cookie) (string, *virtualwebauthn.AssertionOptions) {
	f.t.Helper()
	rec, begun := f.postJSON(h, path, map[string]any{}, cookie, false)
	if rec.Code != 200 {
		f.t.Fatalf("%s = %d %s", path, rec.Code, rec.Body)
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(optionsOf(f.t, begun))
	f.must(err)
	return begun["ceremony"].(string), opts
}

func (d *device) assert(opts *virtualwebauthn.AssertionOptions) json.RawMessage {
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(d.rp, d.auth, d.cred, *opts))
}

// passkeyLogin runs a whole console passkey sign-in with d.
func (f *fixture) passkeyLogin(d *device) (*httptest.ResponseRecorder, map[string]any) {
	f.t.Helper()
	cer, opts := f.beginLogin(f.h, "/console/login/passkey/begin", nil)
	return f.postJSON(f.h, "/console/login/passkey/finish", map[string]any{"ceremony": cer, "return_to": "/console/account", "credential": d.assert(opts)}, nil, false)
}

func staffCookie(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == "elevid_staff" && c.Value != "" {
			return c
		}
	}
	t.Fatalf("no staff cookie set (status %d)", rec.Code)
	return nil
}

func (f *fixture) hasAudit(schoolID, action, subject string) bool {
	f.t.Helper()
	entries, err := f.st.ListAudit(context.Background(), school.AuditFilter{SchoolID: schoolID, SubjectID: subject, Limit: 1000})
	f.must(err)
	for _, e := range entries {
		if e.Action == action && e.SubjectID == subject {
			return true
		}
	}
	return false
}

func TestStaffPasskeyRegisterSignInRemove(t *testing.T) {
	f := newFixture(t, withPasskeys)
	ctx := context.Background()
	m := f.A.Teacher
	cookie := f.signIn(m)

	// The login and account pages offer passkeys.
	if rec := f.do(req{method: "GET", path: "/console/login"}); !strings.Contains(rec.Body.String(), "/console/login/passkey/begin") ||
		!strings.Contains(rec.Body.String(), "/static/console-passkey.js") {
		t.Fatalf("login page offers no passkey:\n%s", rec.Body)
	}
	d := newDevice()
	if rec, res := f.register(d, cookie, "  Arbejds  computer "); rec.Code != 200 || res["ok"] != true || res["next"] != "/console/account?passkey=added" {
		t.Fatalf("register finish = %d %v", rec.Code, res)
	}
	creds, err := f.st.ListCredentials(ctx, school.StaffOwner(m.ID), false)
	f.must(err)
	if len(creds) != 1 || creds[0].Label != "Arbejds computer" {
		t.Fatalf("stored staff credentials = %+v", creds)
	}
	if pc, err := f.st.ListCredentials(ctx, school.PupilOwner(f.A.Pupil.ID), true); err != nil || len(pc) != 0 {
		t.Fatalf("pupil credentials = %v, %v", pc, err)
	}
	if !f.hasAudit(m.SchoolID, "staff.passkey_add", m.ID) {
		t.Fatal("no audit entry for the added passkey")
	}
	page := f.do(req{method: "GET", path: "/console/account?passkey=added", cookie: cookie}).Body.String()
	if !strings.Contains(page, "Arbejds computer") || !strings.Contains(page, base64.RawURLEncoding.EncodeToString(creds[0].ID)) {
		t.Fatalf("account page does not list the passkey:\n%s", page)
	}

	// The next registration excludes it, and the same device is refused.
	rec, begun := f.postJSON(f.h, "/console/account/passkeys/begin", map[string]any{}, cookie, false)
	opts, err := virtualwebauthn.ParseAttestationOptions(optionsOf(t, begun))
	f.must(err)
	if rec.Code != 200 || len(opts.ExcludeCredentials) != 1 || opts.ExcludeCredentials[0] != base64.RawURLEncoding.EncodeToString(creds[0].ID) {
		t.Fatalf("exclusions = %v", opts.ExcludeCredentials)
	}
	var sel protocol.AuthenticatorSelection
	raw, _ := json.Marshal(begun["options"].(map[string]any)["publicKey"].(map[string]any)["authenticatorSelection"])
	f.must(json.Unmarshal(raw, &sel))
	if sel.ResidentKey != protocol.ResidentKeyRequirementRequired || sel.UserVerification != protocol.VerificationRequired {
		t.Fatalf("authenticator selection = %+v", sel)
	}
	if rec, _ := f.register(d, cookie, "again"); rec.Code != http.StatusConflict {
		t.Fatalf("registering the same passkey twice = %d", rec.Code)
	}

	// Sign in with it, without username, password or code: the session is
	// a full two-factor staff session.
	rec, res := f.passkeyLogin(d)
	if rec.Code != 200 || res["ok"] != true || res["next"] != "/console/account" {
		t.Fatalf("passkey sign-in = %d %v", rec.Code, res)
	}
	pc := staffCookie(t, rec)
	if page := f.do(req{method: "GET", path: "/console/account", cookie: pc}); page.Code != 200 || !strings.Contains(page.Body.String(), m.Name) {
		t.Fatalf("console after passkey sign-in = %d\n%s", page.Code, page.Body)
	}
	ss, err := f.st.ListSessions(ctx, m.ID)
	f.must(err)
	var s school.Session
	for _, x := range ss {
		if x.Ref == f.sessionRef(pc) {
			s = x
		}
	}
	if s.ACR != "mfa" || !s.UserVerified || !bytes.Equal(s.CredentialID, creds[0].ID) || s.Kind != school.SessionStaff || !slices.Contains(s.AMR, "user") {
		t.Fatalf("session = %+v", s)
	}
	if !f.hasAudit(m.SchoolID, "staff.signin", m.ID) {
		t.Fatal("no audit entry for the sign-in")
	}

	// A counter that goes backwards is flagged, audited and shown.
	d.cred.Counter = 5
	if rec, _ := f.passkeyLogin(d); rec.Code != 200 {
		t.Fatalf("sign-in with counter 5 = %d", rec.Code)
	}
	d.cred.Counter = 3
	if rec, _ := f.passkeyLogin(d); rec.Code != 200 {
		t.Fatalf("sign-in with counter 3 = %d %s", rec.Code, rec.Body)
	}
	got, err := f.st.GetCredential(ctx, school.OwnerStaff, creds[0].ID)
	f.must(err)
	if !got.CloneWarning || got.LastUsedAt.IsZero() {
		t.Fatalf("after a counter regression: %+v", got)
	}
	if !f.hasAudit(m.SchoolID, "staff.passkey_clone_warning", m.ID) {
		t.Fatal("no audit entry for the counter regression")
	}
	if page := f.do(req{method: "GET", path: "/console/account", cookie: pc}).Body.String(); !strings.Contains(page, "⚠") {
		t.Fatal("account page does not show the clone warning")
	}

	// Re-authentication with a fresh passkey assertion.
	cer, aopts := f.beginLogin(f.h, "/console/reauth/passkey/begin", pc)
	if len(aopts.AllowCredentials) != 1 {
		t.Fatalf("reauth allows %v", aopts.AllowCredentials)
	}
	d.cred.Counter = 10
	if rec, res := f.postJSON(f.h, "/console/reauth/passkey/finish", map[string]any{"ceremony": cer, "return_to": "/console/account", "credential": d.assert(aopts)}, pc, false); rec.Code != 200 || res["ok"] != true {
		t.Fatalf("passkey reauth = %d %v", rec.Code, res)
	}
	a, err := f.st.GetStaffAuth(ctx, m.ID)
	f.must(err)
	if a.ReauthAt.IsZero() || a.ReauthSession != f.sessionRef(pc) {
		t.Fatalf("reauth not recorded: %+v", a)
	}

	// Remove it: listed no more, audited, and it no longer signs in.
	id := base64.RawURLEncoding.EncodeToString(creds[0].ID)
	if rec := f.do(req{method: "POST", path: "/console/account/passkeys/remove", form: url.Values{"id": {id}}, cookie: cookie}); rec.Code != http.StatusSeeOther {
		t.Fatalf("remove = %d %s", rec.Code, rec.Body)
	}
	if n, _ := f.st.ListCredentials(ctx, school.StaffOwner(m.ID), false); len(n) != 0 {
		t.Fatalf("%d credentials after removal", len(n))
	}
	if !f.hasAudit(m.SchoolID, "staff.passkey_remove", m.ID) {
		t.Fatal("no audit entry for the removal")
	}
	if rec, _ := f.passkeyLogin(d); rec.Code != http.StatusUnauthorized {
		t.Fatalf("sign-in with a removed passkey = %d", rec.Code)
	}
	// Another staff member cannot remove someone else's passkey.
	d2 := newDevice()
	if rec, _ := f.register(d2, cookie, "second"); rec.Code != 200 {
		t.Fatal("second registration failed")
	}
	c2, _ := f.st.ListCredentials(ctx, school.StaffOwner(m.ID), false)
	other := f.signIn(f.A.Admin)
	if rec := f.do(req{method: "POST", path: "/console/account/passkeys/remove", form: url.Values{"id": {base64.RawURLEncoding.EncodeToString(c2[0].ID)}}, cookie: other}); rec.Code != http.StatusNotFound {
		t.Fatalf("removing another's passkey = %d", rec.Code)
	}
}

// Pupils' and staff passkeys live under separate user handles: neither
// signs in on the other side.
func TestStaffAndPupilPasskeysAreSeparate(t *testing.T) {
	f := newFixture(t, withPasskeys)
	ctx := context.Background()
	pupils, err := login.NewLogin(login.LoginOptions{Store: f.st, Site: f.site, Passkey: testRP, Issuer: "http://localhost:8080",
		SessionKeys: [][]byte{bytes.Repeat([]byte("h"), 64), bytes.Repeat([]byte("b"), 32)}, Now: f.clock.Now})
	f.must(err)
	mux := http.NewServeMux()
	pupils.Mount(mux)
	pupilSide := f.site.CrossOrigin(mux)

	// A pupil's passkey, registered the way enrolment does.
	wa, err := passkey.New(testRP)
	f.must(err)
	pupil := f.A.Pupil
	handle, err := f.st.UserHandle(ctx, school.PupilOwner(pupil.ID))
	f.must(err)
	creation, sd, err := wa.BeginRegistration(&passkey.User{Handle: handle, Name: pupil.ID})
	f.must(err)
	raw, err := json.Marshal(creation)
	f.must(err)
	opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	f.must(err)
	pd := newDevice()
	pd.auth.Options.UserHandle = handle
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(virtualwebauthn.CreateAttestationResponse(pd.rp, pd.auth, pd.cred, *opts)))
	f.must(err)
	wc, err := wa.CreateCredential(&passkey.User{Handle: handle, Name: pupil.ID}, *sd, parsed)
	f.must(err)
	_, err = f.st.AddCredential(ctx, passkey.FromWebAuthn(wc, school.PupilOwner(pupil.ID), pupil.SchoolID, "iPad"))
	f.must(err)
	pd.auth.AddCredential(pd.cred)

	// The pupil's passkey works at /login …
	cer, aopts := f.beginLogin(pupilSide, "/login/begin", nil)
	if rec, res := f.postJSON(pupilSide, "/login/finish", map[string]any{"ceremony": cer, "credential": pd.assert(aopts)}, nil, false); rec.Code != 200 || res["ok"] != true {
		t.Fatalf("pupil login = %d %v", rec.Code, res)
	}
	// … but not at the console.
	if rec, _ := f.passkeyLogin(pd); rec.Code != http.StatusUnauthorized {
		t.Fatalf("pupil passkey at the console = %d %s", rec.Code, rec.Body)
	}

	// A staff passkey works at the console but not at /login.
	sdev := newDevice()
	if rec, _ := f.register(sdev, f.signIn(f.A.Teacher), "Laptop"); rec.Code != 200 {
		t.Fatal("staff registration failed")
	}
	staffHandle, err := f.st.UserHandle(ctx, school.StaffOwner(f.A.Teacher.ID))
	f.must(err)
	if bytes.Equal(staffHandle, handle) || !bytes.Equal(sdev.auth.Options.UserHandle, staffHandle) {
		t.Fatal("the staff passkey is not under the staff handle")
	}
	if rec, _ := f.passkeyLogin(sdev); rec.Code != 200 {
		t.Fatalf("staff passkey at the console = %d", rec.Code)
	}
	cer, aopts = f.beginLogin(pupilSide, "/login/begin", nil)
	if rec, res := f.postJSON(pupilSide, "/login/finish", map[string]any{"ceremony": cer, "credential": sdev.assert(aopts)}, nil, false); rec.Code != http.StatusUnauthorized {
		t.Fatalf("staff passkey at /login = %d %v", rec.Code, res)
	}

	// Ceremonies do not cross either: a pupil login ceremony is refused
	// by the console, and a console one by /login.
	cer, aopts = f.beginLogin(pupilSide, "/login/begin", nil)
	if rec, _ := f.postJSON(f.h, "/console/login/passkey/finish", map[string]any{"ceremony": cer, "credential": sdev.assert(aopts)}, nil, false); rec.Code != http.StatusBadRequest {
		t.Fatalf("pupil ceremony at the console = %d", rec.Code)
	}
	cer, aopts = f.beginLogin(f.h, "/console/login/passkey/begin", nil)
	if rec, _ := f.postJSON(pupilSide, "/login/finish", map[string]any{"ceremony": cer, "credential": pd.assert(aopts)}, nil, false); rec.Code != http.StatusBadRequest {
		t.Fatalf("console ceremony at /login = %d", rec.Code)
	}
}

func TestStaffPasskeyRefusals(t *testing.T) {
	f := newFixture(t, withPasskeys)
	ctx := context.Background()
	m := f.A.Victim
	cookie := f.signIn(m)
	d := newDevice()
	if rec, _ := f.register(d, cookie, "Key"); rec.Code != 200 {
		t.Fatal("registration failed")
	}

	// A replayed ceremony (and assertion) is refused.
	cer, opts := f.beginLogin(f.h, "/console/login/passkey/begin", nil)
	body := map[string]any{"ceremony": cer, "credential": d.assert(opts)}
	if rec, _ := f.postJSON(f.h, "/console/login/passkey/finish", body, nil, false); rec.Code != 200 {
		t.Fatalf("first finish = %d", rec.Code)
	}
	if rec, res := f.postJSON(f.h, "/console/login/passkey/finish", body, nil, false); rec.Code != http.StatusBadRequest || res["error"] == "" {
		t.Fatalf("replayed finish = %d %v", rec.Code, res)
	}
	// An expired one too.
	cer, opts = f.beginLogin(f.h, "/console/login/passkey/begin", nil)
	f.clock.Advance(6 * time.Minute)
	if rec, _ := f.postJSON(f.h, "/console/login/passkey/finish", map[string]any{"ceremony": cer, "credential": d.assert(opts)}, nil, false); rec.Code != http.StatusBadRequest {
		t.Fatalf("expired finish = %d", rec.Code)
	}
	// A registration ceremony of another session is refused.
	cookie = f.signIn(m)
	rec, begun := f.postJSON(f.h, "/console/account/passkeys/begin", map[string]any{}, cookie, false)
	if rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	aopts, err := virtualwebauthn.ParseAttestationOptions(optionsOf(t, begun))
	f.must(err)
	d2 := newDevice()
	d2.auth.Options.UserHandle = []byte(aopts.UserID)
	other := f.signIn(f.A.Admin)
	if rec, _ := f.postJSON(f.h, "/console/account/passkeys/finish", map[string]any{"ceremony": begun["ceremony"],
		"credential": json.RawMessage(virtualwebauthn.CreateAttestationResponse(d2.rp, d2.auth, d2.cred, *aopts))}, other, false); rec.Code != http.StatusBadRequest {
		t.Fatalf("another's registration ceremony = %d", rec.Code)
	}
	// Without user verification: refused at sign-in.
	d.auth.Options.UserNotVerified = true
	if rec, _ := f.passkeyLogin(d); rec.Code != http.StatusUnauthorized {
		t.Fatalf("sign-in without user verification = %d", rec.Code)
	}
	d.auth.Options.UserNotVerified = false

	// A disabled staff member is refused, and it is audited.
	_, err = f.st.UpdateStaff(ctx, m.ID, func(s school.Staff) (school.Staff, error) { s.Disabled = true; return s, nil })
	f.must(err)
	if rec, res := f.passkeyLogin(d); rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("disabled staff sign-in = %d %v", rec.Code, res)
	}
	if !f.hasAudit(m.SchoolID, "staff.signin_failed", m.ID) {
		t.Fatal("refusal of a disabled staff member not audited")
	}

	// Cross-site requests are refused before they reach the console.
	for _, path := range []string{"/console/login/passkey/begin", "/console/login/passkey/finish", "/console/account/passkeys/begin", "/console/account/passkeys/finish"} {
		if rec, _ := f.postJSON(f.h, path, map[string]any{}, other, true); rec.Code != http.StatusForbidden {
			t.Errorf("cross-site %s = %d", path, rec.Code)
		}
	}
	if rec := f.do(req{method: "POST", path: "/console/account/passkeys/remove", form: url.Values{"id": {"AAAA"}}, cookie: other, crossSite: true}); rec.Code != http.StatusForbidden {
		t.Errorf("cross-site remove = %d", rec.Code)
	}
	// Without a session, the account routes send to the sign-in.
	if rec, _ := f.postJSON(f.h, "/console/account/passkeys/begin", map[string]any{}, nil, false); rec.Code != http.StatusSeeOther {
		t.Errorf("register begin without a session = %d", rec.Code)
	}
}

// Without a relying party, nothing offers or answers passkeys.
func TestStaffPasskeysOff(t *testing.T) {
	f := newFixture(t)
	if strings.Contains(f.do(req{method: "GET", path: "/console/login"}).Body.String(), "passkey/begin") {
		t.Fatal("login page offers passkeys without a relying party")
	}
	if rec, _ := f.postJSON(f.h, "/console/login/passkey/begin", map[string]any{}, nil, false); rec.Code != http.StatusNotFound {
		t.Fatalf("begin without a relying party = %d", rec.Code)
	}
}

// Adding a passkey needs a recent sign-in or re-authentication: a session
// left open (or stolen) cannot make itself permanent.
func TestStaffPasskeyNeedsRecentAuthentication(t *testing.T) {
	f := newFixture(t, withPasskeys)
	ck := f.signIn(f.A.Teacher)
	f.clock.Advance(10 * time.Minute) // past the 5-minute window
	rec, _ := f.postJSON(f.h, "/console/account/passkeys/begin", map[string]any{}, ck, false)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("begin on a stale session = %d, want 403", rec.Code)
	}
	if page := f.do(req{method: "GET", path: "/console/account", cookie: ck}); !strings.Contains(page.Body.String(), "/console/reauth?return=/console/account") {
		t.Fatal("the account page does not offer re-authentication")
	}
	// Re-authenticating with password and a fresh TOTP code opens it again.
	f.clock.Advance(time.Minute)
	form := url.Values{"password": {f.A.Teacher.Password}, "code": {f.code(f.A.Teacher)}, "return": {"/console/account"}}
	if rec := f.do(req{method: "POST", path: "/console/reauth", cookie: ck, form: form}); rec.Code != http.StatusSeeOther {
		t.Fatalf("reauth = %d", rec.Code)
	}
	d := newDevice()
	if rec, _ := f.register(d, ck, "Laptop"); rec.Code != 200 {
		t.Fatalf("register after reauth = %d %s", rec.Code, rec.Body)
	}
}
