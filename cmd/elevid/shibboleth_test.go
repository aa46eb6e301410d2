package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/elevid/elevid/internal/webauthntest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestShibbolethSOAPLogout runs against a real Shibboleth SP 3 (Apache
// with mod_shib and shibd) and a running `elevid serve`, both started by
// .ci/shibboleth.sh, which sets:
//
//	ELEVID_SHIB_SP      the SP's base URL (its protected page is /secure/)
//	ELEVID_SHIB_ENTITY  the SP's entity id (registered as a platform)
//	ELEVID_SHIB_IDP     ElevID's base URL
//	ELEVID_SHIB_DB      ElevID's SQLite database (for the set-up)
//
// A pupil signs in at the SP with a passkey (a software authenticator),
// the SP's session shows the released attributes; the guardian withdraws
// on the guardian page; the SOAP back-channel logout is delivered, and the
// SP's protected page asks for a new login.
func TestShibbolethSOAPLogout(t *testing.T) {
	spBase, entity, idpBase, dbPath := os.Getenv("ELEVID_SHIB_SP"), os.Getenv("ELEVID_SHIB_ENTITY"), os.Getenv("ELEVID_SHIB_IDP"), os.Getenv("ELEVID_SHIB_DB")
	if spBase == "" || entity == "" || idpBase == "" || dbPath == "" {
		t.Skip("needs a running Shibboleth SP and elevid serve: run .ci/shibboleth.sh")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dbPath, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// The pupil, the guardian's consent to the SP's attributes, the
	// school's activation of the SP and the pupil's passkey.
	sp := mustOK[school.Platform](t)(st.PlatformByClientID(ctx, entity))
	sch, err := st.SchoolByCode(ctx, "shib")
	if err != nil {
		sch = mustOK[school.School](t)(st.CreateSchool(ctx, school.School{Code: "shib", Name: "Shibskolen", Domain: "shib.elevid.test"}))
	}
	class := mustOK[school.Class](t)(st.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "7" + school.NewID()[:3]}))
	g := mustOK[school.Guardian](t)(st.CreateGuardian(ctx, school.Guardian{SchoolID: sch.ID, Name: "Mor Shib", Email: "mor@shib.elevid.test"}))
	p := mustOK[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: sch.ID, ExternalID: "shib-" + school.NewID()[:8], GivenName: "Ida", FamilyName: "Shib",
		BirthDate: time.Date(2013, 4, 1, 0, 0, 0, 0, time.UTC), ClassIDs: []string{class.ID}, GuardianIDs: []string{g.ID}, Status: school.PupilActive}))
	mustOK[school.Enrolment](t)(st.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, SchoolID: sch.ID, State: school.EnrolmentEnrolled, Rule: school.ConsentAny}))
	if _, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: sch.ID, PlatformID: sp.ID, ActivatedBy: "ci"}, true); err != nil {
		t.Fatal(err)
	}
	mustOK[school.Consent](t)(st.SetConsent(ctx, school.Consent{PupilID: p.ID, GuardianID: g.ID, PlatformID: sp.ID, Decision: school.DecisionGranted, Attributes: sp.Attributes}))
	handle := mustOK[[]byte](t)(st.UserHandle(ctx, school.PupilOwner(p.ID)))
	cred := webauthntest.NewCredential()
	mustOK[school.Credential](t)(st.AddCredential(ctx, school.Credential{ID: cred.ID, Owner: school.PupilOwner(p.ID), SchoolID: sch.ID,
		PublicKey: cred.Key.AttestationData(), AttestationFormat: "none", Label: "ci"}))

	b := &shibBrowser{t: t, idp: strings.TrimSuffix(idpBase, "/"), handle: handle, cred: cred}
	jar, _ := cookiejar.New(nil)
	b.c = &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Sign in at the SP's protected page: SP → IdP → passkey → SP.
	page := b.walk(spBase + "/secure/")
	if !strings.Contains(page, "shibboleth-protected") {
		t.Fatalf("protected page after sign-in:\n%.2000s", page)
	}
	session := b.walk(spBase + "/Shibboleth.sso/Session")
	for _, want := range []string{"givenName", "Ida", "affiliation", "student@shib.elevid.test"} {
		if !strings.Contains(session, want) {
			t.Fatalf("SP session lacks %q:\n%s", want, session)
		}
	}
	t.Logf("SP session:\n%s", session)

	// The guardian withdraws on the guardian page.
	token := base64.RawURLEncoding.EncodeToString(school.NewSecret(32))
	mustOK[school.GuardianLink](t)(st.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash(token), Kind: school.LinkGuardian,
		GuardianID: g.ID, SchoolID: sch.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	guardian := &http.Client{Jar: func() http.CookieJar { j, _ := cookiejar.New(nil); return j }(), Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, v url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, b.idp+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.idp)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := guardian.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("/guardian/login/"+token, url.Values{}); s/100 != 3 {
		t.Fatalf("guardian sign-in: %d", s)
	}
	withdrawn := time.Now()
	if s := post("/guardian/withdraw", url.Values{"pupil": {p.ID}, "platform": {sp.ID}, "confirm": {"yes"}}); s != http.StatusSeeOther {
		t.Fatalf("withdraw: %d", s)
	}
	// The SOAP LogoutRequest goes out from the queue: the notice is gone
	// once the SP answered Success.
	for {
		left := mustOK[[]school.LogoutNotice](t)(st.ListLogouts(ctx))
		if len(left) == 0 {
			break
		}
		if time.Since(withdrawn) > 20*time.Second {
			t.Fatalf("SAML logout notice not delivered: %+v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("SOAP logout delivered %v after the withdrawal", time.Since(withdrawn).Round(time.Millisecond))

	// The SP's protected page now asks for a new login at ElevID.
	resp := b.get(spBase + "/secure/")
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, b.idp+"/saml/sso") {
		t.Fatalf("protected page after the withdrawal: %d %q (want a redirect to ElevID)", resp.StatusCode, loc)
	}
}

// shibBrowser follows redirects and auto-posted forms between an SP and
// ElevID, and answers ElevID's passkey login with a software key.
type shibBrowser struct {
	t      *testing.T
	c      *http.Client
	idp    string
	handle []byte
	cred   virtualwebauthn.Credential
}

var (
	shibFormRE  = regexp.MustCompile(`(?is)<form[^>]*method="post"[^>]*action="([^"]+)"`)
	shibInputRE = regexp.MustCompile(`(?is)<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
)

func (b *shibBrowser) get(u string) *http.Response {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

// walk starts at u and follows redirects, auto-posted SAML forms and the
// passkey login until a page answers 200 without such a form.
func (b *shibBrowser) walk(u string) string {
	b.t.Helper()
	var resp *http.Response
	var err error
	for range 20 {
		if resp == nil {
			pu, _ := url.Parse(u)
			if strings.HasPrefix(u, b.idp) && pu.Path == "/login" {
				u = b.idp + b.passkeyLogin(pu.Query().Get("return_to"))
				continue
			}
			resp = b.get(u)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 3 {
			next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				b.t.Fatal(err)
			}
			u, resp = next.String(), nil
			continue
		}
		if resp.StatusCode != http.StatusOK {
			b.t.Fatalf("%s: %d\n%.2000s", resp.Request.URL, resp.StatusCode, body)
		}
		m := shibFormRE.FindSubmatch(body)
		if m == nil || !bytes.Contains(body, []byte(`name="SAML`)) {
			return string(body)
		}
		action, _ := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
		v := url.Values{}
		for _, in := range shibInputRE.FindAllSubmatch(body, -1) {
			v.Set(html.UnescapeString(string(in[1])), html.UnescapeString(string(in[2])))
		}
		req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", resp.Request.URL.Scheme+"://"+resp.Request.URL.Host)
		if resp, err = b.c.Do(req); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Fatalf("too many steps from %s", u)
	return ""
}

// passkeyLogin signs in at ElevID with the software passkey and returns
// where ElevID sends the browser next.
func (b *shibBrowser) passkeyLogin(returnTo string) string {
	b.t.Helper()
	post := func(path string, body, out any) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, b.idp+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", b.idp)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := b.c.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.t.Fatalf("%s: %d %s", path, resp.StatusCode, data)
		}
		if err := json.Unmarshal(data, out); err != nil {
			b.t.Fatalf("%s: %v", path, err)
		}
	}
	var begun struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	post("/login/begin", map[string]string{}, &begun)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(begun.Options))
	if err != nil {
		b.t.Fatal(err)
	}
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: b.handle})
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID", Origin: b.idp}
	assertion := virtualwebauthn.CreateAssertionResponse(rp, auth, b.cred, *opts)
	var done struct {
		OK   bool   `json:"ok"`
		Next string `json:"next"`
	}
	post("/login/finish", map[string]any{"ceremony": begun.Ceremony, "credential": json.RawMessage(assertion), "return_to": returnTo}, &done)
	if !done.OK || done.Next == "" {
		b.t.Fatalf("login finish: %+v", done)
	}
	return done.Next
}
