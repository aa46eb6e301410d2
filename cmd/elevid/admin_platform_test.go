package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
)

// TestSAMLPlatformCommandEndpointsAndEncryption: add-saml prints only the
// endpoints ElevID answers on (not a PAOS or Artifact ACS) and the
// encryption it chose; bad algorithm flags are refused.
func TestSAMLPlatformCommandEndpointsAndEncryption(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	_, cert := idptest.NewKeyCert(t, "sp.example")
	c64 := base64.StdEncoding.EncodeToString(cert.Raw)
	md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://mellon.example/md">
 <SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` + c64 + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
  <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="https://mellon.example/logout-soap"/>
  <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://mellon.example/logout"/>
  <AssertionConsumerService index="0" isDefault="true" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://mellon.example/postResponse"/>
  <AssertionConsumerService index="1" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="https://mellon.example/artifactResponse"/>
  <AssertionConsumerService index="2" Binding="urn:oasis:names:tc:SAML:2.0:bindings:PAOS" Location=""/>
 </SPSSODescriptor>
</EntityDescriptor>`
	file := filepath.Join(t.TempDir(), "md.xml")
	if err := os.WriteFile(file, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"--data-encryption", "tripledes-cbc"}, {"--key-transport", "rsa-1_5"}} {
		if err := samlPlatformCommand(context.Background(), h.Store, new(strings.Builder),
			append([]string{"--name", "M", "--metadata", file, "--attr", "givenName=hvorfor", "--attr-en", "givenName=why"}, bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	var out strings.Builder
	if err := samlPlatformCommand(context.Background(), h.Store, &out, []string{"--name", "M", "--metadata", file, "--attr", "givenName=hvorfor", "--attr-en", "givenName=why"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"encryption aes256-cbc, rsa-oaep-mgf1p/sha1\n",
		"acs urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST https://mellon.example/postResponse\n",
		"slo urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect https://mellon.example/logout\n",
		"slo urn:oasis:names:tc:SAML:2.0:bindings:SOAP https://mellon.example/logout-soap\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"PAOS", "Artifact"} {
		if strings.Contains(got, not) {
			t.Errorf("output shows a %s endpoint ElevID does not use:\n%s", not, got)
		}
	}
	// platform show says the same; an override is stored and used.
	file2 := filepath.Join(t.TempDir(), "md2.xml")
	if err := os.WriteFile(file2, []byte(strings.ReplaceAll(md, "mellon.example", "other.example")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := samlPlatformCommand(context.Background(), h.Store, new(strings.Builder), []string{"--name", "M2", "--metadata", file2,
		"--attr", "givenName=hvorfor", "--attr-en", "givenName=why", "--data-encryption", "aes128-gcm", "--key-transport", "rsa-oaep"}); err != nil {
		t.Fatal(err)
	}
	for entity, want := range map[string]string{
		"https://mellon.example/md": "encryption aes256-cbc, rsa-oaep-mgf1p/sha1\n",
		"https://other.example/md":  "encryption aes128-gcm, rsa-oaep/sha1\n",
	} {
		var show strings.Builder
		if err := platformCommand(context.Background(), h.Store, &show, []string{"show", entity}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(show.String(), want) || strings.Contains(show.String(), "PAOS") {
			t.Errorf("platform show %s, want %q:\n%s", entity, want, show.String())
		}
	}
}

func TestSAMLPlatformCommandErrors(t *testing.T) {
	h := idptest.NewSAMLHarness(t)
	for _, args := range [][]string{
		{},
		{"--name", "x"},
		{"--name", "x", "--metadata", "/nonexistent.xml"},
		{"--name", "x", "--metadata", "a", "--metadata-url", "https://x"},
		{"--name", "x", "--metadata-url", "http://evil.example/md"},
	} {
		if err := samlPlatformCommand(context.Background(), h.Store, new(strings.Builder), args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	sp := h.NewSP(t, idptest.SPOptions{})
	_ = sp
	if err := samlPlatformCommand(context.Background(), h.Store, new(strings.Builder),
		[]string{"--name", "x", "--metadata", "/dev/null", "--attr", "shoeSize=because"}); err == nil || !strings.Contains(err.Error(), "shoeSize") {
		t.Errorf("unknown attribute: %v", err)
	}
}

// TestPlatformCommand registers, lists, shows and removes a platform the
// way an operator does.
func TestPlatformCommand(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := platformCommand(ctx, e.Store, &out, args)
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
	pf, err := e.Store.PlatformByClientID(ctx, "mf")
	if err != nil {
		t.Fatal(err)
	}
	set, err := oidc.ParseSettings(pf.Settings)
	if err != nil || set.SecretHash != oidc.HashClientSecret(m[1]) || strings.Contains(string(pf.Settings), m[1]) ||
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
	now := e.Clock.Now()
	if _, err := e.Store.QueueLogout(ctx, school.LogoutNotice{PlatformID: pf.ID, Subject: "sub", NextAt: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if out, err = run("logouts"); err != nil || !strings.Contains(out, "mf ") || !strings.Contains(out, now.Add(time.Minute).UTC().Format(time.RFC3339)) {
		t.Fatalf("logouts: %v %s", err, out)
	}
	if _, err = run("remove", "mf"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.PlatformByClientID(ctx, "mf"); err == nil {
		t.Fatal("platform not removed")
	}
}
