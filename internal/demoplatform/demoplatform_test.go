package demoplatform_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/internal/demoplatform"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school/access"
)

// TestOIDCDemoPlatform walks a browser through the built-in demo platform:
// it logs in with the passkey through the OIDC provider and shows the
// claims it received; after a withdrawal ElevID's back-channel logout
// reaches it and its next page says it was signed out by ElevID; its
// own sign-out ends its session and ElevID's.
func TestOIDCDemoPlatform(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	p1, err := demoplatform.Register(ctx, e.Store, e.Server.URL, e.Secret)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := demoplatform.Register(ctx, e.Store, e.Server.URL+"/", e.Secret)
	if err != nil || p2.ID != p1.ID {
		t.Fatalf("second registration: %v %v", p2.ID, err)
	}
	e.GrantConsent(p1.ID)
	b := idptest.NewBrowser()
	page := demoSignIn(t, e, b)
	// The ePPN is pairwise: the directory id ("ext-ida") would let
	// platforms link the pupil.
	sector, _ := url.Parse(e.Server.URL)
	eppn := release.Pairwise(e.Secret, e.Pupil.ID, sector.Hostname()) + "@demo.elevid.dk"
	for _, want := range []string{"Ida Hansen", "7A", eppn, "student@demo.elevid.dk", `action="/demo/platform/logout"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("demo page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "ext-ida") {
		t.Fatalf("demo page shows the directory id:\n%s", page)
	}
	// One sign-in, one release entry (the ID token and userinfo carry the
	// same claims), listing everything that went out.
	rels, _ := e.Store.ListReleases(ctx, e.Pupil.ID)
	if len(rels) != 1 {
		t.Fatalf("releases = %+v, want one entry for the sign-in", rels)
	}
	for _, c := range []string{"sub", release.Name, release.Groups, release.EPPN, release.Affiliation} {
		if !slices.Contains(rels[0].Claims, c) {
			t.Fatalf("release entry %v lacks %s", rels[0].Claims, c)
		}
	}

	// Forged or malformed logout tokens are refused.
	for _, tok := range []string{"", "not-a-jwt", "eyJhbGciOiJub25lIiwidHlwIjoibG9nb3V0K2p3dCJ9.eyJzdWIiOiJ4In0."} {
		resp, err := http.PostForm(e.Server.URL+"/demo/platform/backchannel-logout", url.Values{"logout_token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("logout token %q: %d", tok, resp.StatusCode)
		}
	}
	if page := idptest.Body(t, b.Get(t, e.Server.URL+"/demo/platform")); !strings.Contains(page, "Ida Hansen") {
		t.Fatal("a forged logout token ended the session")
	}

	// The guardian withdraws: ElevID tells the platform over the back
	// channel; the platform's next page says it was signed out by ElevID.
	e.WithdrawConsent()
	if _, err := e.Access.EndIn(ctx, e.Store, access.PupilPlatform(e.Pupil.ID, p1.ID), "consent withdrawn"); err != nil {
		t.Fatal(err)
	}
	if d, f, err := e.OIDC.DeliverQueuedLogouts(ctx, "node-a"); d != 1 || f != 0 || err != nil {
		t.Fatalf("back-channel logout to the demo platform: %d delivered, %d failed, %v", d, f, err)
	}
	page = idptest.Body(t, b.Get(t, e.Server.URL+"/demo/platform"))
	if !strings.Contains(page, "signed-out-by-elevid") || strings.Contains(page, "Ida Hansen") {
		t.Fatalf("after withdrawal:\n%s", page)
	}
	if page = idptest.Body(t, b.Get(t, e.Server.URL+"/demo/platform")); strings.Contains(page, "signed-out-by-elevid") || !strings.Contains(page, "/demo/platform/login") {
		t.Fatalf("second load after withdrawal:\n%s", page)
	}

	// Its own sign-out: the platform forgets the session and sends the
	// browser to ElevID's end-session endpoint, which ends ElevID's.
	e.GrantConsent(p1.ID)
	if page = demoSignIn(t, e, b); !strings.Contains(page, "Ida Hansen") {
		t.Fatalf("signed in again:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/demo/platform/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.Server.URL+"/oidc/end_session?") || !strings.Contains(loc, "id_token_hint=") {
		t.Fatalf("logout: %d %s", resp.StatusCode, loc)
	}
	resp = b.Get(t, loc)
	resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		t.Fatalf("end_session: %d", resp.StatusCode)
	}
	if sessions, _ := e.Store.ListSessions(ctx, e.Pupil.ID); len(sessions) != 0 {
		t.Fatalf("ElevID session survived the platform's sign-out: %d", len(sessions))
	}
	if page = idptest.Body(t, b.Get(t, e.Server.URL+"/demo/platform")); strings.Contains(page, "Ida Hansen") {
		t.Fatal("the platform still shows the pupil after its sign-out")
	}
}

// demoSignIn signs the browser in at the demo platform and returns its page.
func demoSignIn(t *testing.T, e *idptest.OIDCEnv, b *idptest.Browser) string {
	t.Helper()
	next := e.Server.URL + "/demo/platform/login"
	var page string
	for range 12 {
		u, _ := url.Parse(next)
		if u.Path == "/login" {
			to, _ := url.Parse(e.PasskeyLogin(t, b, u.Query().Get("return_to")))
			next = u.ResolveReference(to).String() // a path, or the platform's redirect URI
			continue
		}
		resp := b.Get(t, next)
		if resp.StatusCode/100 != 3 {
			page = idptest.Body(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", next, resp.StatusCode, page)
			}
			break
		}
		resp.Body.Close()
		next = resp.Header.Get("Location")
		if strings.HasPrefix(next, "/") {
			next = e.Server.URL + next
		}
	}
	return page
}
