package enrolment_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
)

func TestEnrolLoginMe(t *testing.T) {
	e := newEnv(t, onSQLite)
	b := e.browser("da")
	code := e.issue(e.pupil)

	// The QR lands on the form with the code filled in.
	status, body := b.get("/enrol?code=" + url.QueryEscape(code))
	if status != 200 {
		t.Fatalf("GET /enrol = %d", status)
	}
	contains(t, body, `value="`+code+`"`, `action="/enrol"`)

	// Typed in lower case without dashes: the pupil sees whose code it is.
	status, body, _ = b.form("/enrol", url.Values{"code": {strings.ToLower(strings.ReplaceAll(code, "-", ""))}})
	if status != 200 {
		t.Fatalf("POST /enrol = %d %s", status, body)
	}
	contains(t, body, "Ida på Demoskolen", `data-passkey="register"`, `data-code="`+code+`"`, `/static/passkey.js`)

	d := e.device()
	b.enrol(d, code, "Skolens iPad")
	creds := e.credentials(e.pupil)
	if len(creds) != 1 || creds[0].Label != "Skolens iPad" || !creds[0].Active() || creds[0].SignCount != 0 {
		t.Fatalf("stored credentials = %+v", creds)
	}
	handle := must[[]byte](t)(e.st.UserHandle(context.Background(), school.PupilOwner(e.pupil.ID)))
	if !bytes.Equal(handle, d.auth.Options.UserHandle) || len(handle) != 64 {
		t.Fatal("the authenticator did not get the pupil's random user handle")
	}
	// The code is spent.
	_, err := e.st.EnrolmentCodeByHash(context.Background(), enrolment.Hash(testSealer, strings.ReplaceAll(code, "-", "")))
	if err == nil {
		t.Fatal("code still usable after registration")
	}

	// Username-less login, back to where the pupil was going.
	status, res := b.loginWith(d, "/me?x=1")
	if status != 200 || res["next"] != "/me?x=1" {
		t.Fatalf("login/finish = %d %v", status, res)
	}
	status, body = b.get("/me")
	if status != 200 {
		t.Fatalf("GET /me = %d", status)
	}
	contains(t, body, "Hej Ida", "Demoskolen", `value="Skolens iPad"`, "denne enhed", "Din eneste adgangsnøgle")
	c := e.credentials(e.pupil)[0]
	if c.LastUsedAt.IsZero() {
		t.Fatal("last use not recorded")
	}
	sessions := must[[]school.Session](t)(e.st.ListSessions(context.Background(), e.pupil.ID))
	if len(sessions) != 1 || !sessions[0].UserVerified || sessions[0].ACR != "passkey" || !bytes.Equal(sessions[0].CredentialID, c.ID) {
		t.Fatalf("sessions = %+v", sessions)
	}

	// A second device: a second login session; sign out the other one.
	b2 := e.browser("en")
	if status, res := b2.loginWith(d, ""); status != 200 || res["next"] != "/me" {
		t.Fatalf("second login = %d %v", status, res)
	}
	status, body = b2.get("/me")
	if status != http.StatusOK {
		t.Fatalf("/me on the second device = %d", status)
	}
	contains(t, body, "Hi Ida", "this device", "Sign out everywhere else")
	if status, _, _ := b2.form("/me/sessions/revoke-others", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke-others = %d", status)
	}
	if status, _ := b.get("/me"); status != http.StatusSeeOther {
		t.Fatalf("the signed-out browser still sees /me: %d", status)
	}

	// Rename; removing the only passkey is refused until a reset is pending.
	id := base64.RawURLEncoding.EncodeToString(c.ID)
	status, _, h := b2.form("/me/passkeys/"+id+"/rename", url.Values{"label": {"  Min   telefon "}})
	if status != http.StatusSeeOther || h.Get("Location") != "/me?msg=renamed" || e.credentials(e.pupil)[0].Label != "Min telefon" {
		t.Fatalf("rename = %d %s %q", status, h.Get("Location"), e.credentials(e.pupil)[0].Label)
	}
	_, _, h = b2.form("/me/passkeys/"+id+"/remove", nil)
	if h.Get("Location") != "/me?err=last" || !e.credentials(e.pupil)[0].Active() {
		t.Fatalf("last passkey removed: %s", h.Get("Location"))
	}
	_, body = b2.get("/me?err=last")
	contains(t, body, "You cannot remove your only passkey")
	e.issue(e.pupil) // teacher reset pending
	_, _, h = b2.form("/me/passkeys/"+id+"/remove", nil)
	if h.Get("Location") != "/login" || e.credentials(e.pupil)[0].Active() {
		t.Fatalf("remove with a pending reset: %s", h.Get("Location"))
	}
	// The session opened with the removed passkey ended with it, and the
	// passkey cannot log in any more.
	if status, _ := b2.get("/me"); status != http.StatusSeeOther {
		t.Fatalf("/me after removing the session's passkey = %d", status)
	}
	if status, res := b2.loginWith(d, ""); status != http.StatusUnauthorized {
		t.Fatalf("login with a removed passkey = %d %v", status, res)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, onSQLite)
	b := e.browser("da")
	d := e.device()
	b.enrol(d, e.issue(e.pupil), "")
	if status, _ := b.loginWith(d, ""); status != 200 {
		t.Fatal(status)
	}
	if c := e.credentials(e.pupil)[0]; !strings.HasPrefix(c.Label, "Adgangsnøgle fra ") {
		t.Fatalf("default label = %q", c.Label)
	}
	// Logged in: /login goes straight on unless forced.
	_, _, h := b.do("GET", "/login?return_to=/me", "", nil)
	if h.Get("Location") != "/me" {
		t.Fatalf("logged-in /login redirects to %q", h.Get("Location"))
	}
	if status, body := b.get(strings.TrimPrefix(login.ReauthURL("/me"), "")); status != 200 || !strings.Contains(body, `autocomplete="username webauthn"`) {
		t.Fatalf("forced login page = %d", status)
	}
	status, _, h := b.form("/logout", nil)
	if status != http.StatusSeeOther || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout = %d %q", status, h.Get("Set-Cookie"))
	}
	if n := len(must[[]school.Session](t)(e.st.ListSessions(context.Background(), e.pupil.ID))); n != 0 {
		t.Fatalf("%d sessions after logout", n)
	}
}

// TestNewLoginEndsPrevious: a login in a browser that holds another
// pupil session (a shared classroom computer, or the same pupil again)
// ends that session, so that nothing is left signed in behind the new
// cookie.
func TestNewLoginEndsPrevious(t *testing.T) {
	e := newEnv(t, onSQLite)
	ctx := context.Background()
	b := e.browser("da")
	ida, bo := e.device(), e.device()
	b.enrol(ida, e.issue(e.pupil), "")
	other := e.newPupil("Bo", true)
	e.browser("da").enrol(bo, e.issue(other), "")
	if status, _ := b.loginWith(ida, ""); status != 200 {
		t.Fatal(status)
	}
	first := must[[]school.Session](t)(e.st.ListSessions(ctx, e.pupil.ID))
	if len(first) != 1 {
		t.Fatalf("Ida's sessions = %d", len(first))
	}
	if status, _ := b.loginWith(bo, ""); status != 200 {
		t.Fatal(status)
	}
	if n := len(must[[]school.Session](t)(e.st.ListSessions(ctx, e.pupil.ID))); n != 0 {
		t.Fatalf("Ida has %d sessions after Bo signed in in her browser", n)
	}
	if n := len(must[[]school.Session](t)(e.st.ListSessions(ctx, other.ID))); n != 1 {
		t.Fatalf("Bo's sessions = %d", n)
	}
	if _, body := b.get("/me"); !strings.Contains(body, "Bo") || strings.Contains(body, "Ida") {
		t.Fatal("/me after the second login does not show Bo only")
	}
}

func TestCookie(t *testing.T) {
	e := newEnv(t, onSQLite)
	b := e.browser("da")
	d := e.device()
	b.enrol(d, e.issue(e.pupil), "x")
	cer, opts := b.beginLogin()
	raw, _ := json.Marshal(map[string]any{"ceremony": cer, "credential": d.assert(opts)})
	_, _, h := b.do("POST", "/login/finish", "application/json", bytes.NewReader(raw))
	c := h.Get("Set-Cookie")
	for _, want := range []string{"elevid_session=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"} {
		if !strings.Contains(c, want) {
			t.Fatalf("cookie %q lacks %q", c, want)
		}
	}
	if strings.Contains(c, "Secure") {
		t.Fatal("Secure cookie on an http issuer")
	}
	// The cookie holds only an encrypted random id: no pupil data.
	val := strings.SplitN(strings.SplitN(c, ";", 2)[0], "=", 2)[1]
	if strings.Contains(val, e.pupil.ID) || len(val) > 400 {
		t.Fatalf("cookie value %q", val)
	}
	// A forged cookie is no session.
	req, _ := http.NewRequest("GET", e.srv.URL+"/me", nil)
	req.AddCookie(&http.Cookie{Name: "elevid_session", Value: val[:len(val)-4] + "AAAA"})
	if _, ok := e.login.Current(req); ok {
		t.Fatal("forged cookie accepted")
	}
	req.Header.Del("Cookie")
	req.AddCookie(&http.Cookie{Name: "elevid_session", Value: val})
	if s, ok := e.login.Current(req); !ok || s.SubjectID != e.pupil.ID {
		t.Fatal("genuine cookie refused")
	}
	// The SAML adapter sees the same session, named so that the access
	// service can end it (school.SAMLSessionID).
	sessions := saml.LoginSessions(e.login.Current, login.LoginURL)
	ss, ok := sessions.Current(req)
	if !ok || ss.PupilID != e.pupil.ID || ss.AuthTime.IsZero() {
		t.Fatalf("SAML session = %+v %v", ss, ok)
	}
	if ref := school.SAMLSessionRef(ss.ID, ss.PupilID); ref == "" || ss.ID != school.SAMLSessionID(e.pupil.ID, ref) {
		t.Fatalf("SAML session id %q names no login session", ss.ID)
	}
}

func TestSessionKeysAndIssuer(t *testing.T) {
	e := newEnv(t, onSQLite)
	site := webtest.NewSite(t)
	pk := passkey.Config{RPID: "localhost", Origins: []string{e.origin}}
	newKeys := [][]byte{school.NewSecret(64), school.NewSecret(32)}
	oldKeys := [][]byte{school.NewSecret(64), school.NewSecret(32)}
	for i, keys := range [][][]byte{
		{school.NewSecret(32), school.NewSecret(32)},
		{school.NewSecret(64)},
		{school.NewSecret(64), school.NewSecret(16)},
	} {
		if _, err := login.NewLogin(login.LoginOptions{Store: e.st, Site: site, Passkey: pk, SessionKeys: keys}); err == nil {
			t.Fatalf("bad keys %d accepted", i)
		}
	}
	// An https issuer: Secure, __Host- cookie.
	newLogin := func(keys [][]byte) (*login.Login, *http.ServeMux) {
		l, err := login.NewLogin(login.LoginOptions{Store: e.st, Site: site, Passkey: pk, Issuer: "https://elevid.example.dk", SessionKeys: keys, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		l.Mount(mux)
		return l, mux
	}
	d := e.device()
	e.browser("da").enrol(d, e.issue(e.pupil), "")
	oldLogin, mux := newLogin(oldKeys)
	post := func(path string, v any) *httptest.ResponseRecorder {
		raw, _ := json.Marshal(v)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", path, bytes.NewReader(raw)))
		return rec
	}
	var begun map[string]any
	_ = json.Unmarshal(post("/login/begin", map[string]any{}).Body.Bytes(), &begun)
	opts, err := virtualwebauthn.ParseAssertionOptions(optionsJSON(t, begun))
	if err != nil {
		t.Fatal(err)
	}
	rec := post("/login/finish", map[string]any{"ceremony": begun["ceremony"], "credential": d.assert(opts)})
	c := rec.Header().Get("Set-Cookie")
	if rec.Code != 200 || !strings.HasPrefix(c, "__Host-elevid_session=") || !strings.Contains(c, "; Secure") || !strings.Contains(c, "HttpOnly") {
		t.Fatalf("https cookie = %d %q", rec.Code, c)
	}
	req := httptest.NewRequest("GET", "/me", nil)
	req.Header.Set("Cookie", strings.SplitN(c, ";", 2)[0])
	if _, ok := oldLogin.Current(req); !ok {
		t.Fatal("cookie refused by its own keys")
	}
	// Rotation: new keys first, old after: the old cookie still works.
	rotated, _ := newLogin(append(append([][]byte{}, newKeys...), oldKeys...))
	if _, ok := rotated.Current(req); !ok {
		t.Fatal("rotation broke an existing cookie")
	}
	// Without the old keys it is no session.
	onlyNew, _ := newLogin(newKeys)
	if _, ok := onlyNew.Current(req); ok {
		t.Fatal("a cookie under retired keys was accepted")
	}
}

func TestReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "/me",
		"/oidc/authorize?x=1":   "/oidc/authorize?x=1",
		"//evil.example/x":      "/me",
		"/\\evil.example":       "/me",
		"https://evil.example/": "/me",
		"javascript:alert(1)":   "/me",
		"/ok\r\nSet-Cookie: x":  "/me",
		"me":                    "/me",
	} {
		if got := login.SafeReturnTo(in); got != want {
			t.Errorf("SafeReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
	if got := login.LoginURL("https://evil.example/"); got != "/login?return_to=%2Fme" {
		t.Errorf("LoginURL = %q", got)
	}
	// The finish answer never sends the browser off-site to a return_to
	// (only a continued authorization request goes to its platform's
	// registered redirect URI: TestOIDCLoginContinues).
	e := newEnv(t, onSQLite)
	b := e.browser("da")
	d := e.device()
	b.enrol(d, e.issue(e.pupil), "x")
	if _, res := b.loginWith(d, "//evil.example/"); res["next"] != "/me" {
		t.Fatalf("next = %v", res["next"])
	}
}

func TestBadCodes(t *testing.T) {
	e := newEnv(t, onSQLite)
	ctx := context.Background()
	for _, tc := range []struct {
		name, lang, code, want string
		status                 int
	}{
		{"malformed da", "da", "abc", "Koden er forkert", 400},
		{"unknown en", "en", "ABCD-EFGH-JKMN", "The code is wrong", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.browser(tc.lang).form("/enrol", url.Values{"code": {tc.code}})
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("= %d, want %d with %q:\n%s", status, tc.status, tc.want, body)
			}
		})
	}
	// Used.
	b := e.browser("en")
	code := e.issue(e.pupil)
	b.enrol(e.device(), code, "")
	status, body, _ := b.form("/enrol", url.Values{"code": {code}})
	if status != 400 || !strings.Contains(body, "already been used") {
		t.Fatalf("used code = %d %s", status, body)
	}
	status, res := b.json("/enrol/begin", map[string]string{"code": code})
	if status != 400 || !strings.Contains(res["error"].(string), "already been used") {
		t.Fatalf("used code at begin = %d %v", status, res)
	}
	// Expired.
	p2 := e.newPupil("Bo", true)
	code2 := e.issue(p2)
	e.clock.Advance(7*24*time.Hour + time.Minute)
	status, body, _ = e.browser("da").form("/enrol", url.Values{"code": {code2}})
	if status != 400 || !strings.Contains(body, "Koden virker ikke længere") {
		t.Fatalf("expired code = %d %s", status, body)
	}
	// No consent: no code at all.
	p3 := e.newPupil("Cy", false)
	if _, _, err := e.enr.Issue(ctx, p3.ID, "staff"); err == nil {
		t.Fatal("code issued without consent")
	}
	// Quarantined pupil with a code: refused.
	p4 := e.newPupil("Di", true)
	code4 := e.issue(p4)
	must[school.Pupil](t)(e.st.UpdatePupil(ctx, p4.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilQuarantined; return p, nil }))
	status, body, _ = e.browser("en").form("/enrol", url.Values{"code": {code4}})
	if status != 403 || !strings.Contains(body, "cannot create a passkey right now") {
		t.Fatalf("quarantined pupil's code = %d %s", status, body)
	}
	if !strings.Contains(e.logs.String(), "enrol: code refused") {
		t.Fatal("refusals are not logged")
	}
}

// mutate rewrites a field of a ceremony answer's response.
func mutate(t *testing.T, raw json.RawMessage, fn func(m map[string]any)) json.RawMessage {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, _ := json.Marshal(m)
	return out
}

func tamperClientData(t *testing.T, raw json.RawMessage, fn func(cd map[string]any)) json.RawMessage {
	return mutate(t, raw, func(m map[string]any) {
		resp := m["response"].(map[string]any)
		cdRaw, _ := base64.RawURLEncoding.DecodeString(resp["clientDataJSON"].(string))
		var cd map[string]any
		_ = json.Unmarshal(cdRaw, &cd)
		fn(cd)
		b, _ := json.Marshal(cd)
		resp["clientDataJSON"] = base64.RawURLEncoding.EncodeToString(b)
	})
}

func TestBadRegistrations(t *testing.T) {
	e := newEnv(t, onSQLite)
	code := e.issue(e.pupil)
	b := e.browser("en")
	for _, tc := range []struct {
		name   string
		make   func(d *device, opts *virtualwebauthn.AttestationOptions) json.RawMessage
		status int
	}{
		{"tampered clientDataJSON", func(d *device, o *virtualwebauthn.AttestationOptions) json.RawMessage {
			return tamperClientData(t, d.attest(o), func(cd map[string]any) { cd["challenge"] = "AAAA" + cd["challenge"].(string)[4:] })
		}, 400},
		{"clientDataJSON with an extra byte", func(d *device, o *virtualwebauthn.AttestationOptions) json.RawMessage {
			return tamperClientData(t, d.attest(o), func(cd map[string]any) { cd["x"] = 1 })
		}, 400},
		{"wrong origin", func(d *device, o *virtualwebauthn.AttestationOptions) json.RawMessage {
			d.rp.Origin = "http://evil.localhost:1"
			return d.attest(o)
		}, 400},
		{"wrong RP ID", func(d *device, o *virtualwebauthn.AttestationOptions) json.RawMessage {
			d.rp.ID = "evil.example"
			return d.attest(o)
		}, 400},
		{"no user verification", func(d *device, o *virtualwebauthn.AttestationOptions) json.RawMessage {
			d.auth.Options.UserNotVerified = true
			return d.attest(o)
		}, 400},
		{"garbage", func(d *device, o *virtualwebauthn.AttestationOptions) json.RawMessage {
			return json.RawMessage(`{"id":"x","type":"public-key"}`)
		}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cer, opts := b.beginEnrol(code)
			status, res := b.json("/enrol/finish", map[string]any{"ceremony": cer, "credential": tc.make(e.device(), opts)})
			if status != tc.status || res["ok"] == true || res["error"] == "" {
				t.Fatalf("= %d %v", status, res)
			}
			if n := len(e.credentials(e.pupil)); n != 0 {
				t.Fatalf("%d credentials stored", n)
			}
		})
	}
	if !strings.Contains(e.logs.String(), "enrol: registration refused") {
		t.Fatal("refused registrations are not logged")
	}
	// Aborted half way (begun, never finished): the code still works.
	b.beginEnrol(code)
	d := e.device()
	b.enrol(d, code, "")
	// A replayed finish: the ceremony is gone.
	cer, opts := b.beginEnrol(e.issue(e.pupil))
	body := map[string]any{"ceremony": cer, "credential": e.device().attest(opts)}
	if status, _ := b.json("/enrol/finish", body); status != 200 {
		t.Fatal(status)
	}
	if status, res := b.json("/enrol/finish", body); status != 400 || !strings.Contains(res["error"].(string), "try again") {
		t.Fatalf("replayed finish = %d %v", status, res)
	}
	// Registering the same authenticator credential again is excluded.
	code3 := e.issue(e.pupil)
	cer, opts = b.beginEnrol(code3)
	if len(opts.ExcludeCredentials) != 2 {
		t.Fatalf("exclusions = %v", opts.ExcludeCredentials)
	}
	if status, _ := b.json("/enrol/finish", map[string]any{"ceremony": cer, "credential": d.attest(opts)}); status != http.StatusConflict {
		t.Fatalf("re-registering a credential = %d", status)
	}
	if len(e.credentials(e.pupil)) != 2 {
		t.Fatal("duplicate stored")
	}
	// … and the failed attempt did not spend the code.
	b.enrol(e.device(), code3, "")
}

func TestExpiredRegistrationCeremony(t *testing.T) {
	e := newEnv(t, onSQLite)
	code := e.issue(e.pupil)
	b := e.browser("en")
	cer, opts := b.beginEnrol(code)
	e.clock.Advance(6 * time.Minute)
	if status, _ := b.json("/enrol/finish", map[string]any{"ceremony": cer, "credential": e.device().attest(opts)}); status != 400 {
		t.Fatalf("expired ceremony = %d", status)
	}
	if len(e.credentials(e.pupil)) != 0 {
		t.Fatal("stored")
	}
}

func TestConcurrentFinish(t *testing.T) {
	for _, kind := range []storeKind{onSQLite, onPostgres} {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t, kind)
			code := e.issue(e.pupil)
			const n = 4
			type attempt struct {
				b    *browser
				body map[string]any
			}
			var as []attempt
			for range n {
				b := e.browser("en")
				cer, opts := b.beginEnrol(code)
				as = append(as, attempt{b, map[string]any{"ceremony": cer, "credential": e.device().attest(opts)}})
			}
			var wg sync.WaitGroup
			statuses := make([]int, n)
			start := make(chan struct{})
			for i, a := range as {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					statuses[i], _ = a.b.json("/enrol/finish", a.body)
				}()
			}
			close(start)
			wg.Wait()
			ok, conflict := 0, 0
			for _, s := range statuses {
				switch s {
				case 200:
					ok++
				case http.StatusConflict:
					conflict++
				}
			}
			if ok != 1 || conflict != n-1 {
				t.Fatalf("statuses = %v", statuses)
			}
			if got := len(e.credentials(e.pupil)); got != 1 {
				t.Fatalf("%d credentials stored", got)
			}
		})
	}
}

func TestBadLogins(t *testing.T) {
	e := newEnv(t, onSQLite)
	ctx := context.Background()
	b := e.browser("en")
	d := e.device()
	b.enrol(d, e.issue(e.pupil), "")
	noSession := func(t *testing.T) {
		t.Helper()
		if n := len(must[[]school.Session](t)(e.st.ListSessions(ctx, e.pupil.ID))); n != 0 {
			t.Fatalf("%d sessions stored", n)
		}
	}
	for _, tc := range []struct {
		name   string
		make   func(d *device, opts *virtualwebauthn.AssertionOptions) json.RawMessage
		status int
	}{
		{"tampered clientDataJSON", func(d *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			return tamperClientData(t, d.assert(o), func(cd map[string]any) { cd["type"] = "webauthn.create" })
		}, 401},
		{"wrong origin", func(d *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			d2 := *d
			d2.rp.Origin = "http://localhost:1"
			return d2.assert(o)
		}, 401},
		{"wrong RP ID", func(d *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			d2 := *d
			d2.rp.ID = "evil.example"
			return d2.assert(o)
		}, 401},
		{"no user verification", func(d *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			d2 := *d
			d2.auth.Options.UserNotVerified = true
			return d2.assert(o)
		}, 401},
		{"unknown credential", func(_ *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			other := e.device()
			other.auth.Options.UserHandle = d.auth.Options.UserHandle
			return other.assert(o)
		}, 401},
		{"unknown user handle", func(d *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			d2 := *d
			d2.auth.Options.UserHandle = []byte("someone else")
			return d2.assert(o)
		}, 401},
		{"signature of another challenge", func(d *device, o *virtualwebauthn.AssertionOptions) json.RawMessage {
			o2 := *o
			o2.Challenge = []byte("0123456789abcdef0123456789abcdef")
			return d.assert(&o2)
		}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cer, opts := b.beginLogin()
			status, res := b.json("/login/finish", map[string]any{"ceremony": cer, "credential": tc.make(d, opts)})
			if status != tc.status || res["ok"] == true || res["error"] == "" {
				t.Fatalf("= %d %v", status, res)
			}
			noSession(t)
		})
	}
	if !strings.Contains(e.logs.String(), "login: refused") {
		t.Fatal("refused logins are not logged")
	}

	// Replayed assertion: the same finish body twice.
	cer, opts := b.beginLogin()
	body := map[string]any{"ceremony": cer, "credential": d.assert(opts)}
	if status, _ := b.json("/login/finish", body); status != 200 {
		t.Fatal(status)
	}
	if status, res := b.json("/login/finish", body); status != 400 || !strings.Contains(res["error"].(string), "too long") {
		t.Fatalf("replay = %d %v", status, res)
	}
	// The old assertion under a fresh ceremony: wrong challenge.
	cer2, _ := b.beginLogin()
	if status, _ := b.json("/login/finish", map[string]any{"ceremony": cer2, "credential": body["credential"]}); status != 401 {
		t.Fatalf("old assertion, new ceremony = %d", status)
	}
	// Expired challenge.
	cer3, opts3 := b.beginLogin()
	e.clock.Advance(6 * time.Minute)
	if status, _ := b.json("/login/finish", map[string]any{"ceremony": cer3, "credential": d.assert(opts3)}); status != 400 {
		t.Fatalf("expired challenge = %d", status)
	}
	// A registration ceremony is no login ceremony.
	cer4, _ := b.beginEnrol(e.issue(e.pupil))
	if status, _ := b.json("/login/finish", map[string]any{"ceremony": cer4, "credential": d.assert(opts)}); status != 400 {
		t.Fatalf("registration ceremony used for login = %d", status)
	}

	// Quarantined pupils cannot log in; restored, they can again.
	must[school.Pupil](t)(e.st.UpdatePupil(ctx, e.pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilQuarantined; return p, nil }))
	if status, res := b.loginWith(d, ""); status != 401 || !strings.Contains(res["error"].(string), "cannot sign in right now") {
		t.Fatalf("quarantined login = %d %v", status, res)
	}
	must[school.Pupil](t)(e.st.UpdatePupil(ctx, e.pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilActive; return p, nil }))
	if status, _ := b.loginWith(d, ""); status != 200 {
		t.Fatal(status)
	}
	// Revoked credentials cannot.
	must[school.Credential](t)(e.st.UpdateCredential(ctx, school.OwnerPupil, d.cred.ID, func(c school.Credential) (school.Credential, error) { c.RevokedAt = e.clock.Now(); return c, nil }))
	if status, _ := b.loginWith(d, ""); status != 401 {
		t.Fatalf("revoked credential = %d", status)
	}
	// Malformed bodies.
	for _, raw := range []string{`{`, `{"ceremony":"x"}`, `{"ceremony":"x","credential":{},"extra":1}`} {
		status, _, _ := b.do("POST", "/login/finish", "application/json", strings.NewReader(raw))
		if status != 400 {
			t.Fatalf("%s = %d", raw, status)
		}
	}
}

func TestCounterRegression(t *testing.T) {
	e := newEnv(t, onSQLite)
	b := e.browser("da")
	d := e.device()
	b.enrol(d, e.issue(e.pupil), "")
	d.cred.Counter = 5
	if status, _ := b.loginWith(d, ""); status != 200 {
		t.Fatal(status)
	}
	if c := e.credentials(e.pupil)[0]; c.SignCount != 5 || c.CloneWarning {
		t.Fatalf("after counter 5: %+v", c)
	}
	d.cred.Counter = 3
	if status, _ := b.loginWith(d, ""); status != 200 {
		t.Fatal(status)
	}
	c := e.credentials(e.pupil)[0]
	if c.SignCount != 5 || !c.CloneWarning {
		t.Fatalf("counter regression not flagged: %+v", c)
	}
	if !strings.Contains(e.logs.String(), "possibly cloned") {
		t.Fatal("counter regression not logged")
	}
	entries := must[[]school.AuditEntry](t)(e.st.ListAudit(context.Background(), school.AuditFilter{SchoolID: e.school.ID, SubjectID: e.pupil.ID}))
	found := false
	for _, a := range entries {
		found = found || a.Action == "passkey.clone_warning"
	}
	if !found {
		t.Fatalf("no audit entry: %+v", entries)
	}
	_, body := b.get("/me")
	contains(t, body, "den kan være kopieret")
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t, onSQLite)
	b := e.browser("da")
	d := e.device()
	b.enrol(d, e.issue(e.pupil), "")
	if status, _ := b.loginWith(d, ""); status != 200 {
		t.Fatal(status)
	}
	e.clock.Advance(59 * time.Minute)
	if status, _ := b.get("/me"); status != 200 {
		t.Fatalf("/me within the idle timeout = %d", status)
	}
	e.clock.Advance(61 * time.Minute)
	status, _, h := b.do("GET", "/me", "", nil)
	if status != http.StatusSeeOther || h.Get("Location") != "/login?return_to=%2Fme" {
		t.Fatalf("/me after the idle timeout = %d %s", status, h.Get("Location"))
	}
}
