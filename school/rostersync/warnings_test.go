package rostersync_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

// warningsOf returns the DNs warned of with kind.
func warningsOf(run school.SyncRun, kind string) []string {
	var dns []string
	for _, w := range run.Warnings {
		if w.Kind == kind {
			dns = append(dns, w.DN)
		}
	}
	return dns
}

func wantWarned(t *testing.T, run school.SyncRun, kind string, dns ...string) {
	t.Helper()
	got := warningsOf(run, kind)
	for _, dn := range dns {
		if !slices.Contains(got, dn) {
			t.Errorf("no %s warning for %s; %s warnings: %v", kind, dn, kind, got)
		}
	}
	if run.WarningCounts[kind] != len(dns) {
		t.Errorf("%s: counted %d, want %d (%v)", kind, run.WarningCounts[kind], len(dns), got)
	}
}

// Each bad-entry case gets its own warning kind, the pupils concerned are
// still imported, and the stored run keeps kinds and counts.
func TestBadEntryKinds(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	now := e.clock.Now()
	// A pupil in no class: drop pupil 7 from its class group.
	cls := e.dir.find(classDN(7 % small.classes))
	e.dir.modify(cls.DN, now, func(c *entry) {
		c.set("member", slices.DeleteFunc(slices.Clone(c.get("member")), func(m string) bool { return m == pupilDN(7) })...)
	})
	// A guardian no pupil points to.
	orphan := e.r.guardian(500, now)
	// A pupil with an invalid date of birth, new to the store.
	badBirth := e.r.pupil(1003, now)
	badBirth.set("schacDateOfBirth", "20261399")
	e.dir.add(orphan, badBirth)

	res := e.mustRun(rostersync.RunOptions{})
	wantWarned(t, res.Run, school.WarnNoClass, pupilDN(7), badBirth.DN)
	wantWarned(t, res.Run, school.WarnOrphanGuardian, orphan.DN)
	wantWarned(t, res.Run, school.WarnBadBirthDate, badBirth.DN)
	p, err := e.st.PupilByExternalID(e.ctx, e.sch.ID, uuidFor(kindPupil, 1003))
	if err != nil || !p.BirthDate.IsZero() || p.Status != school.PupilActive {
		t.Fatalf("pupil with an invalid birth date: %+v, %v", p, err)
	}
	stored, err := e.st.GetSyncRun(e.ctx, res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantWarned(t, stored, school.WarnNoClass, pupilDN(7), badBirth.DN)
	wantWarned(t, stored, school.WarnOrphanGuardian, orphan.DN)

	// The CLI summarises by kind with counts and the first DNs.
	var out bytes.Buffer
	if err := rostersync.Command(e.ctx, rostersync.Options{Store: e.st, Log: quietLog()}, &out, []string{"runs", "--school", "skole", "--run", res.Run.ID}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no_class", "2", pupilDN(7), "orphan_guardian", orphan.DN, "bad_birth_date"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sync runs output lacks %q:\n%s", want, out.String())
		}
	}
}

// A common kind never crowds out a rare one: each kind keeps its first
// DNs, and all are counted.
func TestWarningsKeptPerKind(t *testing.T) {
	var r school.SyncRun
	for i := range 3000 {
		r.AddWarning(school.WarnNoEmail, fmt.Sprintf("uid=g%d", i), "no e-mail")
	}
	r.AddWarning(school.WarnOrphanGuardian, "uid=rare", "orphan")
	sum := r.WarningSummaries(3)
	if len(sum) != 2 || sum[0].Kind != school.WarnNoEmail || sum[0].Count != 3000 || len(sum[0].DNs) != 3 || sum[0].More != 2997 {
		t.Fatalf("summary = %+v", sum)
	}
	if sum[1].Kind != school.WarnOrphanGuardian || sum[1].Count != 1 || sum[1].DNs[0] != "uid=rare" {
		t.Fatalf("rare kind lost: %+v", sum[1])
	}
	if r.WarningTotal() != 3001 {
		t.Fatalf("total = %d", r.WarningTotal())
	}
}

// The same pupil (uid, or the same directory entry) in two schools of a
// municipality is reported in the school that reads it second.
func TestDuplicatePupilAcrossSchools(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	ctx := context.Background()
	other, err := e.st.CreateSchool(ctx, school.School{Code: "anden", Name: "Anden skole", Domain: "anden.test"})
	if err != nil {
		t.Fatal(err)
	}
	// The other school's pupils live under ou=anden; one of them has the
	// uid of pupil 3 of the first school.
	now := e.clock.Now()
	e.dir.add(&entry{DN: "ou=anden," + base, Attrs: map[string][]string{"objectclass": {"organizationalUnit"}}})
	twin := e.r.pupil(3, now)
	twin.DN = "uid=p3,ou=anden," + base
	twin.set("entryUUID", uuidFor(kindPupil, 9003))
	e.dir.add(twin)
	src, err := e.st.GetDirectorySource(ctx, e.sch.ID)
	if err != nil {
		t.Fatal(err)
	}
	src.SchoolID, src.PupilBase, src.StaffBase, src.ClassBase, src.GuardianBase = other.ID, "ou=anden,"+base, "", "", ""
	src.BindPassword = e.sealer.Seal([]byte(e.dir.bindPW), "ldap:"+other.ID)
	if _, err := e.st.PutDirectorySource(ctx, src); err != nil {
		t.Fatal(err)
	}
	peers := rostersync.NewPeers()
	if _, err := e.syncer.Run(ctx, e.sch.ID, rostersync.RunOptions{Peers: peers}); err != nil {
		t.Fatal(err)
	}
	res, err := e.syncer.Run(ctx, other.ID, rostersync.RunOptions{Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	wantWarned(t, res.Run, school.WarnDuplicateUID, twin.DN)
	if w := res.Run.Warnings[slices.IndexFunc(res.Run.Warnings, func(w school.SyncWarning) bool { return w.Kind == school.WarnDuplicateUID })]; !strings.Contains(w.Message, "skole") || !strings.Contains(w.Message, pupilDN(3)) {
		t.Errorf("warning does not name the other school and entry: %q", w.Message)
	}
	// Imported all the same: it is a warning.
	if _, err := e.st.PupilByExternalID(ctx, other.ID, uuidFor(kindPupil, 9003)); err != nil {
		t.Fatal(err)
	}
}

// Staff usernames are unique across schools: a directory staff member
// whose username another account holds is not created (nor is the second
// of two entries with one username), a rename onto a taken username is
// not applied, each with a warning; the others are created and updated.
func TestStaffUsernameTaken(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	other, err := e.st.CreateSchool(e.ctx, school.School{Code: "anden", Name: "Anden", Domain: "anden.test"})
	if err != nil {
		t.Fatal(err)
	}
	// t1's username is an account of another school already.
	held, err := e.st.CreateStaff(e.ctx, school.Staff{SchoolID: other.ID, Username: "t1@school.test", Role: school.RoleTeacher})
	if err != nil {
		t.Fatal(err)
	}
	// A fourth staff entry with t2's username.
	twin := small.staffEntry(3, e.clock.Now().Add(-time.Hour))
	twin.set("uid", "t2")
	e.dir.add(twin)
	res := e.mustRun(rostersync.RunOptions{})
	if res.Run.WarningCounts[school.WarnStaffUsername] != 2 {
		t.Fatalf("staff username warnings = %+v", res.Run.Warnings)
	}
	t2, err := e.st.StaffByUsername(e.ctx, "t2@school.test")
	if err != nil || t2.SchoolID != e.sch.ID {
		t.Fatalf("t2 = %+v, %v", t2, err)
	}
	var msgs []string
	for _, w := range res.Run.Warnings {
		if w.Kind == school.WarnStaffUsername {
			msgs = append(msgs, w.Message)
		}
	}
	want := []string{`staff username "t1@school.test" is taken by account ` + held.ID + `; not created`,
		`staff username "t2@school.test" is taken by account ` + t2.ID + `; not created`}
	if !slices.Equal(msgs, want) {
		t.Fatalf("warnings = %q, want %q", msgs, want)
	}
	if s, _ := e.st.StaffByUsername(e.ctx, "t1@school.test"); s.ID != held.ID || s.SchoolID != other.ID {
		t.Fatalf("t1's username now belongs to %+v", s)
	}
	staff, err := e.st.ListStaff(e.ctx, e.sch.ID)
	if err != nil || len(staff) != 2 {
		t.Fatalf("school staff = %+v, %v", staff, err)
	}

	// t0 renamed onto t2's username is refused; t2 renamed to a free name
	// is applied, in the same run.
	e.dir.modify(staffDN(0), e.clock.Now(), func(en *entry) { en.set("uid", "t2") })
	e.dir.modify(staffDN(2), e.clock.Now(), func(en *entry) { en.set("uid", "t2b") })
	e.dir.remove(twin.DN)
	res = e.mustRun(rostersync.RunOptions{})
	t0, err := e.st.GetStaff(e.ctx, staffIDByExt(t, e, staff, 0))
	if err != nil || t0.Username != "t0@school.test" {
		t.Fatalf("t0 = %+v, %v", t0, err)
	}
	if s, err := e.st.StaffByUsername(e.ctx, "t2b@school.test"); err != nil || s.ID != t2.ID {
		t.Fatalf("t2b = %+v, %v", s, err)
	}
	if n := res.Run.WarningCounts[school.WarnStaffUsername]; n != 2 { // t1 again, and t0's rename
		t.Fatalf("staff username warnings = %+v", res.Run.Warnings)
	}
}

func staffIDByExt(t *testing.T, e *env, staff []school.Staff, i int) string {
	t.Helper()
	for _, s := range staff {
		if s.ExternalID == uuidFor(kindStaff, i) {
			return s.ID
		}
	}
	t.Fatalf("no staff member %d in %+v", i, staff)
	return ""
}
