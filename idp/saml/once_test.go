package saml_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
)

// Danish (the default language) texts of the two pages a flow that cannot
// be answered gets.
const (
	replayedText = "Denne login-forespørgsel er allerede brugt."
	expiredText  = "Login-forespørgslen er udløbet eller allerede brugt."
)

// wantPage checks that resp is the error page with text (400) and that
// nothing went towards the SP.
func wantPage(t *testing.T, resp *http.Response, text string) {
	t.Helper()
	body := idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "SAMLResponse") || resp.Header.Get("Location") != "" {
		t.Fatalf("status %d (Location %q), want the error page\n%.400s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if !strings.Contains(body, html.EscapeString(text)) && !strings.Contains(body, text) {
		t.Fatalf("error page lacks %q:\n%.600s", text, body)
	}
}

// ssoLocation posts el to /saml/sso and returns the resume URL.
func ssoLocation(t *testing.T, h *idptest.SAMLHarness, form url.Values) string {
	t.Helper()
	resp := h.PostCrossSite(t, "/saml/sso", form)
	idptest.ReadAll(t, resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/saml/resume?flow=") {
		t.Fatalf("SSO answered %d %q, want 303 to /saml/resume", resp.StatusCode, loc)
	}
	return loc
}

// TestSAMLAnsweredOnce: the AuthnRequest travels sealed in the resume URL
// and its id is recorded when it is answered, so an AuthnRequest id is
// never answered twice (a replayed request gets a resume URL, but no
// second answer), a resume URL never yields two answers, and a flow value
// that is altered, expired or sealed for another purpose is refused.
func TestSAMLAnsweredOnce(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{WantSignedRequests: true}})
	sid := h.Sessions.Login(h.Pupil.ID)
	ctx := context.Background()
	participants := func() int {
		ps, err := h.Store.SAMLParticipants(ctx, school.SAMLSessionID(h.Pupil.ID, sessionRef(t, h, sid)))
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}

	t.Run("replayed request", func(t *testing.T) {
		el := signedAuthn(t, h, sp, nil, nil)
		id := el.SelectAttrValue("ID", "")
		form := url.Values{"SAMLRequest": {idptest.EncodeEl(t, el)}}
		first, replay := ssoLocation(t, h, form), ssoLocation(t, h, form)
		if first == replay {
			t.Fatal("two arrivals sealed to one resume URL")
		}
		releases, parts := len(h.Releases.Got), participants()
		// Whichever is resumed first is answered; here the replay.
		resp := h.Get(t, replay, sid)
		action, out := idptest.PostedForm(t, idptest.ReadAll(t, resp))
		if _, err := sp.ACS(t, action, out, id); err != nil {
			t.Fatalf("SP rejected the first answer: %v", samlErr(err))
		}
		wantPage(t, h.Get(t, first, sid), replayedText)
		wantPage(t, h.Get(t, replay, sid), replayedText)
		if len(h.Releases.Got) != releases+1 || participants() != parts+1 {
			t.Fatalf("releases %d → %d, SP sessions %d → %d; want one each", releases, len(h.Releases.Got), parts, participants())
		}
	})

	t.Run("resume URL used twice", func(t *testing.T) {
		loc := ssoLocation(t, h, url.Values{"SAMLRequest": {idptest.EncodeEl(t, signedAuthn(t, h, sp, nil, nil))}})
		// Without a session the pupil is sent to log in: nothing is used.
		r := h.Get(t, loc, "")
		idptest.ReadAll(t, r)
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("resume without a session: %d", r.StatusCode)
		}
		resp := h.Get(t, loc, sid)
		if body := idptest.ReadAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "SAMLResponse") {
			t.Fatalf("first resume: %d", resp.StatusCode)
		}
		wantPage(t, h.Get(t, loc, sid), replayedText)
	})

	t.Run("refusal used twice", func(t *testing.T) {
		other := h.NewSP(t, idptest.SPOptions{EntityID: "https://noconsent.example/saml/metadata"})
		loc := ssoLocation(t, h, url.Values{"SAMLRequest": {idptest.EncodeEl(t, signedAuthn(t, h, other, nil, nil))}})
		resp := h.Get(t, loc, sid)
		idptest.ReadAll(t, resp)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/saml/refused?") {
			t.Fatalf("refusal: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		wantPage(t, h.Get(t, loc, sid), replayedText)
	})

	t.Run("passive status used twice", func(t *testing.T) {
		loc := ssoLocation(t, h, url.Values{"SAMLRequest": {idptest.EncodeEl(t, signedAuthn(t, h, sp, nil, func(a *saml.AuthnRequest) {
			passive := true
			a.IsPassive = &passive
		}))}})
		resp := h.Get(t, loc, "") // no session: NoPassive goes back at once
		if body := idptest.ReadAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "SAMLResponse") {
			t.Fatalf("passive: %d", resp.StatusCode)
		}
		wantPage(t, h.Get(t, loc, ""), replayedText)
	})

	// reseal opens a real flow value, lets edit change its JSON, and
	// seals it again for purpose.
	loc := ssoLocation(t, h, url.Values{"SAMLRequest": {idptest.EncodeEl(t, signedAuthn(t, h, sp, nil, nil))}})
	token, _ := url.Parse(loc)
	value := token.Query().Get("flow")
	reseal := func(t *testing.T, purpose string, edit func(map[string]any)) string {
		raw, err := base64.RawURLEncoding.DecodeString(value)
		if err != nil {
			t.Fatal(err)
		}
		b, err := h.Sealer.Open(raw, idpsaml.SealSSOFlowPurpose)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(m)
		}
		b, _ = json.Marshal(m)
		return "/saml/resume?flow=" + base64.RawURLEncoding.EncodeToString(h.Sealer.Seal(b, purpose))
	}
	for _, c := range []struct {
		name, url, text string
	}{
		{"altered", "/saml/resume?flow=" + value[:len(value)-3] + flip(value[len(value)-3]) + value[len(value)-2:], expiredText},
		{"truncated", "/saml/resume?flow=" + value[:len(value)/2], expiredText},
		{"empty", "/saml/resume?flow=", expiredText},
		{"not base64", "/saml/resume?flow=%25%25", expiredText},
		{"too long", "/saml/resume?flow=" + strings.Repeat("A", 5000), expiredText},
		{"sealed for OIDC", reseal(t, "oidc-auth-request", nil), expiredText},
		{"sealed for a stored secret", reseal(t, "ldap:x", nil), expiredText},
		{"expired", reseal(t, idpsaml.SealSSOFlowPurpose, func(m map[string]any) {
			m["e"] = time.Now().Add(-time.Second).Format(time.RFC3339Nano)
		}), expiredText},
	} {
		t.Run(c.name, func(t *testing.T) { wantPage(t, h.Get(t, c.url, sid), c.text) })
	}
	// The value itself still answers: the refusals above were for what
	// was done to it.
	resp := h.Get(t, loc, sid)
	if body := idptest.ReadAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "SAMLResponse") {
		t.Fatalf("untouched flow: %d", resp.StatusCode)
	}
}

// flip returns another base64url character than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// sessionRef returns the ref of the pupil session behind cookie sid.
func sessionRef(t *testing.T, h *idptest.SAMLHarness, sid string) string {
	t.Helper()
	s, err := h.Store.TouchSession(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	return s.Ref
}

// TestSAMLSealedFlowBounded: a request whose sealed flow would make the
// resume URL too long (here 300 requested authn context class refs) is
// refused at /saml/sso, not sent on to the login page's return_to.
func TestSAMLSealedFlowBounded(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	el := signedAuthn(t, h, sp, nil, func(a *saml.AuthnRequest) {
		rac := &saml.RequestedAuthnContext{Comparison: "minimum"}
		for range 300 {
			rac.AuthnContextClassRefs = append(rac.AuthnContextClassRefs, "https://refeds.org/profile/mfa")
		}
		a.RequestedAuthnContext = rac
	})
	wantRejected(t, h, []attackCase{{"long sealed flow", func(t *testing.T) *http.Response { return postSSO(h, t, el) }}})
}
