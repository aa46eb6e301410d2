package idp_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/idp"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// TestOIDCDemoPlatform walks a browser through the built-in demo platform:
// it logs in with the passkey through the OIDC provider and shows the
// claims it received; after a withdrawal ElevID's back-channel logout
// reaches it and its next page says it was signed out by ElevID; its
// own sign-out ends its session and ElevID's.
func TestOIDCDemoPlatform(t *testing.T) {
	ctx := context.Background()
	e := newOIDCEnv(t)
	p1, err := idp.RegisterDemoPlatform(ctx, e.st, e.srv.URL, e.secret)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := idp.RegisterDemoPlatform(ctx, e.st, e.srv.URL+"/", e.secret)
	if err != nil || p2.ID != p1.ID {
		t.Fatalf("second registration: %v %v", p2.ID, err)
	}
	e.grantConsent(p1.ID)
	b := newBrowser()
	page := e.demoSignIn(t, b)
	// The ePPN is pairwise: the directory id ("ext-ida") would let
	// platforms link the pupil.
	sector, _ := url.Parse(e.srv.URL)
	eppn := release.Pairwise(e.secret, e.pupil.ID, sector.Hostname()) + "@demo.elevid.dk"
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
	rels, _ := e.st.ListReleases(ctx, e.pupil.ID)
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
		resp, err := http.PostForm(e.srv.URL+"/demo/platform/backchannel-logout", url.Values{"logout_token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("logout token %q: %d", tok, resp.StatusCode)
		}
	}
	if page := body(t, b.get(t, e.srv.URL+"/demo/platform")); !strings.Contains(page, "Ida Hansen") {
		t.Fatal("a forged logout token ended the session")
	}

	// The guardian withdraws: ElevID tells the platform over the back
	// channel; the platform's next page says it was signed out by ElevID.
	e.withdrawConsent()
	if _, err := e.access.EndIn(ctx, e.st, access.PupilPlatform(e.pupil.ID, p1.ID), "consent withdrawn"); err != nil {
		t.Fatal(err)
	}
	if d, f, err := e.oidc.DeliverQueuedLogouts(ctx, "node-a"); d != 1 || f != 0 || err != nil {
		t.Fatalf("back-channel logout to the demo platform: %d delivered, %d failed, %v", d, f, err)
	}
	page = body(t, b.get(t, e.srv.URL+"/demo/platform"))
	if !strings.Contains(page, "signed-out-by-elevid") || strings.Contains(page, "Ida Hansen") {
		t.Fatalf("after withdrawal:\n%s", page)
	}
	if page = body(t, b.get(t, e.srv.URL+"/demo/platform")); strings.Contains(page, "signed-out-by-elevid") || !strings.Contains(page, "/demo/platform/login") {
		t.Fatalf("second load after withdrawal:\n%s", page)
	}

	// Its own sign-out: the platform forgets the session and sends the
	// browser to ElevID's end-session endpoint, which ends ElevID's.
	e.grantConsent(p1.ID)
	if page = e.demoSignIn(t, b); !strings.Contains(page, "Ida Hansen") {
		t.Fatalf("signed in again:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/demo/platform/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.srv.URL+"/oidc/end_session?") || !strings.Contains(loc, "id_token_hint=") {
		t.Fatalf("logout: %d %s", resp.StatusCode, loc)
	}
	resp = b.get(t, loc)
	resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		t.Fatalf("end_session: %d", resp.StatusCode)
	}
	if sessions, _ := e.st.ListSessions(ctx, e.pupil.ID); len(sessions) != 0 {
		t.Fatalf("ElevID session survived the platform's sign-out: %d", len(sessions))
	}
	if page = body(t, b.get(t, e.srv.URL+"/demo/platform")); strings.Contains(page, "Ida Hansen") {
		t.Fatal("the platform still shows the pupil after its sign-out")
	}
}

// demoSignIn signs the browser in at the demo platform and returns its page.
func (e *oidcEnv) demoSignIn(t *testing.T, b *browser) string {
	t.Helper()
	next := e.srv.URL + "/demo/platform/login"
	var page string
	for range 12 {
		u, _ := url.Parse(next)
		if u.Path == "/login" {
			next = e.srv.URL + e.passkeyLogin(t, b, u.Query().Get("return_to"))
			continue
		}
		resp := b.get(t, next)
		if resp.StatusCode/100 != 3 {
			page = body(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", next, resp.StatusCode, page)
			}
			break
		}
		resp.Body.Close()
		next = resp.Header.Get("Location")
		if strings.HasPrefix(next, "/") {
			next = e.srv.URL + next
		}
	}
	return page
}

// TestPlatformCommand registers, lists, shows and removes a platform the
// way an operator does.
func TestPlatformCommand(t *testing.T) {
	ctx := context.Background()
	e := newOIDCEnv(t)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := idp.PlatformCommand(ctx, e.st, &out, args)
		return out.String(), err
	}
	out, err := run("add", "--name", "MatematikFessor", "--client-id", "mf", "--redirect-uri", "https://mf.example/cb",
		"--attr", `given_name="Vises for læreren"`, "--attr-en", `given_name="Shown to the teacher"`, "--attr", `groups="Klasserum"`, "--attr-en", `groups="Class rooms"`, "--offline-access",
		"--backchannel-logout-uri", "https://mf.example/bcl")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`client secret (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no secret printed: %s", out)
	}
	pf, err := e.st.PlatformByClientID(ctx, "mf")
	if err != nil {
		t.Fatal(err)
	}
	set, err := idp.ParseOIDCSettings(pf.Settings)
	if err != nil || set.SecretHash != idp.HashClientSecret(m[1]) || strings.Contains(string(pf.Settings), m[1]) ||
		!set.OfflineAccess || pf.SubjectType != school.SubjectPairwise || !pf.Allows("groups") || len(set.Scopes) != 2 {
		t.Fatalf("stored platform = %+v %+v %v", pf, set, err)
	}
	for _, bad := range [][]string{
		{"add", "--name", "X", "--client-id", "x"},                                                                     // no redirect URI
		{"add", "--name", "X", "--client-id", "x", "--redirect-uri", "https://x/cb", "--attr", "nope=why"},             // unknown claim
		{"add", "--name", "X", "--client-id", "x", "--redirect-uri", "https://x/cb", "--subject", "public"},            // no reason
		{"add", "--name", "X", "--client-id", "x", "--redirect-uri", "https://a/cb", "--redirect-uri", "https://b/cb"}, // no sector
		{"add", "--name", "X", "--client-id", "mf", "--redirect-uri", "https://x/cb"},                                  // taken
	} {
		if _, err := run(bad...); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
	out, err = run("add", "--name", "App", "--client-id", "app", "--redirect-uri", "dk.app:/cb", "--public",
		"--subject", "public", "--subject-reason", "the municipality's portal links accounts", "--alg", "RS256")
	if err != nil || !strings.Contains(out, "public client") {
		t.Fatalf("public add: %v %s", err, out)
	}
	if out, err = run("list"); err != nil || !strings.Contains(out, "mf") || !strings.Contains(out, "app") {
		t.Fatalf("list: %v %s", err, out)
	}
	if out, err = run("show", "mf"); err != nil || !strings.Contains(out, `given_name: da "Vises for læreren", en "Shown to the teacher"`) || strings.Contains(out, "sha256:") {
		t.Fatalf("show: %v %s", err, out)
	}
	// Queued back-channel logouts are listed for the operator.
	if out, err = run("logouts"); err != nil || !strings.Contains(out, "no back-channel logouts waiting") {
		t.Fatalf("logouts (none): %v %s", err, out)
	}
	now := e.clock.Now()
	if _, err := e.st.QueueLogout(ctx, school.LogoutNotice{PlatformID: pf.ID, Subject: "sub", NextAt: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if out, err = run("logouts"); err != nil || !strings.Contains(out, "mf ") || !strings.Contains(out, now.Add(time.Minute).UTC().Format(time.RFC3339)) {
		t.Fatalf("logouts: %v %s", err, out)
	}
	if _, err = run("remove", "mf"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PlatformByClientID(ctx, "mf"); err == nil {
		t.Fatal("platform not removed")
	}
}
