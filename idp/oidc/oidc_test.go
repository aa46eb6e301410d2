package oidc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

type idClaims struct {
	Sub         string   `json:"sub"`
	Nonce       string   `json:"nonce"`
	ACR         string   `json:"acr"`
	AMR         []string `json:"amr"`
	SID         string   `json:"sid"`
	AuthTime    int64    `json:"auth_time"`
	GivenName   string   `json:"given_name"`
	FamilyName  string   `json:"family_name"`
	Name        string   `json:"name"`
	Groups      []string `json:"groups"`
	EPPN        string   `json:"eduperson_principal_name"`
	Affiliation []string `json:"eduperson_scoped_affiliation"`
	HomeOrg     string   `json:"schac_home_organization"`
}

// TestOIDCFullFlow runs a go-oidc + oauth2 relying party through
// discovery, authorize, passkey login, code exchange with PKCE, ID token
// verification, userinfo, refresh (rotating), RP-initiated logout and
// back-channel logout.
func TestOIDCFullFlow(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) { testOIDCFullFlow(t, pg) })
	}
}

func testOIDCFullFlow(t *testing.T, pg bool) {
	ctx := context.Background()
	e := idptest.NewOIDCEnvOn(t, pg, oidc.KeyPolicy{})
	rp := e.NewRP(t, "mathplatform", idptest.RPOptions{Offline: true, Scopes: []string{"openid", "profile", "groups", "eduperson", "offline_access"}})
	other := e.NewRP(t, "otherplatform", idptest.RPOptions{Sector: "other.example"})
	e.GrantConsent(rp.Platform.ID)
	e.GrantConsent(other.Platform.ID)

	// Discovery says what ElevID supports.
	var disco struct {
		Issuer           string   `json:"issuer"`
		ResponseTypes    []string `json:"response_types_supported"`
		SubjectTypes     []string `json:"subject_types_supported"`
		PKCE             []string `json:"code_challenge_methods_supported"`
		BackchannelOK    bool     `json:"backchannel_logout_supported"`
		GrantTypes       []string `json:"grant_types_supported"`
		EndSession       string   `json:"end_session_endpoint"`
		IntrospectionURL string   `json:"introspection_endpoint"`
		RevocationURL    string   `json:"revocation_endpoint"`
	}
	resp, err := http.Get(e.Server.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(idptest.Body(t, resp)), &disco); err != nil {
		t.Fatal(err)
	}
	if disco.Issuer != e.Server.URL || !slices.Equal(disco.ResponseTypes, []string{"code"}) || !slices.Contains(disco.SubjectTypes, "pairwise") ||
		!slices.Equal(disco.PKCE, []string{"S256"}) || !disco.BackchannelOK || slices.Contains(disco.GrantTypes, "implicit") ||
		disco.EndSession != e.Server.URL+"/oidc/end_session" {
		t.Fatalf("discovery = %+v", disco)
	}

	b := idptest.NewBrowser()
	res := e.Authorize(t, b, rp)
	if res.Code == "" {
		t.Fatalf("no code: %+v", res)
	}
	tok, err := rp.Exchange(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.Verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	wantSub := release.Pairwise(e.Secret, e.Pupil.ID, "127.0.0.1")
	if c.Sub != wantSub || c.Nonce != res.Nonce || c.GivenName != "Ida" || c.FamilyName != "Hansen" || c.Name != "Ida Hansen" ||
		!slices.Equal(c.Groups, []string{"7A"}) || c.EPPN != wantSub+"@demo.elevid.dk" || c.ACR != login.ACRREFEDSMFA ||
		!slices.Contains(c.AMR, "hwk") || c.SID == "" || c.AuthTime == 0 {
		t.Fatalf("ID token claims = %+v (want sub %s)", c, wantSub)
	}
	if c.Affiliation != nil || c.HomeOrg != "" {
		t.Fatalf("claims the platform is not allowed were released: %+v", c)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token although offline_access is allowed")
	}

	// Userinfo with the access token.
	ui, err := rp.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uc idClaims
	if err := ui.Claims(&uc); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != wantSub || uc.GivenName != "Ida" || !slices.Equal(uc.Groups, []string{"7A"}) {
		t.Fatalf("userinfo = %+v %+v", ui, uc)
	}

	// The other platform gets another subject for the same pupil, and the
	// session is reused (no second passkey login).
	tok2, idt2 := e.SignIn(t, b, other)
	if idt2.Subject != release.Pairwise(e.Secret, e.Pupil.ID, "other.example") || idt2.Subject == wantSub {
		t.Fatalf("subject at the second platform = %q", idt2.Subject)
	}

	// Release log: one entry per sign-in (the ID token's entry covers
	// what userinfo gives for the same grant): rp, then other.
	rels, err := e.Store.ListReleases(ctx, e.Pupil.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 || rels[1].Via != "id_token" || rels[1].PlatformID != rp.Platform.ID || rels[0].PlatformID != other.Platform.ID ||
		!slices.Equal(rels[1].Claims, []string{"sub", "eduperson_principal_name", "family_name", "given_name", "groups", "name"}) {
		t.Fatalf("releases = %+v", rels)
	}

	// Refresh rotates: the new refresh token works, the old one is refused
	// and its reuse revokes the grant.
	ts := rp.Config.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
	tok3, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok3.RefreshToken == "" || tok3.RefreshToken == tok.RefreshToken || tok3.AccessToken == tok.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", tok3)
	}
	if _, err := rp.Verifier.Verify(ctx, tok3.Extra("id_token").(string)); err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	_, err = rp.Config.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant")
	_, err = rp.Config.TokenSource(ctx, &oauth2.Token{RefreshToken: tok3.RefreshToken}).Token()
	wantOAuthError(t, err, "invalid_grant") // the whole grant is revoked after reuse
	if _, err := rp.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok3)); err == nil {
		t.Fatal("an access token of a revoked grant still works at userinfo")
	}

	// RP-initiated logout with the ID token hint: the browser session ends,
	// the other platform receives a back-channel logout token, and the
	// browser lands on the logged-out page.
	end := e.Server.URL + "/oidc/end_session?" + url.Values{"id_token_hint": {raw}, "client_id": {"mathplatform"}}.Encode()
	resp = b.Get(t, end)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/oidc/logged-out" {
		t.Fatalf("end_session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d != 1 || f != 0 || err != nil {
		t.Fatalf("queued logouts after end_session: %d delivered, %d failed, %v", d, f, err)
	}
	logouts := other.ReceivedLogouts()
	if len(logouts) != 1 {
		t.Fatalf("other platform received %d logout tokens", len(logouts))
	}
	checkLogoutToken(t, ctx, other, logouts[0], idt2.Subject)
	if got := rp.ReceivedLogouts(); len(got) != 0 {
		t.Fatalf("the platform that logged out was sent %d logout tokens", len(got))
	}
	if _, err := other.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok2)); err == nil {
		t.Fatal("the other platform's token survived the logout")
	}
	// The browser session is gone: prompt=none now answers login_required.
	res = e.Authorize(t, b, rp, oauth2.SetAuthURLParam("prompt", "none"))
	if res.Err != "login_required" {
		t.Fatalf("prompt=none after logout: %+v", res)
	}
}

// checkLogoutToken verifies a logout token as a platform must (OIDC
// Back-Channel Logout §2.6).
func checkLogoutToken(t *testing.T, ctx context.Context, rp *idptest.RP, raw, wantSub string) {
	t.Helper()
	v := rp.Provider.Verifier(&gooidc.Config{ClientID: rp.Config.ClientID, SkipExpiryCheck: false})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("logout token: %v", err)
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
	if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || c.Sub != wantSub || c.SID == "" || c.Nonce != "" {
		t.Fatalf("logout token claims = %+v", c)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if !strings.Contains(string(hdr), `"logout+jwt"`) {
		t.Fatalf("logout token header = %s", hdr)
	}
}

func wantOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if err == nil || !asRetrieveError(err, &re) || re.ErrorCode != code {
		t.Fatalf("error = %v, want OAuth error %s", err, code)
	}
}

func asRetrieveError(err error, re **oauth2.RetrieveError) bool {
	for err != nil {
		if r, ok := err.(*oauth2.RetrieveError); ok {
			*re = r
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// TestOIDCConsentAndPolicy: without consent the flow ends with
// access_denied at the platform and nothing is released; withdrawal stops
// userinfo and LogoutPupil sends back-channel logout.
func TestOIDCConsentAndPolicy(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "noconsent", idptest.RPOptions{Attrs: []school.AttributeGrant{{Name: release.GivenName, JustificationDA: "greeting", JustificationEN: "greeting"}}})
	b := idptest.NewBrowser()
	res := e.Authorize(t, b, rp)
	if res.Err != "access_denied" || res.Code != "" {
		t.Fatalf("without consent: %+v", res)
	}
	if rels, _ := e.Store.ListReleases(ctx, e.Pupil.ID); len(rels) != 0 {
		t.Fatalf("released without consent: %+v", rels)
	}

	e.GrantConsent(rp.Platform.ID)
	tok, idt := e.SignIn(t, b, rp)
	var c map[string]any
	_ = idt.Claims(&c)
	// Only given_name is allowed, although profile and groups were asked for.
	for _, k := range []string{"family_name", "name", "groups", "eduperson_principal_name"} {
		if _, ok := c[k]; ok {
			t.Fatalf("claim %s released though not allowed: %v", k, c)
		}
	}
	if c["given_name"] != "Ida" {
		t.Fatalf("claims = %v", c)
	}

	// Consent withdrawn: userinfo refuses; ending the access revokes and
	// the queue worker tells the platform.
	e.WithdrawConsent()
	if _, err := rp.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("userinfo answered after consent was withdrawn")
	}
	if _, err := e.Access.EndIn(ctx, e.Store, access.Pupil(e.Pupil.ID), "consent withdrawn"); err != nil {
		t.Fatal(err)
	}
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d != 1 || f != 0 || err != nil {
		t.Fatalf("delivered %d, failed %d: %v", d, f, err)
	}
	if got := rp.ReceivedLogouts(); len(got) != 1 {
		t.Fatalf("logout tokens = %d", len(got))
	}
	checkLogoutToken(t, ctx, rp, rp.ReceivedLogouts()[0], idt.Subject)
	toks, _ := e.Store.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: e.Pupil.ID})
	if len(toks) != 0 {
		t.Fatalf("tokens survive the end of access: %d", len(toks))
	}

	// A quarantined pupil is not released either (ReleaseAllowed), even
	// with a login session (the withdrawal above ended the earlier one).
	e.GrantConsent(rp.Platform.ID)
	e.SignIn(t, b, rp)
	if _, err := e.Store.UpdatePupil(ctx, e.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilQuarantined; return p, nil }); err != nil {
		t.Fatal(err)
	}
	res = e.Authorize(t, b, rp)
	if res.Err != "access_denied" {
		t.Fatalf("quarantined pupil: %+v", res)
	}
}

// TestOIDCBadInput covers the refusals the issue lists.
// TestOIDCReusedCode: a second redemption of a code is refused and
// revokes what the first produced, on both stores (on PostgreSQL the
// token insert that finds the code used goes out with the COMMIT, so the
// refusal comes from there).
func TestOIDCReusedCode(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e := idptest.NewOIDCEnvOn(t, pg, oidc.KeyPolicy{})
			rp := e.NewRP(t, "reuse", idptest.RPOptions{})
			e.GrantConsent(rp.Platform.ID)
			res := e.Authorize(t, idptest.NewBrowser(), rp)
			tok, err := rp.Exchange(ctx, res)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rp.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
				t.Fatalf("userinfo before the reuse: %v", err)
			}
			_, err = rp.Exchange(ctx, res)
			wantOAuthError(t, err, "invalid_grant")
			if _, err := rp.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
				t.Fatal("the access token from a reused code still works")
			}
		})
	}
}

func TestOIDCBadInput(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "bad", idptest.RPOptions{})
	pub := e.NewRP(t, "publicapp", idptest.RPOptions{Public: true})
	e.GrantConsent(rp.Platform.ID)
	e.GrantConsent(pub.Platform.ID)
	b := idptest.NewBrowser()
	authz := func(v url.Values) *http.Response {
		t.Helper()
		return b.Get(t, e.Server.URL+"/oidc/authorize?"+v.Encode())
	}
	base := func(c *idptest.RP) url.Values {
		return url.Values{"client_id": {c.Config.ClientID}, "redirect_uri": {c.Config.RedirectURL}, "response_type": {"code"},
			"scope": {"openid profile"}, "state": {"st"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
			"code_challenge_method": {"S256"}}
	}

	t.Run("unregistered redirect URI: error page, no redirect", func(t *testing.T) {
		for _, bad := range []string{"https://evil.example/callback", rp.Config.RedirectURL + "/x", rp.Config.RedirectURL + "?a=1", "", strings.ToUpper(rp.Config.RedirectURL)} {
			v := base(rp)
			v.Set("redirect_uri", bad)
			resp := authz(v)
			page := idptest.Body(t, resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, "<html") {
				t.Fatalf("redirect_uri %q: %d %q", bad, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		v := base(rp)
		v.Set("client_id", "nobody")
		if resp := authz(v); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("unknown client: %d", resp.StatusCode)
		}
	})
	t.Run("unsupported response type", func(t *testing.T) {
		for _, rt := range []string{"token", "id_token", "code id_token", "foo"} {
			v := base(rp)
			v.Set("response_type", rt)
			resp := authz(v)
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			params, _ := url.ParseQuery(loc.Fragment)
			if rt == "foo" {
				params, _ = url.ParseQuery(loc.Fragment)
			}
			if resp.StatusCode != http.StatusFound || params.Get("error") != "unsupported_response_type" || params.Get("state") != "st" {
				t.Fatalf("response_type %q: %d %s", rt, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
	t.Run("missing or invalid parameters", func(t *testing.T) {
		cases := map[string]func(url.Values){
			"no PKCE for a public client": func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") },
			"plain PKCE":                  func(v url.Values) { v.Set("code_challenge_method", "plain") },
			"no openid scope":             func(v url.Values) { v.Set("scope", "profile") },
			"request object":              func(v url.Values) { v.Set("request", "eyJ.x.y") },
		}
		want := map[string]string{"no PKCE for a public client": "invalid_request", "plain PKCE": "invalid_request",
			"no openid scope": "invalid_scope", "request object": "request_not_supported"}
		for name, mod := range cases {
			v := base(pub)
			mod(v)
			resp := authz(v)
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != want[name] || !strings.HasPrefix(loc.String(), pub.Config.RedirectURL) {
				t.Fatalf("%s: %d %s", name, resp.StatusCode, loc)
			}
		}
	})

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		res := e.Authorize(t, b, rp)
		res.Verifier = oauth2.GenerateVerifier()
		_, err := rp.Exchange(ctx, res)
		wantOAuthError(t, err, "invalid_grant")
	})
	t.Run("public client: PKCE required at the token endpoint too", func(t *testing.T) {
		res := e.Authorize(t, b, pub)
		if _, err := pub.Config.Exchange(ctx, res.Code); err == nil {
			t.Fatal("code redeemed without verifier")
		}
		res = e.Authorize(t, b, pub)
		if _, err := pub.Exchange(ctx, res); err != nil {
			t.Fatalf("public client with PKCE: %v", err)
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		res := e.Authorize(t, b, rp)
		bad := rp.Config
		bad.ClientSecret = "wrong"
		_, err := bad.Exchange(ctx, res.Code, oauth2.VerifierOption(res.Verifier))
		var re *oauth2.RetrieveError
		if !asRetrieveError(err, &re) || (re.ErrorCode != "invalid_client" && re.ErrorCode != "unauthorized_client") || strings.Contains(string(re.Body), "goroutine") {
			t.Fatalf("wrong secret: %v", err)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		res := e.Authorize(t, b, rp)
		e.Clock.Advance(2 * time.Minute)
		_, err := rp.Exchange(ctx, res)
		wantOAuthError(t, err, "invalid_grant")
	})
	t.Run("altered code, or a request id as a code", func(t *testing.T) {
		// Codes and request ids are sealed values: an altered one opens
		// under no key, and a request id (sealed for another purpose) is
		// not a code even though it opens.
		res := e.Authorize(t, b, rp)
		alt := []byte(res.Code)
		alt[len(alt)/2] ^= 1
		bad := res
		bad.Code = string(alt)
		_, err := rp.Exchange(ctx, bad)
		wantOAuthError(t, err, "invalid_grant")
		fresh := idptest.NewBrowser()
		resp := fresh.Get(t, rp.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(res.Verifier)))
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		ret, _ := url.Parse(loc.Query().Get("return_to"))
		handle := ret.Query().Get("id")
		if loc.Path != "/login" || handle == "" {
			t.Fatalf("authorize without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		bad.Code = handle
		_, err = rp.Exchange(ctx, bad)
		wantOAuthError(t, err, "invalid_grant")
		// The genuine code still works once.
		if _, err := rp.Exchange(ctx, res); err != nil {
			t.Fatalf("the genuine code after the forgeries: %v", err)
		}
	})
	t.Run("long parameters survive the login", func(t *testing.T) {
		// The request's parameters travel sealed in the login's return
		// URL: a long nonce (here 3,000 characters) must not break it.
		nonce := strings.Repeat("n", 3000)
		res := e.Authorize(t, idptest.NewBrowser(), rp, oauth2.SetAuthURLParam("nonce", nonce))
		tok, err := rp.Exchange(ctx, res)
		if err != nil {
			t.Fatalf("flow with a long nonce: %v (status %d)", err, res.Status)
		}
		idt, err := rp.Verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil || idt.Nonce != nonce {
			t.Fatalf("ID token with a long nonce: %v", err)
		}
	})
	t.Run("unsupported grant and no client", func(t *testing.T) {
		resp, err := http.PostForm(e.Server.URL+"/oidc/token", url.Values{"grant_type": {"password"}, "username": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if s := idptest.Body(t, resp); resp.StatusCode != 400 || !strings.Contains(s, "unsupported_grant_type") {
			t.Fatalf("password grant: %d %s", resp.StatusCode, s)
		}
		resp, _ = http.PostForm(e.Server.URL+"/oidc/token", url.Values{"grant_type": {"client_credentials"}})
		if s := idptest.Body(t, resp); !strings.Contains(s, "unsupported_grant_type") {
			t.Fatalf("client_credentials: %s", s)
		}
	})
	t.Run("prompt=login asks for a fresh login", func(t *testing.T) {
		e.Authorize(t, b, rp) // a session exists now
		res := e.Authorize(t, b, rp, oauth2.SetAuthURLParam("prompt", "login"))
		if res.Code == "" {
			t.Fatalf("prompt=login: %+v", res)
		}
		res = e.Authorize(t, b, rp, oauth2.SetAuthURLParam("prompt", "none"))
		if res.Code == "" {
			t.Fatalf("prompt=none with a session: %+v", res)
		}
		// A fresh browser has no session: login_required.
		res = e.Authorize(t, idptest.NewBrowser(), rp, oauth2.SetAuthURLParam("prompt", "none"))
		if res.Err != "login_required" {
			t.Fatalf("prompt=none without session: %+v", res)
		}
		// Without a session, authorize sends the browser straight to the
		// passkey login (which returns to the hand-off); with one, to the
		// hand-off.
		first := func(b *idptest.Browser) *url.URL {
			resp := b.Get(t, rp.Config.AuthCodeURL(school.NewID(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			resp.Body.Close()
			u, _ := url.Parse(resp.Header.Get("Location"))
			return u
		}
		if u := first(idptest.NewBrowser()); u.Path != "/login" || !strings.HasPrefix(u.Query().Get("return_to"), "/oidc/login?id=") {
			t.Fatalf("no session: authorize sent the browser to %s", u)
		}
		if u := first(b); u.Path != "/oidc/login" || u.Query().Get("id") == "" {
			t.Fatalf("with a session: authorize sent the browser to %s", u)
		}
	})
	t.Run("introspection and revocation", func(t *testing.T) {
		res := e.Authorize(t, b, rp)
		tok, err := rp.Exchange(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		introspect := func(c *idptest.RP, secret string) map[string]any {
			req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/oidc/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(c.Config.ClientID, secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			_ = json.Unmarshal([]byte(idptest.Body(t, resp)), &m)
			return m
		}
		if m := introspect(rp, rp.Config.ClientSecret); m["active"] != true || m["client_id"] != rp.Config.ClientID || m["given_name"] != nil {
			t.Fatalf("introspection = %v", m)
		}
		if m := introspect(rp, "wrong"); m["active"] == true {
			t.Fatalf("introspection with a wrong secret = %v", m)
		}
		req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/oidc/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rp.Config.ClientID, rp.Config.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if s := idptest.Body(t, resp); resp.StatusCode != 200 {
			t.Fatalf("revoke: %d %s", resp.StatusCode, s)
		}
		if m := introspect(rp, rp.Config.ClientSecret); m["active"] == true {
			t.Fatalf("revoked token is active: %v", m)
		}
	})
}

// TestOIDCKeyRotation: tokens signed before a rotation verify during the
// overlap; afterwards the old key leaves the JWKS. RS256 platforms get
// RS256 tokens.
func TestOIDCKeyRotation(t *testing.T) {
	ctx := context.Background()
	policy := oidc.KeyPolicy{RotateEvery: 24 * time.Hour, PublishAhead: time.Hour, Overlap: 6 * time.Hour, Refresh: time.Second}
	e := idptest.NewOIDCEnvOn(t, false, policy)
	rp := e.NewRP(t, "rotating", idptest.RPOptions{})
	rsa := e.NewRP(t, "oldschool", idptest.RPOptions{Alg: "RS256"})
	e.GrantConsent(rp.Platform.ID)
	e.GrantConsent(rsa.Platform.ID)
	b := idptest.NewBrowser()
	issue := func(c *idptest.RP) string {
		t.Helper()
		tok, err := c.Exchange(ctx, e.Authorize(t, b, c))
		if err != nil {
			t.Fatal(err)
		}
		return tok.Extra("id_token").(string)
	}
	kid := func(raw string) string {
		hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
		var h struct {
			Kid, Alg string
		}
		_ = json.Unmarshal(hdr, &h)
		return h.Alg + ":" + h.Kid
	}
	jwksKids := func() []string {
		resp, err := http.Get(e.Server.URL + "/oidc/keys")
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []struct{ Kid, Alg string }
		}
		_ = json.Unmarshal([]byte(idptest.Body(t, resp)), &set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Alg+":"+k.Kid)
		}
		return out
	}
	old := issue(rp)
	if oldRSA := issue(rsa); !strings.HasPrefix(kid(oldRSA), "RS256:") {
		t.Fatalf("RS256 platform got %s", kid(oldRSA))
	}
	if !strings.HasPrefix(kid(old), "ES256:") || len(jwksKids()) != 2 {
		t.Fatalf("before rotation: token %s, jwks %v", kid(old), jwksKids())
	}

	// Due for rotation: the successor is published first, then signs.
	e.Clock.Advance(24*time.Hour - 30*time.Minute)
	if n := len(jwksKids()); n != 4 {
		t.Fatalf("successors not published ahead: %v", jwksKids())
	}
	if got := kid(issue(rp)); got != kid(old) {
		t.Fatalf("the successor signs before its time: %s", got)
	}
	e.Clock.Advance(time.Hour)
	fresh := issue(rp)
	if kid(fresh) == kid(old) {
		t.Fatal("no rotation after RotateEvery")
	}
	// A verifier with a fresh key cache accepts both tokens during the
	// overlap (go-oidc checks expiry with the real clock: tokens are young).
	v := gooidc.NewProvider
	p2, err := v(ctx, e.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	ver := p2.Verifier(&gooidc.Config{ClientID: rp.Config.ClientID, SupportedSigningAlgs: []string{"ES256"}})
	for _, raw := range []string{old, fresh} {
		if _, err := ver.Verify(ctx, raw); err != nil {
			t.Fatalf("token %s during overlap: %v", kid(raw), err)
		}
	}
	// After the overlap the old key is gone from the JWKS.
	e.Clock.Advance(7 * time.Hour)
	if kids := jwksKids(); slices.Contains(kids, kid(old)) || !slices.Contains(kids, kid(fresh)) {
		t.Fatalf("after overlap: jwks %v, old %s", kids, kid(old))
	}
	p3, _ := gooidc.NewProvider(ctx, e.Server.URL)
	if _, err := p3.Verifier(&gooidc.Config{ClientID: rp.Config.ClientID}).Verify(ctx, old); err == nil {
		t.Fatal("a token of a retired key still verifies")
	}
}

// TestOIDCKeysAcrossNodes: two providers on one store (two nodes) use the
// same keys, and a second node started concurrently does not add keys.
func TestOIDCKeysAcrossNodes(t *testing.T) {
	ctx := context.Background()
	clock := &idptest.Clock{}
	st, _ := idptest.OpenStore(t, false, clock.Now)
	sealer, _ := school.NewSealer([]byte("ssssssssssssssssssssssssssssssss"))
	keys := make(chan []string, 4)
	for range 4 {
		go func() {
			k := oidc.NewKeys(st, sealer, clock.Now, oidc.KeyPolicy{})
			pub, err := k.Published(ctx)
			if err != nil {
				t.Error(err)
			}
			var ids []string
			for _, x := range pub {
				ids = append(ids, x.ID())
			}
			slices.Sort(ids)
			keys <- ids
		}()
	}
	first := <-keys
	for range 3 {
		if got := <-keys; !slices.Equal(got, first) {
			t.Fatalf("nodes disagree on keys: %v vs %v", got, first)
		}
	}
	all, _ := st.ListOIDCSigningKeys(ctx)
	if len(all) != 2 || len(first) != 2 {
		t.Fatalf("stored keys = %d, published %v", len(all), first)
	}
}

// TestOIDCPlatformChangeReachesEveryNode changes a platform's client secret
// in the store, as another node or `elevid admin` would: within the
// platform cache's lifetime every request uses the new registration, and
// the old secret is refused.
func TestOIDCPlatformChangeReachesEveryNode(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "cachedplatform", idptest.RPOptions{})
	e.GrantConsent(rp.Platform.ID)
	b := idptest.NewBrowser()
	res := e.Authorize(t, b, rp)
	if _, err := rp.Exchange(ctx, res); err != nil {
		t.Fatalf("exchange with the registered secret: %v", err)
	}

	newSecret := oidc.NewClientSecret()
	if _, err := e.Store.UpdatePlatform(ctx, rp.Platform.ID, func(p school.Platform) (school.Platform, error) {
		s, err := oidc.ParseSettings(p.Settings)
		if err != nil {
			return p, err
		}
		s.SecretHash = oidc.HashClientSecret(newSecret)
		p.Settings, err = json.Marshal(s)
		return p, err
	}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(3 * time.Second) // past the cache's 2 s
	res = e.Authorize(t, b, rp)
	if _, err := rp.Exchange(ctx, res); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("exchange with the old secret after the change: %v, want invalid_client", err)
	}
	rp.Config.ClientSecret = newSecret
	res = e.Authorize(t, b, rp)
	if _, err := rp.Exchange(ctx, res); err != nil {
		t.Fatalf("exchange with the new secret: %v", err)
	}
}

// TestOIDCBackchannelLogoutQueued ends a pupil's grants while the
// platform's back-channel endpoint is down: the logout is queued, retried
// with backoff by the queue worker, and delivered once the platform is
// back; a platform that refuses the token is not tried again.
func TestOIDCBackchannelLogoutQueued(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "flakyplatform", idptest.RPOptions{})
	e.GrantConsent(rp.Platform.ID)
	b := idptest.NewBrowser()
	_, idt := e.SignIn(t, b, rp)
	setUp := func(ok bool) {
		rp.Mu.Lock()
		rp.LogoutOK = ok
		rp.Mu.Unlock()
	}
	queued := func() []school.LogoutNotice {
		t.Helper()
		l, err := e.Store.ListLogouts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	setUp(false)
	if _, err := e.Access.EndIn(ctx, e.Store, access.Pupil(e.Pupil.ID), "quarantined"); err != nil {
		t.Fatal(err)
	}
	if toks, _ := e.Store.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: e.Pupil.ID}); len(toks) != 0 {
		t.Fatalf("tokens survive while the platform is down: %d", len(toks))
	}
	q := queued()
	if len(q) != 1 || q[0].PlatformID != rp.Platform.ID || q[0].Subject != idt.Subject || q[0].SessionRef == "" || q[0].Protocol != school.ProtocolOIDC {
		t.Fatalf("queued = %+v", q)
	}
	// Due at once, but the platform is down; then not due until the retry.
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d != 0 || f != 1 || err != nil {
		t.Fatalf("platform down: %d delivered, %d failed, %v", d, f, err)
	}
	if q := queued(); len(q) != 1 || q[0].Attempts != 1 || q[0].LastError != "status 503" {
		t.Fatalf("after a failed attempt: %+v", q)
	}
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d+f != 0 || err != nil {
		t.Fatalf("before the retry: %d delivered, %d failed, %v", d, f, err)
	}
	// The platform is back: the next retry (30 s later) delivers a valid
	// logout token, once.
	setUp(true)
	e.Clock.Advance(31 * time.Second)
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-b"); d != 1 || f != 0 || err != nil {
		t.Fatalf("platform back: %d delivered, %d failed, %v", d, f, err)
	}
	got := rp.ReceivedLogouts()
	if len(got) != 1 {
		t.Fatalf("platform received %d logout tokens", len(got))
	}
	checkLogoutToken(t, ctx, rp, got[0], idt.Subject)
	if q := queued(); len(q) != 0 {
		t.Fatalf("%d notices left after delivery", len(q))
	}
	e.Clock.Advance(time.Hour)
	if d, f, _ := e.OIDC.DeliverQueuedLogouts(ctx, "node-b"); d+f != 0 || len(rp.ReceivedLogouts()) != 1 {
		t.Fatal("a delivered logout was sent again")
	}

	// A platform that answers 400 refused the token: no retry (the notice
	// stays visible until it expires).
	e.GrantConsent(rp.Platform.ID)
	e.SignIn(t, b, rp)
	rp.Mu.Lock()
	rp.LogoutOK, rp.FailStatus = false, http.StatusBadRequest
	rp.Mu.Unlock()
	if _, err := e.Access.EndIn(ctx, e.Store, access.Pupil(e.Pupil.ID), "quarantined"); err != nil {
		t.Fatal(err)
	}
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d != 0 || f != 1 || err != nil {
		t.Fatalf("refused: %d delivered, %d failed, %v", d, f, err)
	}
	e.Clock.Advance(2 * time.Hour)
	if d, f, _ := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d+f != 0 {
		t.Fatal("a refused logout token was sent again")
	}
}

// TestOIDCLoginContinues: a passkey login that returns to the hand-off
// of an authorization request the new session meets answers with the
// platform's redirect (the code), so the browser skips the hand-off; the
// consent is read at that moment. Every other case goes to the hand-off,
// which answers as it always did.
func TestOIDCLoginContinues(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "continues", idptest.RPOptions{})
	// toLogin starts an authorization request in a fresh browser and
	// returns the browser, the login's return_to and the request's state.
	toLogin := func(extra ...oauth2.AuthCodeOption) (*idptest.Browser, string, string, string) {
		t.Helper()
		b := idptest.NewBrowser()
		state, verifier := school.NewID(), oauth2.GenerateVerifier()
		opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(school.NewID()), oauth2.S256ChallengeOption(verifier)}, extra...)
		resp := b.Get(t, rp.Config.AuthCodeURL(state, opts...))
		resp.Body.Close()
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || u.Path != "/login" {
			t.Fatalf("authorize: %d to %q, want the login", resp.StatusCode, resp.Header.Get("Location"))
		}
		returnTo := u.Query().Get("return_to")
		if !strings.HasPrefix(returnTo, oidc.HandoffPath+"?") {
			t.Fatalf("return_to %q is not the hand-off", returnTo)
		}
		return b, returnTo, state, verifier
	}
	// handoff follows next (the hand-off) and returns where it sends the browser.
	handoff := func(b *idptest.Browser, next string) *http.Response {
		t.Helper()
		if !strings.HasPrefix(next, oidc.HandoffPath+"?") {
			t.Fatalf("login sent the browser to %q, want the hand-off", next)
		}
		resp := b.Get(t, e.Server.URL+next)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	// With consent: straight to the platform, and the code works.
	e.GrantConsent(rp.Platform.ID)
	b, returnTo, state, verifier := toLogin()
	next := e.PasskeyLogin(t, b, returnTo)
	u, err := url.Parse(next)
	if err != nil || !strings.HasPrefix(next, rp.Config.RedirectURL+"?") || u.Query().Get("state") != state || u.Query().Get("code") == "" {
		t.Fatalf("login with consent sent the browser to %q, want %s with the code and state %s", next, rp.Config.RedirectURL, state)
	}
	tok, err := rp.Exchange(ctx, idptest.FlowResult{Code: u.Query().Get("code"), Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	idt, err := rp.Verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil || c.ACR != login.ACRFor(true) || c.SID == "" {
		t.Fatalf("ID token claims %+v (%v)", c, err)
	}

	// Consent withdrawn after the request began: the login does not
	// continue, and the hand-off refuses.
	b, returnTo, _, _ = toLogin()
	e.WithdrawConsent()
	resp := handoff(b, e.PasskeyLogin(t, b, returnTo))
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "access_denied" {
		t.Fatalf("hand-off without consent: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// response_mode=form_post needs the hand-off's page.
	e.GrantConsent(rp.Platform.ID)
	b, returnTo, _, _ = toLogin(oauth2.SetAuthURLParam("response_mode", "form_post"))
	if resp := handoff(b, e.PasskeyLogin(t, b, returnTo)); resp.StatusCode != http.StatusOK {
		t.Fatalf("form_post hand-off: %d", resp.StatusCode)
	}

	// An expired request: the hand-off shows its error page.
	b, returnTo, _, _ = toLogin()
	e.Clock.Advance(11 * time.Minute)
	if resp := handoff(b, e.PasskeyLogin(t, b, returnTo)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired request at the hand-off: %d", resp.StatusCode)
	}

	// A login that returns elsewhere is not continued.
	b, _, _, _ = toLogin()
	if next := e.PasskeyLogin(t, b, "/me"); next != "/me" {
		t.Fatalf("login to /me sent the browser to %q", next)
	}
}
