package oidc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/web"
)

// TestOIDCRepeatedParameters: the probe's PKCE downgrade
// (code_challenge_method=S256&code_challenge_method=plain) and every other
// repeated parameter are refused at the authorization, token, revocation
// and end-session endpoints (RFC 6749 §3.1), in the query and in the form.
func TestOIDCRepeatedParameters(t *testing.T) {
	e := idptest.NewOIDCEnv(t)
	pub := e.NewRP(t, "publicapp", idptest.RPOptions{Public: true})
	e.GrantConsent(pub.Platform.ID)
	b := idptest.NewBrowser()
	e.PasskeyLogin(t, b, "/me")

	verifier := "plain-verifier-plain-verifier-plain-verifier-0123456789"
	base := "client_id=publicapp&redirect_uri=" + url.QueryEscape(pub.Config.RedirectURL) +
		"&response_type=code&scope=openid&state=st&code_challenge=" + verifier
	downgrade := base + "&code_challenge_method=S256&code_challenge_method=plain"
	resp := b.Get(t, e.Server.URL+"/oidc/authorize?"+downgrade)
	page := idptest.Body(t, resp)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, "<html") {
		t.Fatalf("PKCE downgrade by repeated parameter: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The same as a POST form, and split between query and form.
	for name, send := range map[string]func() *http.Response{
		"form": func() *http.Response {
			r, err := b.Client.PostForm(e.Server.URL+"/oidc/authorize", mustQuery(t, downgrade))
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		"query and form": func() *http.Response {
			r, err := b.Client.PostForm(e.Server.URL+"/oidc/authorize?code_challenge_method=plain", mustQuery(t, base+"&code_challenge_method=S256"))
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		"repeated redirect_uri": func() *http.Response {
			return b.Get(t, e.Server.URL+"/oidc/authorize?"+base+"&code_challenge_method=S256&redirect_uri="+url.QueryEscape(pub.Config.RedirectURL))
		},
	} {
		resp := send()
		idptest.Body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("%s: %d Location %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// Token endpoint: a valid code with the grant_type or code repeated.
	res := e.Authorize(t, b, pub)
	if res.Code == "" {
		t.Fatalf("baseline flow: %+v", res)
	}
	form := url.Values{"grant_type": {"authorization_code", "authorization_code"}, "code": {res.Code}, "client_id": {"publicapp"},
		"redirect_uri": {pub.Config.RedirectURL}, "code_verifier": {res.Verifier}}
	resp, err := http.PostForm(e.Server.URL+"/oidc/token", form)
	if err != nil {
		t.Fatal(err)
	}
	if s := idptest.Body(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(s, "invalid_request") || !strings.Contains(s, "grant_type") {
		t.Fatalf("token with repeated grant_type: %d %s", resp.StatusCode, s)
	}
	// The code is still good (a refused request loses nothing).
	if _, err := pub.Exchange(context.Background(), res); err != nil {
		t.Fatalf("the code after a refused request: %v", err)
	}

	// End session with post_logout_redirect_uri twice.
	resp = b.Get(t, e.Server.URL+"/oidc/end_session?client_id=publicapp&post_logout_redirect_uri=https://a.example/&post_logout_redirect_uri=https://b.example/")
	idptest.Body(t, resp)
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
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "fp", idptest.RPOptions{})
	e.GrantConsent(rp.Platform.ID)
	b := idptest.NewBrowser()
	res := e.Authorize(t, b, rp, oauth2.SetAuthURLParam("response_mode", "form_post"))
	if res.Status != http.StatusOK {
		t.Fatalf("form_post: stopped with %d", res.Status)
	}
	page := res.Page
	if strings.Contains(page, "onload") || regexp.MustCompile(`<script>[^<]`).MatchString(page) {
		t.Fatalf("form_post page has inline script:\n%s", page)
	}
	if !strings.Contains(page, `<script src="/static/auto-post.js"`) || !strings.Contains(page, `<button type="submit"`) ||
		!strings.Contains(page, `action="`+rp.Config.RedirectURL+`"`) {
		t.Fatalf("form_post page lacks the script, the button or the action:\n%s", page)
	}
	m := regexp.MustCompile(`name="code" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no code in the form:\n%s", page)
	}
	res.Code = m[1]
	if _, err := rp.Exchange(context.Background(), res); err != nil {
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
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "ui", idptest.RPOptions{})
	e.GrantConsent(rp.Platform.ID)
	tok, _ := e.SignIn(t, idptest.NewBrowser(), rp)

	get := func(header, query string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.Server.URL+"/oidc/userinfo"+query, nil)
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
		t.Fatalf("valid token: %d %s", resp.StatusCode, idptest.Body(t, resp))
	} else {
		var m map[string]any
		_ = json.Unmarshal([]byte(idptest.Body(t, resp)), &m)
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
		idptest.Body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%s token: %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Revoked (by the platform itself).
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/oidc/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rp.Config.ClientID, rp.Config.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	idptest.Body(t, resp)
	resp = get("Bearer "+tok.AccessToken, "")
	s := idptest.Body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
		!strings.Contains(s, "invalid_token") {
		t.Fatalf("revoked token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), s)
	}
}

// TestOIDCRevokeOtherClientsToken: RFC 7009 §2.2: revoking another
// platform's token answers 200 like an unknown token and revokes nothing.
func TestOIDCRevokeOtherClientsToken(t *testing.T) {
	e := idptest.NewOIDCEnv(t)
	victim := e.NewRP(t, "victim", idptest.RPOptions{})
	other := e.NewRP(t, "other", idptest.RPOptions{})
	e.GrantConsent(victim.Platform.ID)
	tok, _ := e.SignIn(t, idptest.NewBrowser(), victim)
	revoke := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/oidc/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(other.Config.ClientID, other.Config.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	known, unknown := revoke(tok.AccessToken), revoke("not-a-token")
	kb, ub := idptest.Body(t, known), idptest.Body(t, unknown)
	if known.StatusCode != 200 || unknown.StatusCode != 200 || kb != ub {
		t.Fatalf("another client's token: %d %q; unknown token: %d %q", known.StatusCode, kb, unknown.StatusCode, ub)
	}
	if _, err := victim.Provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("another client revoked the victim's token: %v", err)
	}
}
