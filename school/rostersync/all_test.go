package rostersync_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

// municipalEntries is roster r for school number k: its entries under
// ou=CODE (when inOU) with ids of their own, and (when attr) a
// departmentNumber holding the school's code.
func municipalEntries(r roster, k int, code string, inOU, attr bool) []*entry {
	var out []*entry
	move := func(v string) string {
		if inOU {
			return strings.Replace(v, ","+base, ",ou="+code+","+base, 1)
		}
		return strings.Replace(v, "uid=", "uid="+code+"-", 1)
	}
	for _, e := range r.entries(newClock().Now()) {
		ne := &entry{DN: move(e.DN), Attrs: map[string][]string{}}
		if !inOU && strings.HasPrefix(e.DN, "cn=") {
			ne.DN = strings.Replace(e.DN, "cn=", "cn="+code+"-", 1)
		}
		for k2, vs := range e.Attrs {
			nv := make([]string, len(vs))
			for i, v := range vs {
				switch k2 {
				case "seealso", "member":
					v = move(v)
				case "entryuuid":
					v = strings.Replace(v, "-0000-4000", fmt.Sprintf("-%04x-4000", k+1), 1)
				case "uid":
					v = code + "-" + v
				}
				nv[i] = v
			}
			ne.Attrs[k2] = nv
		}
		if attr {
			ne.set("departmentNumber", code)
		}
		out = append(out, ne)
	}
	return out
}

// One `sync source set --all-schools` serves every school of one
// directory, and `sync --all` syncs them in one process, with a line per
// school and a summary table.
func TestSyncAllSchools(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flags      []string
		inOU, attr bool
	}{
		{"ou pattern", []string{"--pupil-base", "ou=pupils,ou={school}," + base, "--guardian-base", "ou=guardians,ou={school}," + base,
			"--class-base", "ou=classes,ou={school}," + base, "--staff-base", "ou=staff,ou={school}," + base}, true, false},
		{"school attribute", []string{"--school-attr", "departmentNumber", "--pupil-base", "ou=pupils," + base, "--guardian-base", "ou=guardians," + base,
			"--class-base", "ou=classes," + base, "--staff-base", "ou=staff," + base}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newClock()
			st := openSQLite(t, clock)
			dir := newFakeDir(t)
			codes := []string{"a-skole", "b-skole", "c-skole"}
			for k, code := range codes {
				if _, err := st.CreateSchool(ctx, school.School{Code: code, Name: code, Domain: code + ".test"}); err != nil {
					t.Fatal(err)
				}
				dir.add(municipalEntries(small, k, code, tc.inOU, tc.attr)...)
			}
			pw := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(pw, []byte(dir.bindPW+"\n"), 0o600)
			opt := rostersync.Options{Store: st, Sealer: testSealer(t), Log: quietLog(), Now: clock.Now}
			var out bytes.Buffer
			args := append([]string{"source", "set", "--all-schools", "--url", dir.URL(), "--insecure", "--bind-dn", dir.bindDN, "--password-file", pw, "--page-size", "25"}, tc.flags...)
			if err := rostersync.Command(ctx, opt, &out, args); err != nil {
				t.Fatalf("source set: %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "3 schools") {
				t.Fatalf("source set said %q", out.String())
			}
			// A dry run of all schools writes no pupil.
			out.Reset()
			if err := rostersync.Command(ctx, opt, &out, []string{"--all", "--dry-run"}); err != nil {
				t.Fatalf("sync --all --dry-run: %v\n%s", err, out.String())
			}
			for _, code := range codes {
				sch, _ := st.SchoolByCode(ctx, code)
				if n, _ := st.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID}); len(n) != 0 {
					t.Fatalf("dry run stored %d pupils in %s", len(n), code)
				}
			}
			if strings.Count(out.String(), "create 60") != 3 {
				t.Fatalf("dry run did not show the creations:\n%s", out.String())
			}
			out.Reset()
			if err := rostersync.Command(ctx, opt, &out, []string{"--all", "--concurrency", "2"}); err != nil {
				t.Fatalf("sync --all: %v\n%s", err, out.String())
			}
			for _, want := range []string{"[1/3]", "[3/3]", "a-skole", "c-skole", "total", "3 succeeded"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			for _, code := range codes {
				sch, _ := st.SchoolByCode(ctx, code)
				ps, err := st.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID})
				if err != nil || len(ps) != small.pupils {
					t.Fatalf("%s has %d pupils (%v), want %d", code, len(ps), err, small.pupils)
				}
				if len(ps[0].ClassIDs) != 1 || len(ps[0].GuardianIDs) == 0 {
					t.Fatalf("%s pupil not linked: %+v", code, ps[0])
				}
			}
			t.Log(out.String())
			// A no-change re-run changes nothing in any school.
			out.Reset()
			if err := rostersync.Command(ctx, opt, &out, []string{"--all"}); err != nil {
				t.Fatalf("re-run: %v\n%s", err, out.String())
			}
			if strings.Count(out.String(), "no pupil changes") != 3 {
				t.Errorf("re-run changed something:\n%s", out.String())
			}
		})
	}
}

// --all-schools without a way to tell schools apart is refused: every
// school would get every pupil.
func TestSourceSetAllSchoolsNeedsASchoolSelector(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t, newClock())
	st.CreateSchool(ctx, school.School{Code: "a", Name: "a", Domain: "a.test"})
	var out bytes.Buffer
	err := rostersync.Command(ctx, rostersync.Options{Store: st}, &out, []string{"source", "set", "--all-schools", "--url", "ldap://127.0.0.1:1", "--insecure", "--pupil-base", "ou=pupils," + base})
	if err == nil || !strings.Contains(err.Error(), "{school}") {
		t.Fatalf("err = %v", err)
	}
	if _, err := st.ListDirectorySources(ctx); err != nil {
		t.Fatal(err)
	}
	if srcs, _ := st.ListDirectorySources(ctx); len(srcs) != 0 {
		t.Fatalf("a refused source set stored %d sources", len(srcs))
	}
}

// The scheduler marks a run left "running" by a dead process as
// interrupted, also for a school without scheduled runs, and leaves a
// live run (its lock held) alone.
func TestSchedulerMarksDeadRunsInterrupted(t *testing.T) {
	e := newEnv(t, small, nil, nil)
	dead, err := e.st.CreateSyncRun(e.ctx, school.SyncRun{SchoolID: e.sch.ID, Mode: school.SyncFull})
	if err != nil {
		t.Fatal(err)
	}
	// A live holder of the lock: nothing is marked.
	if err := e.st.TryLock(e.ctx, "rostersync:"+e.sch.ID, "other-node", time.Minute); err != nil {
		t.Fatal(err)
	}
	sc := rostersync.NewScheduler(e.syncer, time.Minute)
	sc.RunDue(e.ctx)
	if r, _ := e.st.GetSyncRun(e.ctx, dead.ID); r.Status != school.SyncRunning {
		t.Fatalf("run of a live holder marked %s", r.Status)
	}
	// The holder's lease runs out (it died): the next check marks the run.
	e.clock.Advance(2 * time.Minute)
	sc.RunDue(e.ctx)
	r, err := e.st.GetSyncRun(e.ctx, dead.ID)
	if err != nil || r.Status != school.SyncInterrupted || !r.EndedAt.Equal(e.clock.Now()) {
		t.Fatalf("dead run = %+v, %v", r, err)
	}
}
