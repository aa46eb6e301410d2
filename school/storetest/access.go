package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testAccess(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	other := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, GivenName: "Bo"}))
	for _, bad := range []school.AccessEntry{
		{SchoolID: s.School.ID, StaffID: "t1", PupilID: s.Pupil.ID},
		{SchoolID: s.School.ID, Action: "pupil.view", PupilID: s.Pupil.ID},
		{SchoolID: s.School.ID, StaffID: "t1", Action: "pupil.view"},
	} {
		wantErr(t, st.RecordAccess(ctx, bad), school.ErrInvalid)
	}
	rec := func(e school.AccessEntry) {
		t.Helper()
		e.SchoolID, e.StaffID, e.StaffName, e.Role = s.School.ID, "t1", "Anna Jensen", school.RoleTeacher
		if err := st.RecordAccess(ctx, e); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(time.Minute)
	}
	rec(school.AccessEntry{PupilID: s.Pupil.ID, Action: "pupil.view"})
	rec(school.AccessEntry{ClassID: s.Class.ID, Action: "class.view"})
	rec(school.AccessEntry{PupilID: other.ID, Action: "pupil.view"})
	rec(school.AccessEntry{PupilID: s.Pupil.ID, ClassID: s.Class.ID, Action: "passkey.reset", Purpose: "checked in person"})

	got := must(st.AccessForPupil(ctx, s.Pupil.ID))
	if len(got) != 3 || got[0].Action != "passkey.reset" || got[0].Purpose != "checked in person" || got[1].Action != "class.view" ||
		got[2].Action != "pupil.view" || got[0].StaffName != "Anna Jensen" || got[0].Role != school.RoleTeacher || got[0].Time.IsZero() {
		t.Fatalf("AccessForPupil = %+v", got)
	}
	// Bo is in no class: he sees only the entry about him.
	if got := must(st.AccessForPupil(ctx, other.ID)); len(got) != 1 || got[0].PupilID != other.ID {
		t.Fatalf("AccessForPupil(other) = %+v", got)
	}
	if got := must(st.AccessForSchool(ctx, s.School.ID, 2)); len(got) != 2 || got[0].Action != "passkey.reset" {
		t.Fatalf("AccessForSchool = %+v", got)
	}
	if got := must(st.AccessForSchool(ctx, s.OtherSchl.ID, 0)); len(got) != 0 {
		t.Fatalf("other school sees %+v", got)
	}
	// Erasing the pupil erases the entries about it.
	if err := st.DeletePupil(ctx, s.Pupil.ID); err != nil {
		t.Fatal(err)
	}
	if got := must(st.AccessForPupil(ctx, s.Pupil.ID)); len(got) != 0 {
		t.Fatalf("erased pupil's access entries remain: %+v", got)
	}
}
