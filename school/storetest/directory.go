package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testDirectory(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	seed := NewSeed(t, st)

	t.Run("Source", func(t *testing.T) {
		_, err := st.GetDirectorySource(ctx, seed.School.ID)
		wantErr(t, err, school.ErrNotFound)
		src := school.DirectorySource{
			SchoolID: seed.School.ID, URL: "ldap://dir.s1.example.dk:389", StartTLS: true, BindDN: "cn=elevid,dc=s1",
			BindPassword: []byte{1, 2, 3}, PupilBase: "ou=pupils,dc=s1", PupilFilter: "(objectClass=elevidPupil)",
			StaffBase: "ou=staff,dc=s1", ClassBase: "ou=classes,dc=s1", GuardianBase: "ou=guardians,dc=s1",
			Preset: school.PresetOpenLDAP, Attributes: map[string]string{"birthDate": "schacDateOfBirth"},
			Interval: time.Hour, FullInterval: 24 * time.Hour, SchoolAttr: "departmentNumber",
		}.WithDefaults()
		put := must(st.PutDirectorySource(ctx, src))
		got := must(st.GetDirectorySource(ctx, seed.School.ID))
		if !reflect.DeepEqual(got, put) || got.Grace != school.DefaultQuarantineGrace || got.PageSize != school.DefaultSyncPageSize {
			t.Fatalf("GetDirectorySource = %+v, want %+v", got, put)
		}
		src.URL = "ldaps://dir2.s1.example.dk"
		src.StartTLS = false
		must(st.PutDirectorySource(ctx, src))
		if got := must(st.GetDirectorySource(ctx, seed.School.ID)); got.URL != src.URL || got.StartTLS {
			t.Fatalf("replaced source = %+v", got)
		}
		for _, bad := range []func(*school.DirectorySource){
			func(s *school.DirectorySource) { s.URL = "http://x" },
			func(s *school.DirectorySource) { s.Preset = "novell" },
			func(s *school.DirectorySource) { s.PageSize = 0 },
			func(s *school.DirectorySource) { s.Attributes = map[string]string{"uid": "a)(b"} },
			func(s *school.DirectorySource) { s.PupilBase = "" },
		} {
			b := src
			bad(&b)
			_, err := st.PutDirectorySource(ctx, b)
			wantErr(t, err, school.ErrInvalid)
		}
		at := h.Clock.Now().Add(-time.Minute)
		if err := st.MarkDirectoryRun(ctx, seed.School.ID, school.SyncIncremental, at); err != nil {
			t.Fatal(err)
		}
		if got := must(st.GetDirectorySource(ctx, seed.School.ID)); !got.LastIncrementalRun.Equal(at) || !got.LastFullRun.IsZero() {
			t.Fatalf("after mark: %+v", got)
		}
		wantErr(t, st.MarkDirectoryRun(ctx, seed.OtherSchl.ID, school.SyncFull, at), school.ErrNotFound)
		if all := must(st.ListDirectorySources(ctx)); len(all) != 1 {
			t.Fatalf("ListDirectorySources = %d sources", len(all))
		}
	})

	t.Run("Runs", func(t *testing.T) {
		r := must(st.CreateSyncRun(ctx, school.SyncRun{SchoolID: seed.School.ID, Mode: school.SyncFull, DryRun: true}))
		if r.ID == "" || r.Status != school.SyncRunning || !r.StartedAt.Equal(h.Clock.Now()) {
			t.Fatalf("created run = %+v", r)
		}
		h.Clock.Advance(time.Minute)
		r.Status = school.SyncSucceeded
		r.Counts = map[string]int{"pupil.create": 3}
		r.Entries, r.Pages = 10, 2
		r.AddWarning(school.WarnNoBirthDate, "uid=x,ou=pupils,dc=s1", "missing date of birth")
		r.AddWarning(school.WarnNoClass, "uid=y,ou=pupils,dc=s1", "in no class")
		r = must(st.FinishSyncRun(ctx, r))
		got := must(st.GetSyncRun(ctx, r.ID))
		if !reflect.DeepEqual(got, r) || !got.EndedAt.Equal(h.Clock.Now()) {
			t.Fatalf("GetSyncRun = %+v, want %+v", got, r)
		}
		_, err := st.FinishSyncRun(ctx, school.SyncRun{ID: "nope", SchoolID: seed.School.ID, Mode: school.SyncFull, Status: school.SyncFailed})
		wantErr(t, err, school.ErrNotFound)
		_, err = st.CreateSyncRun(ctx, school.SyncRun{SchoolID: seed.School.ID, Mode: "partial"})
		wantErr(t, err, school.ErrInvalid)
		h.Clock.Advance(time.Minute)
		r2 := must(st.CreateSyncRun(ctx, school.SyncRun{SchoolID: seed.School.ID, Mode: school.SyncIncremental}))
		must(st.CreateSyncRun(ctx, school.SyncRun{SchoolID: seed.OtherSchl.ID, Mode: school.SyncFull}))
		list := must(st.ListSyncRuns(ctx, seed.School.ID, 0))
		if len(list) != 2 || list[0].ID != r2.ID || list[1].ID != r.ID {
			t.Fatalf("ListSyncRuns = %+v", list)
		}
		if list := must(st.ListSyncRuns(ctx, seed.School.ID, 1)); len(list) != 1 {
			t.Fatalf("limit 1 gave %d", len(list))
		}
		_, err = st.GetSyncRun(ctx, "nope")
		wantErr(t, err, school.ErrNotFound)
		if got.WarningCounts[school.WarnNoClass] != 1 || got.Warnings[1].Kind != school.WarnNoClass {
			t.Fatalf("warning kinds not kept: %+v %+v", got.WarningCounts, got.Warnings)
		}

		// A run left "running" by a dead process is marked interrupted,
		// in its school only; finished runs stay as they are.
		h.Clock.Advance(time.Minute)
		at := h.Clock.Now()
		n := must(st.InterruptSyncRuns(ctx, seed.School.ID, at))
		if n != 1 {
			t.Fatalf("InterruptSyncRuns marked %d runs, want 1 (r2)", n)
		}
		g2 := must(st.GetSyncRun(ctx, r2.ID))
		if g2.Status != school.SyncInterrupted || !g2.EndedAt.Equal(at) || g2.Error == "" {
			t.Fatalf("interrupted run = %+v", g2)
		}
		if g := must(st.GetSyncRun(ctx, r.ID)); g.Status != school.SyncSucceeded {
			t.Fatalf("finished run became %s", g.Status)
		}
		other := must(st.ListSyncRuns(ctx, seed.OtherSchl.ID, 1))
		if other[0].Status != school.SyncRunning {
			t.Fatalf("other school's run became %s", other[0].Status)
		}
		if n := must(st.InterruptSyncRuns(ctx, seed.School.ID, at)); n != 0 {
			t.Fatalf("second InterruptSyncRuns marked %d", n)
		}
	})

	t.Run("Bulk", func(t *testing.T) {
		var gs []school.Guardian
		for i := range 900 { // more than one INSERT batch
			gs = append(gs, school.Guardian{SchoolID: seed.School.ID, ExternalID: fmt.Sprintf("bg-%d", i), Name: "G", Email: fmt.Sprintf("g%d@example.dk", i)})
		}
		var created []school.Guardian
		var pupils []school.Pupil
		err := st.InTx(ctx, func(q school.Queries) error {
			var err error
			if created, err = q.CreateGuardians(ctx, gs); err != nil {
				return err
			}
			var ps []school.Pupil
			for i, g := range created {
				ps = append(ps, school.Pupil{SchoolID: seed.School.ID, ExternalID: fmt.Sprintf("bp-%d", i), GivenName: "P",
					BirthDate: time.Date(2012, 1, 2, 0, 0, 0, 0, time.UTC), ClassIDs: []string{seed.Class.ID}, GuardianIDs: []string{g.ID}})
			}
			pupils, err = q.CreatePupils(ctx, ps)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		p := must(st.PupilByExternalID(ctx, seed.School.ID, "bp-899"))
		if p.ID != pupils[899].ID || p.Status != school.PupilActive || !reflect.DeepEqual(p.GuardianIDs, []string{created[899].ID}) ||
			!reflect.DeepEqual(p.ClassIDs, []string{seed.Class.ID}) {
			t.Fatalf("bulk pupil = %+v", p)
		}
		// A duplicate external id rolls the whole batch back.
		err = st.InTx(ctx, func(q school.Queries) error {
			_, err := q.CreatePupils(ctx, []school.Pupil{
				{SchoolID: seed.School.ID, ExternalID: "fresh", GivenName: "A"},
				{SchoolID: seed.School.ID, ExternalID: "bp-1", GivenName: "B"},
			})
			return err
		})
		wantErr(t, err, school.ErrConflict)
		_, err = st.PupilByExternalID(ctx, seed.School.ID, "fresh")
		wantErr(t, err, school.ErrNotFound)
		// Links across schools are refused.
		other := must(st.CreateClass(ctx, school.Class{SchoolID: seed.OtherSchl.ID, Name: "X"}))
		_, err = st.CreatePupils(ctx, []school.Pupil{{SchoolID: seed.School.ID, ExternalID: "x", GivenName: "X", ClassIDs: []string{other.ID}}})
		wantErr(t, err, school.ErrInvalid)
		_, err = st.CreateGuardians(ctx, []school.Guardian{{SchoolID: seed.School.ID, Email: "not mail"}})
		wantErr(t, err, school.ErrInvalid)
	})

	t.Run("BulkClassesAndStaff", func(t *testing.T) {
		var cs []school.Class
		for i := range 300 { // more than one INSERT batch
			cs = append(cs, school.Class{SchoolID: seed.School.ID, ExternalID: fmt.Sprintf("bc-%d", i), Name: fmt.Sprintf("Klasse %d", i)})
		}
		classes := must(st.CreateClasses(ctx, cs))
		if len(classes) != 300 || classes[299].ID == "" || classes[299].ExternalID != "bc-299" {
			t.Fatalf("CreateClasses returned %d classes, last %+v", len(classes), classes[len(classes)-1])
		}
		if got := must(st.GetClass(ctx, seed.School.ID, classes[7].ID)); got.Name != "Klasse 7" || got.ExternalID != "bc-7" {
			t.Fatalf("bulk class = %+v", got)
		}
		_, err := st.CreateClasses(ctx, []school.Class{{SchoolID: seed.School.ID, ExternalID: "bc-1", Name: "Again"}})
		wantErr(t, err, school.ErrConflict)
		_, err = st.CreateClasses(ctx, []school.Class{{SchoolID: seed.School.ID, Name: " "}})
		wantErr(t, err, school.ErrInvalid)

		var sts []school.Staff
		for i := range 100 { // more than one INSERT batch (12 columns a row)
			sts = append(sts, school.Staff{SchoolID: seed.School.ID, ExternalID: fmt.Sprintf("bs-%d", i), Username: fmt.Sprintf("bs%d@s1.example.dk", i),
				Name: "T", Role: school.RoleTeacher, ClassIDs: []string{classes[i%2].ID}})
		}
		staff := must(st.CreateStaffMembers(ctx, sts))
		got := must(st.StaffByUsername(ctx, "bs99@s1.example.dk"))
		if got.ID != staff[99].ID || got.ExternalID != "bs-99" || !reflect.DeepEqual(got.ClassIDs, []string{classes[1].ID}) {
			t.Fatalf("bulk staff = %+v", got)
		}
		ids := must(st.StaffIDsByUsername(ctx, []string{"bs3@s1.example.dk", "nobody@s1.example.dk", "bs98@s1.example.dk"}))
		if !reflect.DeepEqual(ids, map[string]string{"bs3@s1.example.dk": staff[3].ID, "bs98@s1.example.dk": staff[98].ID}) {
			t.Fatalf("StaffIDsByUsername = %v", ids)
		}
		// A taken username rolls the whole batch back.
		_, err = st.CreateStaffMembers(ctx, []school.Staff{
			{SchoolID: seed.School.ID, Username: "fresh@s1.example.dk", Role: school.RoleTeacher},
			{SchoolID: seed.School.ID, Username: "bs1@s1.example.dk", Role: school.RoleTeacher},
		})
		wantErr(t, err, school.ErrConflict)
		_, err = st.StaffByUsername(ctx, "fresh@s1.example.dk")
		wantErr(t, err, school.ErrNotFound)
		// Links across schools are refused.
		other := must(st.CreateClass(ctx, school.Class{SchoolID: seed.OtherSchl.ID, Name: "X"}))
		_, err = st.CreateStaffMembers(ctx, []school.Staff{{SchoolID: seed.School.ID, Username: "x@s1.example.dk", Role: school.RoleTeacher, ClassIDs: []string{other.ID}}})
		wantErr(t, err, school.ErrInvalid)
		_, err = st.StaffByUsername(ctx, "x@s1.example.dk")
		wantErr(t, err, school.ErrNotFound)
		_, err = st.CreateStaffMembers(ctx, []school.Staff{{SchoolID: seed.School.ID, Username: " ", Role: school.RoleTeacher}})
		wantErr(t, err, school.ErrInvalid)
	})

	t.Run("AuditBatch", func(t *testing.T) {
		must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: seed.School.ID, ActorID: "sync", Action: "sync.start"}))
		var es []school.AuditEntry
		for range 850 {
			es = append(es, school.AuditEntry{SchoolID: seed.School.ID, ActorID: "sync", Action: "pupil.create", SubjectID: "p"})
		}
		if err := st.AppendAudits(ctx, es); err != nil {
			t.Fatal(err)
		}
		must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: seed.School.ID, ActorID: "sync", Action: "sync.end"}))
		if err := st.VerifyAudit(ctx, seed.School.ID); err != nil {
			t.Fatal(err)
		}
		last := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: seed.School.ID, Limit: 1}))
		if len(last) != 1 || last[0].Seq != 852 || last[0].Action != "sync.end" {
			t.Fatalf("last audit = %+v", last)
		}
		wantErr(t, st.AppendAudits(ctx, []school.AuditEntry{{SchoolID: seed.School.ID, ActorID: "sync", Action: "a"}, {SchoolID: seed.OtherSchl.ID, ActorID: "sync", Action: "a"}}), school.ErrInvalid)
	})
}
