package samlclient_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/samlclient"
	"github.com/elevid/elevid/internal/webauthntest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestRealSPs logs pupils in to real SAML service providers through a
// running `elevid serve`; .ci/saml-sps.sh starts them and sets:
//
//	ELEVID_REALSP_DB       the server's SQLite database (pupils are added there)
//	ELEVID_REALSP_IDP      the server's base URL (http://localhost:PORT)
//	ELEVID_REALSP_SCHOOL   the code of the school the pupils join
//	ELEVID_REALSP_MELLON   Apache mod_auth_mellon's base URL (/plain, /mfa)
//	ELEVID_REALSP_PYSAML2  the pysaml2 SP's base URL
//	ELEVID_REALSP_OUT      where the SAML responses carried are saved
//
// Without them it skips: it is not part of `go test ./...`.
func TestRealSPs(t *testing.T) {
	env := map[string]string{}
	for _, k := range []string{"DB", "IDP", "SCHOOL", "MELLON", "PYSAML2", "OUT"} {
		env[k] = os.Getenv("ELEVID_REALSP_" + k)
		if env[k] == "" {
			t.Skip("run by .ci/saml-sps.sh (ELEVID_REALSP_* not set)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mellon, py := env["MELLON"], env["PYSAML2"]
	spPlain, spMFA, spPy := mellon+"/plain/mellon/metadata", mellon+"/mfa/mellon/metadata", py+"/metadata"

	st, err := sqlite.Open(ctx, env["DB"], sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sch, err := st.SchoolByCode(ctx, env["SCHOOL"])
	if err != nil {
		t.Fatal(err)
	}
	ida := enrol(t, ctx, st, sch, "Ida", spPlain, spMFA, spPy)
	noah := enrol(t, ctx, st, sch, "Noah") // no guardian has consented to anything
	browser := func(p samlclient.Pupil) *samlclient.Browser {
		return samlclient.New(env["IDP"], "localhost", env["IDP"], p)
	}
	save := func(name string, b *samlclient.Browser, action string) string {
		t.Helper()
		for _, p := range b.Posts {
			if p.Action == action && p.Form.Get("SAMLResponse") != "" {
				raw, err := base64.StdEncoding.DecodeString(p.Form.Get("SAMLResponse"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(env["OUT"], name+".xml"), raw, 0o644); err != nil {
					t.Fatal(err)
				}
				return string(raw)
			}
		}
		t.Fatalf("%s: no SAMLResponse was posted to %s", name, action)
		return ""
	}
	encrypted := func(name, raw string) {
		t.Helper()
		if !strings.Contains(raw, "EncryptedAssertion") || strings.Contains(raw, "<saml:Assertion") || strings.Contains(raw, ">Ida<") {
			t.Fatalf("%s: the assertion is not encrypted:\n%s", name, raw)
		}
	}
	lines := func(body string) map[string][]string {
		m := map[string][]string{}
		for _, l := range strings.Split(body, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
				m[k] = append(m[k], v)
			}
		}
		return m
	}
	domain := "@" + sch.Domain

	t.Run("mellon", func(t *testing.T) {
		b := browser(ida)
		p, err := b.Visit(ctx, mellon+"/plain/whoami.cgi")
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != 200 || !strings.Contains(p.Body, "mellon SP: logged in") {
			t.Fatalf("mellon: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		t.Logf("mod_auth_mellon received:\n%s", p.Body)
		got := lines(p.Body)
		if g := got["givenName"]; len(g) == 0 || g[0] != "Ida" {
			t.Errorf("givenName = %v", g)
		}
		if e := got["eppn"]; len(e) == 0 || !strings.HasSuffix(e[0], domain) {
			t.Errorf("eppn = %v, want …%s", e, domain)
		}
		if a := strings.Join(append(got["affiliation"], got["affiliation_0"]...), " "); !strings.Contains(a, "student"+domain) {
			t.Errorf("affiliation = %q, want student%s", a, domain)
		}
		if c := got["schoolCode"]; len(c) == 0 || c[0] != sch.Code {
			t.Errorf("schoolCode = %v", c)
		}
		if len(got["NAME_ID"]) == 0 || got["NAME_ID"][0] == "" {
			t.Error("no NameID")
		}
		encrypted("mellon", save("mellon", b, mellon+"/plain/mellon/postResponse"))
	})

	t.Run("mellon requiring REFEDS MFA", func(t *testing.T) {
		b := browser(ida)
		p, err := b.Visit(ctx, mellon+"/mfa/whoami.cgi")
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != 200 || !strings.Contains(p.Body, "mellon SP: logged in") || !strings.Contains(p.Body, "givenName=Ida") {
			t.Fatalf("mellon MFA: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		// mod_auth_mellon asked for REFEDS MFA in its AuthnRequest and
		// answers 403 unless the assertion's AuthnContextClassRef is it
		// (MellonAuthnContextClassRef); the script checks its log too.
		raw := save("mellon-mfa", b, mellon+"/mfa/mellon/postResponse")
		encrypted("mellon-mfa", raw)
	})

	t.Run("pysaml2", func(t *testing.T) {
		b := browser(ida)
		p, err := b.Visit(ctx, py+"/login")
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != 200 || !strings.Contains(p.Body, "pysaml2 SP: logged in") {
			t.Fatalf("pysaml2: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		t.Logf("pysaml2 received:\n%s", p.Body)
		got := lines(p.Body)
		if g := got["givenName"]; len(g) != 1 || g[0] != "Ida" {
			t.Errorf("givenName = %v", g)
		}
		if e := got["eduPersonPrincipalName"]; len(e) != 1 || !strings.HasSuffix(e[0], domain) {
			t.Errorf("eduPersonPrincipalName = %v", e)
		}
		if a := strings.Join(got["eduPersonScopedAffiliation"], " "); !strings.Contains(a, "student"+domain) {
			t.Errorf("eduPersonScopedAffiliation = %q", a)
		}
		if c := got["AUTHN_CONTEXT"]; len(c) != 1 || !strings.Contains(c[0], "https://refeds.org/profile/mfa") {
			t.Errorf("authn context = %v, want REFEDS MFA", c)
		}
		if r := got["RelayState"]; len(r) != 1 || r[0] != "/after" {
			t.Errorf("RelayState = %v", r)
		}
		if len(got["sn"]) != 0 || len(got["schoolCode"]) != 0 {
			t.Errorf("attributes not granted were released: %v", got)
		}
		raw := save("pysaml2", b, py+"/acs")
		encrypted("pysaml2", raw)
		if !strings.Contains(raw, "xmlenc11#aes128-gcm") {
			t.Errorf("pysaml2 is registered with --data-encryption aes128-gcm, but the response uses another cipher")
		}
	})

	// A pupil whose guardian has not consented sees ElevID's explanation;
	// the button takes a signed RequestDenied back to the SP, which shows
	// its own refusal.
	refused := func(t *testing.T, b *samlclient.Browser, start string) samlclient.Page {
		t.Helper()
		p, err := b.Visit(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != 403 || !strings.Contains(p.Body, "Din forælder har ikke givet samtykke") || !strings.Contains(p.Body, `id="saml-refused-form"`) {
			t.Fatalf("ElevID's refusal page: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		p, err = b.Submit(ctx, p, "saml-refused-form")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("mellon refusal", func(t *testing.T) {
		b := browser(noah)
		p := refused(t, b, mellon+"/plain/whoami.cgi")
		if !strings.Contains(p.Body, "mellon SP: the identity provider refused the login") {
			t.Fatalf("mellon after the refusal: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		raw := save("mellon-refused", b, mellon+"/plain/mellon/postResponse")
		if !strings.Contains(raw, "status:RequestDenied") {
			t.Fatalf("refusal status:\n%s", raw)
		}
	})
	t.Run("pysaml2 refusal", func(t *testing.T) {
		b := browser(noah)
		p := refused(t, b, py+"/login")
		if p.Status != 403 || !strings.Contains(p.Body, "the identity provider refused the login: StatusRequestDenied") {
			t.Fatalf("pysaml2 after the refusal: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		t.Logf("pysaml2 showed: %s", strings.TrimSpace(p.Body))
		save("pysaml2-refused", b, py+"/acs")
	})
}

// enrol adds an active, enrolled pupil with a passkey to the school, with
// a guardian's consent for each platform named by entity id.
func enrol(t *testing.T, ctx context.Context, st school.Store, sch school.School, name string, consentTo ...string) samlclient.Pupil {
	t.Helper()
	g, err := st.CreateGuardian(ctx, school.Guardian{SchoolID: sch.ID, Name: "Forælder til " + name})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.CreatePupil(ctx, school.Pupil{SchoolID: sch.ID, GivenName: name, FamilyName: "Testesen",
		GuardianIDs: []string{g.ID}, Status: school.PupilActive})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, State: school.EnrolmentEnrolled, Rule: school.ConsentAny}); err != nil {
		t.Fatal(err)
	}
	for _, entity := range consentTo {
		pf, err := st.PlatformByClientID(ctx, entity)
		if err != nil {
			t.Fatalf("platform %s: %v", entity, err)
		}
		if _, err := st.SetConsent(ctx, school.Consent{PupilID: p.ID, GuardianID: g.ID, PlatformID: pf.ID, Decision: school.DecisionGranted}); err != nil {
			t.Fatal(err)
		}
	}
	handle, err := st.UserHandle(ctx, school.PupilOwner(p.ID))
	if err != nil {
		t.Fatal(err)
	}
	cred := webauthntest.NewCredential()
	if _, err := st.AddCredential(ctx, school.Credential{ID: cred.ID, Owner: school.PupilOwner(p.ID), SchoolID: sch.ID,
		PublicKey: cred.Key.AttestationData(), AttestationFormat: "none", Label: "software passkey"}); err != nil {
		t.Fatal(err)
	}
	return samlclient.Pupil{Handle: handle, Credential: cred}
}
