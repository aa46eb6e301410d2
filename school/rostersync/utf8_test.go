package rostersync_test

import (
	"strings"
	"testing"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

// TestInvalidUTF8FromDirectory (issue 15, item 6): names from the
// directory that are not valid UTF-8 are not imported as they are: the
// entry is skipped with a warning (which is stored, also on PostgreSQL,
// where such text would make the whole run fail).
func TestInvalidUTF8FromDirectory(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			var st school.Store
			clock := newClock()
			if db == "postgres" {
				st = openPostgres(t, clock)
			}
			e := newEnv(t, small, st, clock)
			now := e.clock.Now()
			bad := e.r.pupil(1000, now)
			bad.set("givenName", "bad\xff\xfe")
			badGuardian := e.r.guardian(1000, now)
			badGuardian.set("cn", "Mor \xc3")
			badClass := e.r.class(99, now)
			badClass.set("cn", "9\xff")
			e.dir.add(bad, badGuardian, badClass)
			res := e.mustRun(rostersync.RunOptions{})
			for dn, attr := range map[string]string{bad.DN: "givenName", badGuardian.DN: "cn", badClass.DN: "cn"} {
				found := false
				for _, w := range res.Run.Warnings {
					if w.DN == dn && strings.Contains(w.Message, attr+" is not valid UTF-8") {
						found = true
					}
				}
				if !found {
					t.Errorf("no UTF-8 warning for %s in %+v", dn, res.Run.Warnings)
				}
			}
			pupils, err := e.st.ListPupils(e.ctx, school.PupilFilter{SchoolID: e.sch.ID})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pupils {
				if strings.HasPrefix(p.GivenName, "bad") || !utf8Valid(p.GivenName) {
					t.Fatalf("invalid name imported: %q", p.GivenName)
				}
			}
			if len(pupils) != small.pupils {
				t.Fatalf("%d pupils, want %d (the valid ones)", len(pupils), small.pupils)
			}
			stored, err := e.st.GetSyncRun(e.ctx, res.Run.ID)
			if err != nil || len(stored.Warnings) != len(res.Run.Warnings) {
				t.Fatalf("stored run: %v, %d warnings of %d", err, len(stored.Warnings), len(res.Run.Warnings))
			}
		})
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
