package rostersync_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

// A mapping change that would clear the date of birth of most pupils
// stops like a mass deletion: nothing is applied unless forced.
func TestFieldChangeThreshold(t *testing.T) {
	r := roster{preset: school.PresetOpenLDAP, pupils: 200, guardians: 100, classes: 8, staff: 2}
	e := newEnv(t, r, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	before := e.snapshot()
	// employeeNumber is in the schema but on no entry: every birth date
	// would be cleared.
	e.source(func(s *school.DirectorySource) { s.Attributes = map[string]string{"birthDate": "employeeNumber"} })
	res, err := e.run(rostersync.RunOptions{})
	if !errors.Is(err, rostersync.ErrThreshold) || res.Run.Status != school.SyncAbortedThreshold || !strings.Contains(err.Error(), "200 of 200 active pupils would have their date of birth") {
		t.Fatalf("err = %v, status %s", err, res.Run.Status)
	}
	if e.snapshot() != before {
		t.Fatal("a stopped run changed the store")
	}
	// A few changes stay under the threshold: 10 % of 200 is 20.
	e.source(func(s *school.DirectorySource) { s.Attributes = nil })
	now := e.clock.Now()
	for i := range 15 {
		e.dir.modify(pupilDN(i), now, func(p *entry) { p.set("sn", "Renamed") })
	}
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.update": 15})
	// Forced, the mapping change applies.
	e.source(func(s *school.DirectorySource) { s.Attributes = map[string]string{"birthDate": "employeeNumber"} })
	res = e.mustRun(rostersync.RunOptions{Force: true})
	if res.Run.Counts["pupil.update"] != 200 || !e.pupil(3).BirthDate.IsZero() {
		t.Fatalf("forced run = %v", res.Run.Counts)
	}
}

// `sync source set` reads the directory's schema and refuses a
// date-of-birth attribute the directory does not define.
func TestSourceSetChecksBirthDateAttribute(t *testing.T) {
	e := newEnv(t, roster{preset: school.PresetAD}, nil, nil)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(e.dir.bindPW), 0o600)
	opt := rostersync.Options{Store: e.st, Sealer: e.sealer, Log: quietLog()}
	set := func(extra ...string) error {
		var out bytes.Buffer
		return rostersync.Command(e.ctx, opt, &out, append([]string{"source", "set", "--school", "skole", "--url", e.dir.URL(), "--insecure", "--preset", "ad",
			"--bind-dn", e.dir.bindDN, "--password-file", pw, "--pupil-base", "ou=pupils," + base}, extra...))
	}
	err := set("--attr", "birthDate=extensionAttribute1")
	if err == nil || !strings.Contains(err.Error(), `no attribute "extensionAttribute1"`) {
		t.Fatalf("unknown attribute: %v", err)
	}
	if src, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID); src.Attributes["birthDate"] != "" {
		t.Fatal("a refused source was stored")
	}
	if err := set("--attr", "birthDate=employeeNumber"); err != nil {
		t.Fatal(err)
	}
	if err := set(); err != nil { // the preset's own, msDS-cloudExtensionAttribute1
		t.Fatal(err)
	}
	// Unreachable directory: refused unless the check is skipped.
	e.dir.srv.Stop()
	if err := set(); err == nil || !strings.Contains(err.Error(), "--skip-schema-check") {
		t.Fatalf("unreachable: %v", err)
	}
	if err := set("--skip-schema-check"); err != nil {
		t.Fatal(err)
	}
}

// Active Directory sources may bind as user@domain or DOMAIN\user; other
// bind names must be DNs.
func TestADBindNames(t *testing.T) {
	for _, tc := range []struct {
		preset, bind string
		ok           bool
	}{
		{school.PresetAD, "svc-elevid@kommune.dk", true},
		{school.PresetAD, `KOMMUNE\svc-elevid`, true},
		{school.PresetAD, "CN=svc,CN=Users,DC=kommune,DC=dk", true},
		{school.PresetOpenLDAP, "svc-elevid@kommune.dk", false},
		{school.PresetAD, "not a dn", false},
	} {
		src := school.DirectorySource{SchoolID: "s", URL: "ldaps://dc.kommune.dk", PupilBase: "OU=Elever,DC=kommune,DC=dk", Preset: tc.preset, BindDN: tc.bind}
		if err := rostersync.ValidateSource(src); (err == nil) != tc.ok {
			t.Errorf("%s bind %q: %v", tc.preset, tc.bind, err)
		}
	}
}
