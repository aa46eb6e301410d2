package idp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// TestOIDCRepeatedParameters: the probe's PKCE downgrade
// (code_challenge_method=S256&code_challenge_method=plain) and every other
// repeated parameter are refused at the authorization, token, revocation
// and end-session endpoints (RFC 6749 §3.1), in the query and in the form.
func TestOIDCRepeatedParameters(t *testing.T) {
	e := newOIDCEnv(t)
	pub := e.newRP(t, "publicapp", rpOptions{public: true})
	e.grantConsent(pub.platform.ID)
	b := newBrowser()
	e.passkeyLogin(t, b, "/me")

	verifier := "plain-verifier-plain-verifier-plain-verifier-0123456789"
	base := "client_id=publicapp&redirect_uri=" + url.QueryEscape(pub.cfg.RedirectURL) +
		"&response_type=code&scope=openid&state=st&code_challenge=" + verifier
	downgrade := base + "&code_challenge_method=S256&code_challenge_method=plain"
	resp := b.get(t, e.srv.URL+"/oidc/authorize?"+downgrade)
	page := body(t, resp)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, "<html") {
		t.Fatalf("PKCE downgrade by repeated parameter: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The same as a POST form, and split between query and form.
	for name, send := range map[string]func() *http.Response{
		"form": func() *http.Response {
			r, err := b.c.PostForm(e.srv.URL+"/oidc/authorize", mustQuery(t, downgrade))
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		"query and form": func() *http.Response {
			r, err := b.c.PostForm(e.srv.URL+"/oidc/authorize?code_challenge_method=plain", mustQuery(t, base+"&code_challenge_method=S256"))
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		"repeated redirect_uri": func() *http.Response {
			return b.get(t, e.srv.URL+"/oidc/authorize?"+base+"&code_challenge_method=S256&redirect_uri="+url.QueryEscape(pub.cfg.RedirectURL))
		},
	} {
		resp := send()
		body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("%s: %d Location %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// Token endpoint: a valid code with the grant_type or code repeated.
	res := e.authorize(t, b, pub)
	if res.code == "" {
		t.Fatalf("baseline flow: %+v", res)
	}
	form := url.Values{"grant_type": {"authorization_code", "authorization_code"}, "code": {res.code}, "client_id": {"publicapp"},
		"redirect_uri": {pub.cfg.RedirectURL}, "code_verifier": {res.verifier}}
	resp, err := http.PostForm(e.srv.URL+"/oidc/token", form)
	if err != nil {
		t.Fatal(err)
	}
	if s := body(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(s, "invalid_request") || !strings.Contains(s, "grant_type") {
		t.Fatalf("token with repeated grant_type: %d %s", resp.StatusCode, s)
	}
	// The code is still good (a refused request loses nothing).
	if _, err := pub.exchange(context.Background(), res); err != nil {
		t.Fatalf("the code after a refused request: %v", err)
	}

	// End session with post_logout_redirect_uri twice.
	resp = b.get(t, e.srv.URL+"/oidc/end_session?client_id=publicapp&post_logout_redirect_uri=https://a.example/&post_logout_redirect_uri=https://b.example/")
	body(t, resp)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("end_session with a repeated parameter: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOIDCFormPostUnderCSP: response_mode=form_post answers with a page
// whose only script is an external file the CSP allows, with a visible
// submit button and the code in the form.
func TestOIDCFormPostUnderCSP(t *testing.T) {
	e := newOIDCEnv(t)
	rp := e.newRP(t, "fp", rpOptions{})
	e.grantConsent(rp.platform.ID)
	b := newBrowser()
	res := e.authorize(t, b, rp, oauth2.SetAuthURLParam("response_mode", "form_post"))
	if res.status != http.StatusOK {
		t.Fatalf("form_post: stopped with %d", res.status)
	}
	page := res.page
	if strings.Contains(page, "onload") || regexp.MustCompile(`<script>[^<]`).MatchString(page) {
		t.Fatalf("form_post page has inline script:\n%s", page)
	}
	if !strings.Contains(page, `<script src="/static/auto-post.js"`) || !strings.Contains(page, `<button type="submit"`) ||
		!strings.Contains(page, `action="`+rp.cfg.RedirectURL+`"`) {
		t.Fatalf("form_post page lacks the script, the button or the action:\n%s", page)
	}
	m := regexp.MustCompile(`name="code" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no code in the form:\n%s", page)
	}
	res.code = m[1]
	if _, err := rp.exchange(context.Background(), res); err != nil {
		t.Fatalf("the posted code: %v", err)
	}
	rec := httptest.NewRecorder()
	web.Static().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/static/auto-post.js", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "auto-post-form") {
		t.Fatalf("auto-post.js: %d", rec.Code)
	}
}

// TestOIDCUserinfoBearerErrors: RFC 6750 answers on userinfo; no token in
// the query string.
func TestOIDCUserinfoBearerErrors(t *testing.T) {
	e := newOIDCEnv(t)
	rp := e.newRP(t, "ui", rpOptions{})
	e.grantConsent(rp.platform.ID)
	tok, _ := e.signIn(t, newBrowser(), rp)

	get := func(header, query string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/oidc/userinfo"+query, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := get("Bearer "+tok.AccessToken, ""); resp.StatusCode != 200 {
		t.Fatalf("valid token: %d %s", resp.StatusCode, body(t, resp))
	} else {
		var m map[string]any
		_ = json.Unmarshal([]byte(body(t, resp)), &m)
		if m["sub"] == nil {
			t.Fatalf("userinfo = %v", m)
		}
	}
	if resp := get("", "?access_token="+url.QueryEscape(tok.AccessToken)); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
		t.Fatalf("token in the query: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := get("", ""); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for name, h := range map[string]string{"garbage": "Bearer garbage", "empty": "Bearer ", "basic": "Basic Zm9vOmJhcg=="} {
		resp := get(h, "")
		body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%s token: %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Revoked (by the platform itself).
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oidc/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rp.cfg.ClientID, rp.cfg.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	resp = get("Bearer "+tok.AccessToken, "")
	s := body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
		!strings.Contains(s, "invalid_token") {
		t.Fatalf("revoked token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), s)
	}
}

// TestOIDCRevokeOtherClientsToken: RFC 7009 §2.2: revoking another
// platform's token answers 200 like an unknown token and revokes nothing.
func TestOIDCRevokeOtherClientsToken(t *testing.T) {
	e := newOIDCEnv(t)
	victim := e.newRP(t, "victim", rpOptions{})
	other := e.newRP(t, "other", rpOptions{})
	e.grantConsent(victim.platform.ID)
	tok, _ := e.signIn(t, newBrowser(), victim)
	revoke := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oidc/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(other.cfg.ClientID, other.cfg.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	known, unknown := revoke(tok.AccessToken), revoke("not-a-token")
	kb, ub := body(t, known), body(t, unknown)
	if known.StatusCode != 200 || unknown.StatusCode != 200 || kb != ub {
		t.Fatalf("another client's token: %d %q; unknown token: %d %q", known.StatusCode, kb, unknown.StatusCode, ub)
	}
	if _, err := victim.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("another client revoked the victim's token: %v", err)
	}
}

// TestMeForeignSessionRef: signing out another pupil's session from /me
// says nothing changed and changes nothing.
func TestMeForeignSessionRef(t *testing.T) {
	ctx := context.Background()
	e := newOIDCEnv(t)
	b := newBrowser()
	e.passkeyLogin(t, b, "/me")
	other, err := e.st.CreatePupil(ctx, school.Pupil{SchoolID: e.school.ID, ExternalID: "ext-bo", GivenName: "Bo", FamilyName: "Berg", Status: school.PupilActive})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	victim, err := e.st.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: other.ID, SchoolID: e.school.ID,
		ExpiresAt: now.Add(time.Hour), IdleTimeout: time.Hour, AuthTime: now})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.c.PostForm(e.srv.URL+"/me/sessions/"+victim.Ref+"/revoke", nil)
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/me?err=session" {
		t.Fatalf("foreign ref: %d %q", resp.StatusCode, loc)
	}
	if _, err := e.st.TouchSession(ctx, victim.ID); err != nil {
		t.Fatalf("the other pupil's session: %v", err)
	}
	resp = b.get(t, e.srv.URL+"/me?err=session")
	if s := body(t, resp); !strings.Contains(s, "nothing was changed") && !strings.Contains(s, "intet er ændret") {
		t.Fatalf("the page does not say nothing changed:\n%.2000s", s)
	}
}

// TestSAMLRelayStateLimit: SP-initiated requests with a RelayState over 80
// bytes are refused (SAML bindings §3.4.3, §3.5.3); 80 bytes pass.
func TestSAMLRelayStateLimit(t *testing.T) {
	h := newHarness(t)
	sp := h.newSP(t, spOptions{consent: true})
	send := func(relay string) *http.Response {
		authn, err := sp.MakeAuthenticationRequest(h.srv.URL+"/saml/sso", saml.HTTPPostBinding, saml.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		return h.postCrossSite(t, "/saml/sso", url.Values{"SAMLRequest": {encodeEl(t, authn.Element())}, "RelayState": {relay}})
	}
	if resp := send(strings.Repeat("r", 80)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("80-byte RelayState: %d %.300s", resp.StatusCode, readAll(t, resp))
	}
	wantRejected(t, h, []attackCase{
		{"81-byte RelayState (POST)", func(t *testing.T) *http.Response { return send(strings.Repeat("r", 81)) }},
		{"long RelayState (redirect)", func(t *testing.T) *http.Response {
			authn, err := sp.MakeAuthenticationRequest(h.srv.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
			if err != nil {
				t.Fatal(err)
			}
			u, err := authn.Redirect(strings.Repeat("x", 200), sp.ServiceProvider)
			if err != nil {
				t.Fatal(err)
			}
			return h.get(t, u.String(), "")
		}},
	})
}
