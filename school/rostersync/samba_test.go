package rostersync_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

// sambaDC is a Samba AD DC started by .ci/samba-ad.sh.
type sambaDC struct {
	url, ca, bind, pw, base string
}

// samba returns the DC the environment names, or skips: the test runs
// from .ci/samba-ad.sh, which provisions and starts the DC and fails when
// this test does not pass (a skip included).
func samba(t *testing.T) sambaDC {
	d := sambaDC{url: os.Getenv("ELEVID_TEST_SAMBA_URL"), ca: os.Getenv("ELEVID_TEST_SAMBA_CA"), bind: os.Getenv("ELEVID_TEST_SAMBA_BIND"),
		pw: os.Getenv("ELEVID_TEST_SAMBA_PASSWORD"), base: os.Getenv("ELEVID_TEST_SAMBA_BASE")}
	if d.url == "" {
		t.Skip("ELEVID_TEST_SAMBA_URL is not set: .ci/samba-ad.sh provisions a Samba AD DC and runs this test")
	}
	return d
}

func (d sambaDC) conn(t *testing.T) *ldap.Conn {
	pem, err := os.ReadFile(d.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := ldap.DialURL(d.url, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(d.bind, d.pw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func adAdd(t *testing.T, c *ldap.Conn, dn string, attrs map[string][]string) {
	t.Helper()
	a := ldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		a.Attribute(k, v)
	}
	if err := c.Add(a); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
}

const showDeleted = "1.2.840.113556.1.4.417"

// The ad preset against a real Active Directory (Samba AD DC): create,
// update, quarantine of a deleted user, restore of a user brought back
// from the Deleted Objects container (same objectGUID, same pupil),
// LDAPS and StartTLS under a CA the script made, and the field-change
// threshold on a mapping change.
func TestSambaAD(t *testing.T) {
	d := samba(t)
	c := d.conn(t)
	ou := fmt.Sprintf("OU=elevid-%d,%s", time.Now().UnixNano(), d.base)
	adAdd(t, c, ou, map[string][]string{"objectClass": {"organizationalUnit"}})
	for _, sub := range []string{"pupils", "guardians", "classes"} {
		adAdd(t, c, "OU="+sub+","+ou, map[string][]string{"objectClass": {"organizationalUnit"}})
	}
	const n = 40
	pupil := func(i int) string { return fmt.Sprintf("CN=Pupil %d,OU=pupils,%s", i, ou) }
	guardian := func(i int) string { return fmt.Sprintf("CN=Guardian %d,OU=guardians,%s", i, ou) }
	birth := func(i int) string { return fmt.Sprintf("2013-%02d-%02d", 1+i%12, 1+i%28) }
	pupilAttrs := func(i int) map[string][]string {
		return map[string][]string{"givenName": {fmt.Sprintf("Pupil%d", i)}, "sn": {"Hansen"},
			"msDS-cloudExtensionAttribute1": {birth(i)}, "seeAlso": {guardian(i % 20)}}
	}
	for g := range 20 {
		adAdd(t, c, guardian(g), map[string][]string{"objectClass": {"user"}, "sAMAccountName": {fmt.Sprintf("eg%d-%d", g, time.Now().UnixNano()%1e6)},
			"displayName": {fmt.Sprintf("Guardian %d", g)}, "mail": {fmt.Sprintf("g%d@example.test", g)}})
	}
	var members []string
	for i := range n {
		a := pupilAttrs(i)
		a["objectClass"] = []string{"user"}
		a["sAMAccountName"] = []string{fmt.Sprintf("ep%d-%d", i, time.Now().UnixNano()%1e6)}
		adAdd(t, c, pupil(i), a)
		members = append(members, pupil(i))
	}
	adAdd(t, c, "CN=7A,OU=classes,"+ou, map[string][]string{"objectClass": {"group"}, "member": members})

	clock := &testClock{real: true}
	st := openSQLite(t, clock)
	sealer := testSealer(t)
	sch, err := st.CreateSchool(t.Context(), school.School{Code: "ad-skole", Name: "AD-skolen", Domain: "elevid.test"})
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(d.pw), 0o600)
	opt := rostersync.Options{Store: st, Sealer: sealer, Log: quietLog()}
	setSource := func(extra ...string) error {
		var out bytes.Buffer
		return rostersync.Command(t.Context(), opt, &out, append([]string{"source", "set", "--school", "ad-skole", "--preset", "ad",
			"--bind-dn", d.bind, "--password-file", pw, "--ca-file", d.ca,
			"--pupil-base", "OU=pupils," + ou, "--guardian-base", "OU=guardians," + ou, "--class-base", "OU=classes," + ou}, extra...))
	}
	// The schema check reads AD's schema: extensionAttribute1 is an
	// Exchange extension, not in a plain AD.
	if err := setSource("--url", d.url, "--attr", "birthDate=extensionAttribute1"); err == nil || !strings.Contains(err.Error(), "extensionAttribute1") {
		t.Fatalf("extensionAttribute1 accepted: %v", err)
	}
	if err := setSource("--url", d.url); err != nil {
		t.Fatal(err)
	}
	s := rostersync.New(opt)
	run := func(ro rostersync.RunOptions) (rostersync.Result, error) { return s.Run(t.Context(), sch.ID, ro) }
	mustRun := func(ro rostersync.RunOptions) rostersync.Result {
		t.Helper()
		res, err := run(ro)
		if err != nil {
			t.Fatalf("run: %v (%+v)", err, res.Run)
		}
		return res
	}
	byName := func(given string) school.Pupil {
		t.Helper()
		ps, err := st.ListPupils(t.Context(), school.PupilFilter{SchoolID: sch.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.GivenName == given {
				return p
			}
		}
		t.Fatalf("no pupil %s", given)
		return school.Pupil{}
	}

	// Create (LDAPS).
	res := mustRun(rostersync.RunOptions{})
	if res.Run.Counts["pupil.create"] != n || res.Run.Counts["guardian.create"] != 20 || res.Run.Counts["class.create"] != 1 {
		t.Fatalf("first run = %v, warnings %v", res.Run.Counts, res.Run.Warnings)
	}
	p5 := byName("Pupil5")
	if p5.BirthDate.Format(time.DateOnly) != birth(5) || len(p5.ClassIDs) != 1 || len(p5.GuardianIDs) != 1 {
		t.Fatalf("pupil 5 = %+v", p5)
	}
	if _, err := rostersync.EncodeGUID(p5.ExternalID); err != nil {
		t.Fatalf("external id %q is not an objectGUID: %v", p5.ExternalID, err)
	}

	// Update, over StartTLS this time, bound as user@domain (AD's UPN).
	upn := "Administrator@" + strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(d.base, "DC=", ""), ",", "."))
	if err := setSource("--url", strings.Replace(strings.Replace(d.url, "ldaps://", "ldap://", 1), ":636", ":389", 1), "--start-tls", "--bind-dn", upn); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest(pupil(5), nil)
	m.Replace("sn", []string{"Jensen"})
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	res = mustRun(rostersync.RunOptions{})
	if res.Run.Counts["pupil.update"] != 1 || byName("Pupil5").FamilyName != "Jensen" {
		t.Fatalf("update run = %v", res.Run.Counts)
	}

	// Quarantine of a deleted user.
	if err := c.Del(ldap.NewDelRequest(pupil(7), nil)); err != nil {
		t.Fatal(err)
	}
	res = mustRun(rostersync.RunOptions{})
	p7 := byName("Pupil7")
	if res.Run.Counts["pupil.quarantine"] != 1 || p7.Status != school.PupilQuarantined {
		t.Fatalf("quarantine run = %v, pupil 7 %s", res.Run.Counts, p7.Status)
	}

	// Restore from Deleted Objects: the same objectGUID, so the same pupil.
	guid, err := rostersync.EncodeGUID(p7.ExternalID)
	if err != nil {
		t.Fatal(err)
	}
	show := ldap.NewControlString(showDeleted, true, "")
	sr, err := c.Search(ldap.NewSearchRequest(d.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(isDeleted=TRUE)(objectGUID="+escapeBytes(guid)+"))", []string{"distinguishedName"}, []ldap.Control{show}))
	if err != nil || len(sr.Entries) != 1 {
		t.Fatalf("deleted object: %v (%d entries)", err, len(sr.Entries))
	}
	rm := ldap.NewModifyRequest(sr.Entries[0].DN, []ldap.Control{show})
	rm.Delete("isDeleted", nil)
	rm.Replace("distinguishedName", []string{pupil(7)})
	for k, v := range pupilAttrs(7) {
		rm.Replace(k, v)
	}
	if err := c.Modify(rm); err != nil {
		t.Fatalf("restore from Deleted Objects: %v", err)
	}
	cm := ldap.NewModifyRequest("CN=7A,OU=classes,"+ou, nil)
	cm.Add("member", []string{pupil(7)})
	if err := c.Modify(cm); err != nil {
		t.Fatal(err)
	}
	res = mustRun(rostersync.RunOptions{})
	back := byName("Pupil7")
	if res.Run.Counts["pupil.restore"] != 1 || back.ID != p7.ID || back.Status != school.PupilActive || back.BirthDate.Format(time.DateOnly) != birth(7) {
		t.Fatalf("restore run = %v, pupil 7 = %+v (was %s)", res.Run.Counts, back, p7.ID)
	}

	// A mapping change that would clear every birth date is stopped.
	if err := setSource("--url", d.url, "--attr", "birthDate=employeeNumber"); err != nil {
		t.Fatal(err)
	}
	res, err = run(rostersync.RunOptions{})
	if !errors.Is(err, rostersync.ErrThreshold) || res.Run.Status != school.SyncAbortedThreshold {
		t.Fatalf("mapping change: %v (%s)", err, res.Run.Status)
	}
	if p := byName("Pupil5"); p.BirthDate.IsZero() {
		t.Fatal("a stopped run cleared a birth date")
	}
	t.Logf("stopped: %v", err)
}

func escapeBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, `\%02x`, c)
	}
	return sb.String()
}
