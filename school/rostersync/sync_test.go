package rostersync_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

var small = roster{preset: school.PresetOpenLDAP, pupils: 60, guardians: 40, classes: 3, staff: 3}

func counts(t *testing.T, res rostersync.Result, want map[string]int) {
	t.Helper()
	got := res.Run.Counts
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			t.Errorf("count %s = %d, want %d (all: %v)", k, got[k], want[k], got)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && v != 0 {
			t.Errorf("unexpected count %s = %d", k, v)
		}
	}
}

func TestFullSyncCreatesRoster(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	var progress []rostersync.Progress
	res := e.mustRun(rostersync.RunOptions{Progress: func(p rostersync.Progress) { progress = append(progress, p) }})
	counts(t, res, map[string]int{"class.create": 3, "guardian.create": 40, "staff.create": 3, "pupil.create": 60})
	if res.Run.Status != school.SyncSucceeded || res.Run.Entries != 106 || res.Run.Pages < 5 || len(res.Run.Warnings) != 0 {
		t.Fatalf("run = %+v", res.Run)
	}
	if len(progress) != res.Run.Pages+1 || progress[len(progress)-2].Entries != 106 || progress[len(progress)-1].Phase != "apply" {
		t.Fatalf("progress = %+v", progress)
	}
	if e.dir.maxPage > 25 {
		t.Fatalf("server served a page of %d entries, page size is 25", e.dir.maxPage)
	}
	p := e.pupil(4)
	if p.GivenName != "Pupil4" || p.FamilyName != "Family4" || p.BirthDate.Format(time.DateOnly) != "2011-05-05" ||
		len(p.ClassIDs) != 1 || len(p.GuardianIDs) != 2 || p.Status != school.PupilActive {
		t.Fatalf("pupil 4 = %+v", p)
	}
	c, _ := e.st.GetClass(e.ctx, e.sch.ID, p.ClassIDs[0])
	if c.ExternalID != uuidFor(kindClass, 1) || c.Name != "6B" {
		t.Fatalf("class of pupil 4 = %+v", c)
	}
	g, _ := e.st.GuardianByExternalID(e.ctx, e.sch.ID, uuidFor(kindGuardian, 4))
	if !slices.Contains(p.GuardianIDs, g.ID) || g.Email != "g4@example.test" {
		t.Fatalf("guardian = %+v, pupil %v", g, p.GuardianIDs)
	}
	admin, err := e.st.StaffByUsername(e.ctx, "t0@school.test")
	if err != nil || admin.Role != school.RoleSchoolAdmin || admin.SchoolID != e.sch.ID || len(admin.ClassIDs) != 1 {
		t.Fatalf("staff t0 = %+v, %v", admin, err)
	}
	if teacher, _ := e.st.StaffByUsername(e.ctx, "t1@school.test"); teacher.Role != school.RoleTeacher {
		t.Fatalf("staff t1 = %+v", teacher)
	}
	// Every change is audited, by "sync", without personal data.
	if err := e.st.VerifyAudit(e.ctx, e.sch.ID); err != nil {
		t.Fatal(err)
	}
	audit, _ := e.st.ListAudit(e.ctx, school.AuditFilter{SchoolID: e.sch.ID, Limit: 1000})
	if len(audit) != 3+40+3+60+1 {
		t.Fatalf("%d audit entries", len(audit))
	}
	for _, a := range audit {
		if a.ActorID != "sync" || strings.Contains(a.Detail, "Pupil") || strings.Contains(a.Detail, "@") || strings.Contains(a.Detail, "uid=") {
			t.Fatalf("audit entry %+v", a)
		}
	}
	src, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID)
	if !src.LastFullRun.Equal(res.Run.StartedAt) {
		t.Fatalf("LastFullRun = %v, run started %v", src.LastFullRun, res.Run.StartedAt)
	}
	// A second run with no change in the directory changes nothing.
	before := e.snapshot()
	res = e.mustRun(rostersync.RunOptions{})
	counts(t, res, map[string]int{})
	if after := e.snapshot(); after != before[:strings.LastIndex(before, "audit")]+after[strings.LastIndex(after, "audit"):] {
		t.Fatalf("no-change run changed the roster")
	}
}

func TestUpdateMoveRenameKeepsPupil(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	before := e.pupil(7)
	now := e.clock.Now()
	// Rename (sn), move to another OU with a new RDN, change class and
	// guardians: the entryUUID stays, so the pupil stays.
	old := e.dir.find(pupilDN(7))
	e.dir.remove(pupilDN(7))
	old.DN = "uid=p7-renamed,ou=moved," + base
	old.set("sn", "Newname")
	old.set("seeAlso", guardianDN(30))
	e.dir.add(old)
	e.dir.modify(classDN(1), now, func(c *entry) {
		c.set("member", slices.DeleteFunc(c.get("member"), func(m string) bool { return m == pupilDN(7) })...)
	})
	e.dir.modify(classDN(2), now, func(c *entry) { c.set("member", append(c.get("member"), old.DN)...) })
	e.dir.modify(classDN(0), now, func(c *entry) { c.set("cn", "6Z") })
	e.source(func(s *school.DirectorySource) { s.PupilBase = base })
	res := e.mustRun(rostersync.RunOptions{})
	counts(t, res, map[string]int{"pupil.update": 1, "pupil.class": 1, "pupil.guardians": 1, "class.update": 1})
	after := e.pupil(7)
	if after.ID != before.ID || after.FamilyName != "Newname" || after.CreatedAt != before.CreatedAt {
		t.Fatalf("pupil after move = %+v, before %+v", after, before)
	}
	c, _ := e.st.GetClass(e.ctx, e.sch.ID, after.ClassIDs[0])
	g, _ := e.st.GetGuardian(e.ctx, after.GuardianIDs[0])
	if len(after.ClassIDs) != 1 || c.ExternalID != uuidFor(kindClass, 2) || len(after.GuardianIDs) != 1 || g.ExternalID != uuidFor(kindGuardian, 30) {
		t.Fatalf("links after move = %v %v", after.ClassIDs, after.GuardianIDs)
	}
	// Hand-made classes survive syncs.
	manual, _ := e.st.CreateClass(e.ctx, school.Class{SchoolID: e.sch.ID, Name: "Kor"})
	e.st.UpdatePupil(e.ctx, after.ID, func(p school.Pupil) (school.Pupil, error) { p.ClassIDs = append(p.ClassIDs, manual.ID); return p, nil })
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{})
	if p := e.pupil(7); !slices.Contains(p.ClassIDs, manual.ID) {
		t.Fatalf("hand-made class link dropped: %v", p.ClassIDs)
	}
}

func TestQuarantineRestoreRemove(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	p3 := e.pupil(3)
	gone := e.dir.find(pupilDN(3))
	e.dir.remove(pupilDN(3))

	res := e.mustRun(rostersync.RunOptions{})
	counts(t, res, map[string]int{"pupil.quarantine": 1})
	q := e.pupil(3)
	if q.Status != school.PupilQuarantined || !q.QuarantinedAt.Equal(e.clock.Now()) || !slices.Equal(e.hooked, []string{p3.ID}) {
		t.Fatalf("after quarantine: %+v, hook %v", q, e.hooked)
	}
	// Within the grace it stays quarantined, and comes back when it
	// reappears, with everything it had.
	e.clock.Advance(10 * 24 * time.Hour)
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{})
	e.dir.add(gone)
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.restore": 1})
	r := e.pupil(3)
	if r.ID != p3.ID || r.Status != school.PupilActive || !r.QuarantinedAt.IsZero() || !slices.Equal(r.ClassIDs, p3.ClassIDs) || !slices.Equal(r.GuardianIDs, p3.GuardianIDs) {
		t.Fatalf("restored = %+v, was %+v", r, p3)
	}
	// Gone past the grace: removed, not deleted.
	e.dir.remove(pupilDN(3))
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.quarantine": 1})
	e.clock.Advance(29 * 24 * time.Hour)
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{})
	e.clock.Advance(24 * time.Hour)
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.remove": 1})
	if p := e.pupil(3); p.Status != school.PupilRemoved || p.ID != p3.ID {
		t.Fatalf("after grace: %+v", p)
	}
}

func TestQuarantineHookErrorAppliesNothing(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	e.dir.remove(pupilDN(3))
	e.dir.modify(pupilDN(4), e.clock.Now(), func(p *entry) { p.set("sn", "Changed") })
	e.hookErr = errors.New("session store down")
	before := e.snapshot()
	res, err := e.run(rostersync.RunOptions{})
	if err == nil || res.Run.Status != school.SyncFailed || !strings.Contains(res.Run.Error, "session store down") {
		t.Fatalf("run = %+v, %v", res.Run, err)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("a failed run changed the store:\n%s\n---\n%s", before, after)
	}
}

func TestDeletionThreshold(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gone    int
		percent int
		abs     int
	}{
		{"percent", 7, 10, 500}, // 7 of 60 > 10 %
		{"absolute", 3, 100, 2}, // 3 > 2
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, small, nil, nil)
			e.source(func(s *school.DirectorySource) { s.MaxDeletePercent, s.MaxDeletions = tc.percent, tc.abs })
			e.mustRun(rostersync.RunOptions{})
			for i := range tc.gone {
				e.dir.remove(pupilDN(i))
			}
			e.dir.modify(pupilDN(50), e.clock.Now(), func(p *entry) { p.set("sn", "Changed") })
			before := e.snapshot()
			res, err := e.run(rostersync.RunOptions{})
			if !errors.Is(err, rostersync.ErrThreshold) || res.Run.Status != school.SyncAbortedThreshold || res.Run.Counts["pupil.quarantine"] != tc.gone {
				t.Fatalf("run = %+v, %v", res.Run, err)
			}
			if after := e.snapshot(); after != before || len(e.hooked) != 0 {
				t.Fatalf("an aborted run changed the store")
			}
			// Forced, it applies.
			res = e.mustRun(rostersync.RunOptions{Force: true})
			counts(t, res, map[string]int{"pupil.quarantine": tc.gone, "pupil.update": 1})
			if !res.Run.Forced || len(e.pupils(school.PupilQuarantined)) != tc.gone {
				t.Fatalf("forced run = %+v", res.Run)
			}
		})
	}
	t.Run("below", func(t *testing.T) {
		e := newEnv(t, small, nil, nil)
		e.mustRun(rostersync.RunOptions{})
		for i := range 6 { // exactly 10 %: not more than 10 %
			e.dir.remove(pupilDN(i))
		}
		counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.quarantine": 6})
	})
	t.Run("staff", func(t *testing.T) {
		e := newEnv(t, small, nil, nil)
		e.mustRun(rostersync.RunOptions{})
		e.dir.remove(staffDN(1))
		e.dir.remove(staffDN(2))
		if _, err := e.run(rostersync.RunOptions{}); !errors.Is(err, rostersync.ErrThreshold) {
			t.Fatalf("disabling 2 of 3 staff: %v", err)
		}
		counts(t, e.mustRun(rostersync.RunOptions{Force: true}), map[string]int{"staff.disable": 2, "pupil.class": 0})
		if s, _ := e.st.StaffByUsername(e.ctx, "t1@school.test"); !s.Disabled {
			t.Fatalf("staff t1 not disabled: %+v", s)
		}
	})
}

func TestEmptyDirectoryNeverDeprovisions(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	before := e.snapshot()
	// A wrong base DN (or an ACL hiding everything) returns nothing.
	e.source(func(s *school.DirectorySource) { s.PupilBase = "ou=nobody," + base })
	for _, force := range []bool{false, true} {
		res, err := e.run(rostersync.RunOptions{Force: force})
		if !errors.Is(err, rostersync.ErrEmptyDirectory) || res.Run.Status != school.SyncFailed {
			t.Fatalf("force=%v: run = %+v, %v", force, res.Run, err)
		}
	}
	e.source(func(s *school.DirectorySource) { s.PupilBase = "ou=pupils," + base; s.StaffBase = "ou=nobody," + base })
	if _, err := e.run(rostersync.RunOptions{Force: true}); !errors.Is(err, rostersync.ErrEmptyDirectory) {
		t.Fatalf("empty staff: %v", err)
	}
	// Empty guardian or class searches would unlink every pupil.
	e.source(func(s *school.DirectorySource) {
		s.StaffBase = "ou=staff," + base
		s.GuardianBase = "ou=nobody," + base
	})
	if _, err := e.run(rostersync.RunOptions{Force: true}); !errors.Is(err, rostersync.ErrEmptyDirectory) {
		t.Fatalf("empty guardians: %v", err)
	}
	e.source(func(s *school.DirectorySource) {
		s.GuardianBase = "ou=guardians," + base
		s.ClassBase = "ou=nobody," + base
	})
	if _, err := e.run(rostersync.RunOptions{Force: true}); !errors.Is(err, rostersync.ErrEmptyDirectory) {
		t.Fatalf("empty classes: %v", err)
	}
	if after := e.snapshot(); after != before {
		t.Fatal("an empty directory changed the store")
	}
}

func TestDirectoryErrorsApplyNothing(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	// The page that fails is the last but one a whole run asks for.
	failPage := e.mustRun(rostersync.RunOptions{}).Run.Pages - 1
	if failPage < 2 {
		t.Fatalf("a run reads %d pages; the test needs at least 3", failPage+1)
	}
	for i := range 5 {
		e.dir.remove(pupilDN(i)) // would quarantine 5 (below the threshold)
	}
	e.dir.modify(pupilDN(10), e.clock.Now(), func(p *entry) { p.set("sn", "Changed") }) // in the first pupil page
	before := e.snapshot()
	cases := []struct {
		name  string
		setup func()
		want  string
	}{
		{"page error half way", func() { e.dir.mu.Lock(); e.dir.pageCount = 0; e.dir.failPage = failPage; e.dir.mu.Unlock() }, "Operations Error"},
		{"size limit", func() { e.dir.mu.Lock(); e.dir.failPage = 0; e.dir.sizeLimit = true; e.dir.mu.Unlock() }, "Size Limit Exceeded"},
		{"bad credentials", func() {
			e.dir.mu.Lock()
			e.dir.sizeLimit = false
			e.dir.mu.Unlock()
			e.source(func(s *school.DirectorySource) { s.BindPassword = e.sealer.Seal([]byte("wrong"), "ldap:"+e.sch.ID) })
		}, "Invalid Credentials"},
		{"password sealed for another school", func() {
			e.source(func(s *school.DirectorySource) { s.BindPassword = e.sealer.Seal([]byte(e.dir.bindPW), "ldap:other") })
		}, "bind password"},
		{"unreachable", func() {
			e.source(func(s *school.DirectorySource) {
				s.BindPassword = e.sealer.Seal([]byte(e.dir.bindPW), "ldap:"+e.sch.ID)
				s.URL = "ldap://127.0.0.1:1"
			})
		}, "connect to 127.0.0.1:1"},
		{"TLS to a plain server", func() {
			e.source(func(s *school.DirectorySource) { s.URL = e.dir.URL(); s.StartTLS = true })
		}, "StartTLS"},
		{"bad configured filter", func() {
			e.source(func(s *school.DirectorySource) { s.StartTLS = false; s.PupilFilter = "(uid=a" })
		}, "filter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			res, err := e.run(rostersync.RunOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || res.Run.Status != school.SyncFailed || !strings.Contains(res.Run.Error, tc.want) {
				t.Fatalf("err = %v, run = %+v", err, res.Run)
			}
			if after := e.snapshot(); after != before {
				t.Fatalf("a failed run changed the store:\n%s\n---\n%s", before, after)
			}
		})
	}
}

func TestBadEntriesAreSkippedWithWarnings(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	now := e.clock.Now()
	// An existing pupil whose entry turns invalid is skipped, not
	// quarantined.
	e.dir.modify(pupilDN(1), now, func(p *entry) { p.set("schacDateOfBirth", "20121399") })
	e.dir.modify(pupilDN(2), now, func(p *entry) { delete(p.Attrs, "givenname") })
	dup := e.r.pupil(1000, now)
	dup.set("entryUUID", uuidFor(kindPupil, 5)) // same id as pupil 5
	bad := e.r.pupil(1001, now)
	bad.set("entryUUID", "not-a-uuid")
	noBirth := e.r.pupil(1002, now)
	delete(noBirth.Attrs, "schacdateofbirth")
	e.dir.add(dup, bad, noBirth)
	res := e.mustRun(rostersync.RunOptions{})
	// The invalid date of birth is treated like a missing one: pupil 1
	// stays, without a date of birth.
	counts(t, res, map[string]int{"pupil.create": 1, "pupil.update": 1})
	if p := e.pupil(1); !p.BirthDate.IsZero() {
		t.Errorf("pupil 1 kept birth date %s from before the invalid value", p.BirthDate)
	}
	want := map[string]string{
		pupilDN(1):    "date of birth",
		pupilDN(2):    "no givenName",
		pupilDN(5):    "duplicate external id",
		dup.DN:        "duplicate external id",
		bad.DN:        "malformed entryUUID",
		noBirth.DN:    "no date of birth",
		guardianDN(0): "",
	}
	for dn, msg := range want {
		if msg == "" {
			continue
		}
		found := false
		for _, w := range res.Run.Warnings {
			if w.DN == dn && strings.Contains(w.Message, msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning %q for %s in %+v", msg, dn, res.Run.Warnings)
		}
	}
	for _, i := range []int{1, 2, 5} {
		if p := e.pupil(i); p.Status != school.PupilActive {
			t.Errorf("pupil %d with a bad entry is %s", i, p.Status)
		}
	}
	stored, _ := e.st.GetSyncRun(e.ctx, res.Run.ID)
	if len(stored.Warnings) != len(res.Run.Warnings) {
		t.Fatalf("stored %d warnings, run had %d", len(stored.Warnings), len(res.Run.Warnings))
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	before := e.snapshot()
	res := e.mustRun(rostersync.RunOptions{DryRun: true})
	if !res.Run.DryRun || res.Run.Counts["pupil.create"] != 60 || len(res.Changes) != 106 {
		t.Fatalf("dry run = %+v (%d changes)", res.Run, len(res.Changes))
	}
	if after := e.snapshot(); after != before {
		t.Fatal("dry run changed the roster")
	}
	if src, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID); !src.LastFullRun.IsZero() {
		t.Fatal("dry run marked a full run")
	}
	// A dry run past the threshold reports what it would do.
	e.mustRun(rostersync.RunOptions{})
	for i := range 20 {
		e.dir.remove(pupilDN(i))
	}
	res, err := e.run(rostersync.RunOptions{DryRun: true})
	if !errors.Is(err, rostersync.ErrThreshold) || res.Run.Counts["pupil.quarantine"] != 20 {
		t.Fatalf("dry run past threshold = %+v, %v", res.Run, err)
	}
	if len(e.pupils(school.PupilQuarantined)) != 0 {
		t.Fatal("dry run quarantined")
	}
}

func TestIncrementalRun(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	e.clock.Advance(time.Hour)
	now := e.clock.Now()
	e.dir.modify(pupilDN(8), now, func(p *entry) { p.set("givenName", "Renamed") })
	e.dir.remove(pupilDN(9))
	fresh := e.r.pupil(500, now)
	e.dir.add(fresh)
	e.dir.modify(classDN(0), now, func(c *entry) { c.set("member", append(c.get("member"), fresh.DN)...) })
	e.dir.mu.Lock()
	e.dir.filters = nil
	e.dir.mu.Unlock()
	res := e.mustRun(rostersync.RunOptions{Mode: school.SyncIncremental})
	counts(t, res, map[string]int{"pupil.update": 1, "pupil.create": 1})
	if res.Run.Mode != school.SyncIncremental || res.Run.Entries > 10 {
		t.Fatalf("incremental run = %+v", res.Run)
	}
	if p := e.pupil(9); p.Status != school.PupilActive {
		t.Fatal("an incremental run quarantined a pupil")
	}
	if p := e.pupil(500); len(p.ClassIDs) != 1 || len(p.GuardianIDs) != 2 {
		t.Fatalf("new pupil from incremental run = %+v", p)
	}
	if e.pupil(8).GivenName != "Renamed" {
		t.Fatal("incremental run missed a change")
	}
	var sawStamp bool
	for _, f := range e.dir.lastFilters() {
		if strings.Contains(f, "modifyTimestamp>=") {
			sawStamp = true
		}
	}
	if !sawStamp {
		t.Fatalf("filters = %v", e.dir.lastFilters())
	}
	// The next full run catches the deletion.
	counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.quarantine": 1})
}

func TestFilterValuesAreEscaped(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.mustRun(rostersync.RunOptions{})
	e.dir.mu.Lock()
	e.dir.filters = nil
	e.dir.mu.Unlock()
	res := e.mustRun(rostersync.RunOptions{PupilID: "*)(uid=*"})
	counts(t, res, map[string]int{})
	var pupilFilter string
	for _, f := range e.dir.lastFilters() {
		if strings.Contains(f, "entryUUID") {
			pupilFilter = f
		}
	}
	if pupilFilter != `(&(objectClass=inetOrgPerson)(entryUUID=\2a\29\28uid=\2a))` {
		t.Fatalf("pupil filter = %q", pupilFilter)
	}
	// A single pupil sync by id works and removes no one.
	e.dir.remove(pupilDN(1))
	e.dir.modify(pupilDN(2), e.clock.Now(), func(p *entry) { p.set("sn", "One") })
	counts(t, e.mustRun(rostersync.RunOptions{PupilID: uuidFor(kindPupil, 2)}), map[string]int{"pupil.update": 1})
	if e.pupil(1).Status != school.PupilActive {
		t.Fatal("single-pupil sync quarantined")
	}
	for _, f := range []string{"(uid=a", "uid=a", "(&(a=b)", "(a=b))"} {
		if err := rostersync.ValidateFilter(f); err == nil {
			t.Errorf("filter %q accepted", f)
		}
	}
}

func TestActiveDirectory(t *testing.T) {
	r := roster{preset: school.PresetAD, pupils: 40, guardians: 20, classes: 2, staff: 2}
	e := newEnv(t, r, nil, nil)
	e.dir.rangeSize = 7 // classes have 21 members: three ranges
	bad := r.pupil(100, e.clock.Now())
	bad.set("objectGUID", "short")
	e.dir.add(bad)
	res := e.mustRun(rostersync.RunOptions{})
	counts(t, res, map[string]int{"class.create": 2, "guardian.create": 20, "staff.create": 2, "pupil.create": 40})
	if len(res.Run.Warnings) != 1 || res.Run.Warnings[0].DN != bad.DN || !strings.Contains(res.Run.Warnings[0].Message, "malformed objectGUID") {
		t.Fatalf("warnings = %+v", res.Run.Warnings)
	}
	// Every pupil got its class, though member came in ranges.
	for _, p := range e.pupils("") {
		if len(p.ClassIDs) != 1 {
			t.Fatalf("pupil %s has classes %v", p.ExternalID, p.ClassIDs)
		}
	}
	if p := e.pupil(3); p.BirthDate.Format(time.DateOnly) != "2014-04-04" {
		t.Fatalf("AD pupil = %+v", p)
	}
	if s, err := e.st.StaffByUsername(e.ctx, "t1@school.test"); err != nil || len(s.ClassIDs) != 1 {
		t.Fatalf("AD staff = %+v, %v", s, err)
	}
	// Incremental on AD uses whenChanged.
	e.clock.Advance(time.Hour)
	e.dir.modify(pupilDN(3), e.clock.Now(), func(p *entry) { p.set("sn", "Changed") })
	counts(t, e.mustRun(rostersync.RunOptions{Mode: school.SyncIncremental}), map[string]int{"pupil.update": 1})
	found := false
	for _, f := range e.dir.lastFilters() {
		found = found || strings.Contains(f, "whenChanged>=")
	}
	if !found {
		t.Fatal("no whenChanged filter")
	}
	// A single pupil by GUID is escaped byte by byte.
	counts(t, e.mustRun(rostersync.RunOptions{PupilID: uuidFor(kindPupil, 4)}), map[string]int{})
	want, _ := rostersync.EncodeGUID(uuidFor(kindPupil, 4))
	// The server decodes the assertion value back to exactly the 16 bytes.
	found = false
	for _, fs := range e.dir.lastFilters() {
		f, err := parseFilter(fs)
		if err != nil || f.op != '&' || len(f.subs) != 2 || f.subs[1].attr != "objectguid" {
			continue
		}
		found = f.subs[1].value == string(want)
	}
	if !found {
		t.Fatalf("no GUID filter with the exact bytes in %q", e.dir.lastFilters())
	}
}

func TestDecodeGUID(t *testing.T) {
	// The example of MS-DTYP 2.3.4: {3F2504E0-4F89-11D3-9A0C-0305E82C3301}.
	raw := []byte{0xE0, 0x04, 0x25, 0x3F, 0x89, 0x4F, 0xD3, 0x11, 0x9A, 0x0C, 0x03, 0x05, 0xE8, 0x2C, 0x33, 0x01}
	got, err := rostersync.DecodeGUID(raw)
	if err != nil || got != "3f2504e0-4f89-11d3-9a0c-0305e82c3301" {
		t.Fatalf("DecodeGUID = %q, %v", got, err)
	}
	back, err := rostersync.EncodeGUID(got)
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("EncodeGUID = %x, %v", back, err)
	}
	for _, b := range [][]byte{nil, raw[:15], append(raw, 0)} {
		if _, err := rostersync.DecodeGUID(b); err == nil {
			t.Errorf("DecodeGUID(%x) accepted", b)
		}
	}
}

func FuzzDecodeGUID(f *testing.F) {
	f.Add([]byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := rostersync.DecodeGUID(b)
		if err != nil {
			return
		}
		back, err := rostersync.EncodeGUID(s)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip %x → %s → %x, %v", b, s, back, err)
		}
	})
}

func TestOneRunPerSchool(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	if err := e.st.TryLock(e.ctx, "rostersync:"+e.sch.ID, "other-node", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(rostersync.RunOptions{}); !errors.Is(err, rostersync.ErrBusy) {
		t.Fatalf("run while locked: %v", err)
	}
	e.clock.Advance(2 * time.Minute) // the other node's lease expired
	e.mustRun(rostersync.RunOptions{})
	// The lock is released after a run.
	if err := e.st.TryLock(e.ctx, "rostersync:"+e.sch.ID, "other-node", time.Minute); err != nil {
		t.Fatalf("lock not released: %v", err)
	}
}

func TestCommand(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(e.dir.bindPW+"\n"), 0o600)
	var out bytes.Buffer
	run := func(args ...string) error {
		out.Reset()
		return rostersync.Command(e.ctx, rostersync.Options{Store: e.st, Sealer: e.sealer, Log: quietLog()}, &out, args)
	}
	err := run("source", "set", "--school", "skole", "--url", e.dir.URL(), "--insecure", "--bind-dn", e.dir.bindDN, "--password-file", pw,
		"--preset", "openldap", "--pupil-base", "ou=pupils,"+base, "--class-base", "ou=classes,"+base,
		"--guardian-base", "ou=guardians,"+base, "--staff-base", "ou=staff,"+base, "--page-size", "20", "--interval", "1h")
	if err != nil {
		t.Fatalf("source set: %v\n%s", err, out.String())
	}
	src, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID)
	if pt, err := e.sealer.Open(src.BindPassword, "ldap:"+e.sch.ID); err != nil || string(pt) != e.dir.bindPW || src.PageSize != 20 {
		t.Fatalf("stored source %+v: %q %v", src, pt, err)
	}
	if bytes.Contains(src.BindPassword, []byte(e.dir.bindPW)) {
		t.Fatal("bind password stored in clear")
	}
	if err := run("source", "set", "--school", "skole", "--url", e.dir.URL(), "--insecure", "--pupil-base", "ou=pupils,"+base, "--pupil-filter", "(bad"); err == nil {
		t.Fatal("bad filter accepted")
	}
	if err := run("--school", "skole", "--dry-run"); err != nil || !strings.Contains(out.String(), "pupil.create") || !strings.Contains(out.String(), "dry run") {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	if err := run("--school", "skole"); err != nil || !strings.Contains(out.String(), "succeeded") || !strings.Contains(out.String(), "pupils") {
		t.Fatalf("sync: %v\n%s", err, out.String())
	}
	for i := range 20 {
		e.dir.remove(pupilDN(i))
	}
	if err := run("--school", "skole"); !errors.Is(err, rostersync.ErrThreshold) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("threshold: %v", err)
	}
	if err := run("runs", "--school", "skole"); err != nil || strings.Count(out.String(), "run ") != 3 || !strings.Contains(out.String(), "aborted_threshold") {
		t.Fatalf("runs: %v\n%s", err, out.String())
	}
	if err := run("source", "show", "--school", "skole"); err != nil || strings.Contains(out.String(), e.dir.bindPW) || !strings.Contains(out.String(), "set (sealed)") {
		t.Fatalf("show: %v\n%s", err, out.String())
	}
	if err := run("--school", "nope"); err == nil {
		t.Fatal("unknown school accepted")
	}
}

func TestScheduler(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	e.source(func(s *school.DirectorySource) { s.Interval = time.Hour; s.FullInterval = 24 * time.Hour })
	sc := rostersync.NewScheduler(e.syncer, time.Minute)
	runs := func() []school.SyncRun {
		rs, _ := e.st.ListSyncRuns(e.ctx, e.sch.ID, 0)
		return rs
	}
	sc.RunDue(e.ctx)
	if rs := runs(); len(rs) != 1 || rs[0].Mode != school.SyncFull || rs[0].Status != school.SyncSucceeded {
		t.Fatalf("first scheduled run: %+v", rs)
	}
	e.clock.Advance(30 * time.Minute)
	sc.RunDue(e.ctx)
	if len(runs()) != 1 {
		t.Fatal("ran before the interval")
	}
	e.clock.Advance(31 * time.Minute)
	sc.RunDue(e.ctx)
	if rs := runs(); len(rs) != 2 || rs[0].Mode != school.SyncIncremental {
		t.Fatalf("second scheduled run: %+v", rs[0])
	}
	e.clock.Advance(24 * time.Hour)
	sc.RunDue(e.ctx)
	if rs := runs(); len(rs) != 3 || rs[0].Mode != school.SyncFull {
		t.Fatalf("daily full run: %+v", rs[0])
	}
}

// Plain ldap:// without StartTLS sends the bind password in clear: `sync
// source set` refuses it unless --insecure is given, stores that mark, and
// a run refuses such a source that is not marked insecure.
func TestPlainLDAPNeedsInsecure(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(e.dir.bindPW), 0o600)
	before, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID)
	set := func(extra ...string) error {
		var out bytes.Buffer
		args := append([]string{"source", "set", "--school", "skole", "--url", e.dir.URL(), "--bind-dn", e.dir.bindDN,
			"--password-file", pw, "--pupil-base", "ou=pupils," + base}, extra...)
		return rostersync.Command(e.ctx, rostersync.Options{Store: e.st, Sealer: e.sealer, Log: quietLog()}, &out, args)
	}
	err := set("--page-size", "7")
	if err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("plain ldap:// without --insecure: %v", err)
	}
	if got, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID); got.PageSize != before.PageSize {
		t.Fatal("a refused source set changed the source")
	}
	if err := set("--insecure", "--page-size", "7"); err != nil {
		t.Fatalf("plain ldap:// with --insecure: %v", err)
	}
	if got, _ := e.st.GetDirectorySource(e.ctx, e.sch.ID); !got.Insecure || got.PageSize != 7 {
		t.Fatalf("stored source: insecure %v, page size %d", got.Insecure, got.PageSize)
	}
	e.mustRun(rostersync.RunOptions{})

	// A stored plain source without the mark (e.g. from before) is refused.
	e.source(func(s *school.DirectorySource) { s.Insecure = false })
	if _, err := e.run(rostersync.RunOptions{}); !errors.Is(err, rostersync.ErrPlainLDAP) {
		t.Fatalf("run of an unmarked plain ldap:// source: %v", err)
	}
}

// Pupils, guardians and staff under sibling bases with one filter are read
// with one search of their parent (not three: OpenLDAP checks the scope of
// every person in the directory once per search); a person elsewhere under
// the parent is not imported, and the school ends up exactly as with three
// searches (bases that are not siblings).
func TestSiblingBasesReadWithOneSearch(t *testing.T) {
	stray := &entry{DN: "uid=stray,ou=others," + base, Attrs: map[string][]string{}}
	for k, v := range small.pupil(0, time.Now()).Attrs {
		stray.Attrs[k] = v
	}
	stray.set("entryUUID", "0d8e3c52-5e55-4b8c-9d5c-2f2a4f0b6b01")
	stray.set("uid", "stray")
	stray.set("givenName", "Stray")

	searches := func(e *env) []string {
		e.dir.mu.Lock()
		defer e.dir.mu.Unlock()
		out := slices.Clone(e.dir.bases)
		e.dir.bases = nil
		return out
	}
	together := newEnv(t, small, nil, nil)
	together.dir.add(stray)
	// An entry whose DN does not parse (an empty RDN) cannot be routed:
	// it is skipped with a warning, never silently.
	badDN := "uid=bad,,ou=pupils," + base
	bad := &entry{DN: badDN, Attrs: map[string][]string{}}
	for k, v := range small.pupil(1, time.Now()).Attrs {
		bad.Attrs[k] = v
	}
	bad.set("entryUUID", "0d8e3c52-5e55-4b8c-9d5c-2f2a4f0b6b02")
	together.dir.add(bad)
	res := together.mustRun(rostersync.RunOptions{})
	if !slices.ContainsFunc(res.Run.Warnings, func(w school.SyncWarning) bool {
		return w.Kind == school.WarnSkipped && w.DN == badDN && strings.Contains(w.Message, "DN cannot be parsed")
	}) {
		t.Errorf("no warning for the unparsable DN: %+v", res.Run.Warnings)
	}
	if got, want := searches(together), []string{"ou=classes," + base, base}; !slices.Equal(got, want) {
		t.Fatalf("searches: %q, want %q", got, want)
	}
	counts(t, res, map[string]int{"pupil.create": small.pupils, "guardian.create": small.guardians, "class.create": small.classes, "staff.create": small.staff})

	// Guardians one level deeper: the bases are no longer siblings.
	apart := newEnv(t, small, nil, nil)
	apart.dir.add(stray)
	for _, en := range apart.dir.entries {
		if strings.HasSuffix(en.DN, ",ou=guardians,"+base) {
			en.DN = strings.Replace(en.DN, ",ou=guardians,", ",ou=all,ou=guardians,", 1)
		}
	}
	for _, en := range apart.dir.entries {
		for i, v := range en.Attrs["seealso"] {
			en.Attrs["seealso"][i] = strings.Replace(v, ",ou=guardians,", ",ou=all,ou=guardians,", 1)
		}
	}
	apart.source(func(s *school.DirectorySource) { s.GuardianBase = "ou=all,ou=guardians," + base })
	searches(apart)
	apart.mustRun(rostersync.RunOptions{})
	want := []string{"ou=classes," + base, "ou=all,ou=guardians," + base, "ou=staff," + base, "ou=pupils," + base}
	if got := searches(apart); !slices.Equal(got, want) {
		t.Fatalf("searches: %q, want %q", got, want)
	}
	// Same pupils, links, guardians, classes and staff (ids and times
	// aside), and no stray pupil.
	norm := func(e *env) string {
		var b strings.Builder
		for _, p := range e.pupils("") {
			fmt.Fprintf(&b, "%s %s %s %d %d\n", p.ExternalID, p.Name(), p.BirthDate.Format(time.DateOnly), len(p.ClassIDs), len(p.GuardianIDs))
		}
		gs, _ := e.st.ListGuardians(e.ctx, e.sch.ID)
		ss, _ := e.st.ListStaff(e.ctx, e.sch.ID)
		cs, _ := e.st.ListClasses(e.ctx, e.sch.ID)
		fmt.Fprintf(&b, "%d guardians, %d staff, %d classes\n", len(gs), len(ss), len(cs))
		return b.String()
	}
	if a, b := norm(together), norm(apart); a != b {
		t.Fatalf("one search:\n%s\nthree searches:\n%s", a, b)
	}
	for _, p := range together.pupils("") {
		if p.GivenName == "Stray" {
			t.Fatal("a person outside the pupil base was imported")
		}
	}
}
