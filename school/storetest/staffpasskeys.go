package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// staffSeed is authnSeed with a teacher of the school, and the fresh tag
// that names them.
func staffSeed(t *testing.T, st school.Store) (Seed, school.Staff, string) {
	t.Helper()
	s := authnSeed(t, st)
	tag := school.NewID()[:8]
	staff := must(st.CreateStaff(context.Background(), school.Staff{SchoolID: s.School.ID, Username: "t-" + tag, Name: "Tove", Role: school.RoleTeacher}))
	return s, staff, tag
}

func testStaffPasskeys(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s, staff, tag := staffSeed(t, st)
	op := must(st.CreateStaff(ctx, school.Staff{Username: "op-" + tag, Name: "Otto", Role: school.RoleOperator}))

	// Handles: random, 64 bytes, stable, and separate from the pupils'.
	hd := must(st.UserHandle(ctx, school.StaffOwner(staff.ID)))
	if len(hd) != 64 || !bytes.Equal(hd, must(st.UserHandle(ctx, school.StaffOwner(staff.ID)))) {
		t.Fatalf("UserHandle = %x (len %d), not stable", hd, len(hd))
	}
	if got := must(st.OwnerByHandle(ctx, school.OwnerStaff, hd)); got != staff.ID {
		t.Fatalf("OwnerByHandle = %q", got)
	}
	opHandle := must(st.UserHandle(ctx, school.StaffOwner(op.ID)))
	if bytes.Equal(opHandle, hd) {
		t.Fatal("two staff members share a user handle")
	}
	pupilHandle := must(st.UserHandle(ctx, school.PupilOwner(s.Pupil.ID)))
	_, err := st.OwnerByHandle(ctx, school.OwnerStaff, pupilHandle)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.OwnerByHandle(ctx, school.OwnerPupil, hd)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.UserHandle(ctx, school.StaffOwner("nope"))
	wantErr(t, err, school.ErrNotFound)

	// Credentials.
	c := school.Credential{ID: []byte("staff-cred-" + tag), Owner: school.StaffOwner(staff.ID), PublicKey: []byte{1, 2, 3}, AttestationFormat: "none",
		SignCount: 3, BackupEligible: true, Transports: []string{"internal", "hybrid"}, Label: "Laptop"}
	added := must(st.AddCredential(ctx, c))
	if !added.CreatedAt.Equal(h.Clock.Now()) {
		t.Fatalf("CreatedAt = %v", added.CreatedAt)
	}
	got := must(st.GetCredential(ctx, school.OwnerStaff, c.ID))
	if got.Owner != school.StaffOwner(staff.ID) || got.SchoolID != "" || got.SignCount != 3 || !got.BackupEligible || got.BackupState || got.Label != "Laptop" ||
		len(got.Transports) != 2 || !bytes.Equal(got.PublicKey, []byte{1, 2, 3}) {
		t.Fatalf("GetCredential = %+v", got)
	}
	_, err = st.AddCredential(ctx, c)
	wantErr(t, err, school.ErrConflict)
	bad := c
	bad.ID, bad.Owner = []byte("x-"+tag), school.StaffOwner("nope")
	_, err = st.AddCredential(ctx, bad)
	wantErr(t, err, school.ErrInvalid)
	bad.Owner, bad.PublicKey = school.StaffOwner(staff.ID), nil
	_, err = st.AddCredential(ctx, bad)
	wantErr(t, err, school.ErrInvalid)
	// A staff credential is not a pupil's, and the reverse.
	_, err = st.GetCredential(ctx, school.OwnerPupil, c.ID)
	wantErr(t, err, school.ErrNotFound)

	h.Clock.Advance(time.Second)
	c2 := c
	c2.ID, c2.Label = []byte("staff-cred2-"+tag), "Key"
	must(st.AddCredential(ctx, c2))
	must(st.AddCredential(ctx, school.Credential{ID: []byte("op-cred-" + tag), Owner: school.StaffOwner(op.ID), PublicKey: []byte{9}}))
	list := must(st.ListCredentials(ctx, school.StaffOwner(staff.ID), false))
	if len(list) != 2 || !bytes.Equal(list[0].ID, c.ID) || !bytes.Equal(list[1].ID, c2.ID) {
		t.Fatalf("ListCredentials = %+v", list)
	}
	up := must(st.UpdateCredential(ctx, school.OwnerStaff, c.ID, func(c school.Credential) (school.Credential, error) {
		c.SignCount, c.CloneWarning, c.LastUsedAt, c.Owner = 9, true, h.Clock.Now(), school.StaffOwner(op.ID)
		return c, nil
	}))
	got = must(st.GetCredential(ctx, school.OwnerStaff, c.ID))
	if got.SignCount != 9 || !got.CloneWarning || !got.LastUsedAt.Equal(h.Clock.Now()) || got.Owner != school.StaffOwner(staff.ID) || up.Owner != school.StaffOwner(staff.ID) {
		t.Fatalf("after UpdateCredential = %+v", got)
	}
	_, err = st.UpdateCredential(ctx, school.OwnerStaff, []byte("nope"), func(c school.Credential) (school.Credential, error) { return c, nil })
	wantErr(t, err, school.ErrNotFound)

	// Deleting: only one's own.
	wantErr(t, st.DeleteCredential(ctx, school.StaffOwner(op.ID), c2.ID), school.ErrNotFound)
	if err := st.DeleteCredential(ctx, school.StaffOwner(staff.ID), c2.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.DeleteCredential(ctx, school.StaffOwner(staff.ID), c2.ID), school.ErrNotFound)
	if n := len(must(st.ListCredentials(ctx, school.StaffOwner(staff.ID), false))); n != 1 {
		t.Fatalf("%d credentials after deleting one", n)
	}
}

// A staff credential is never returned for a pupil and vice versa, by any
// method that names the owner kind, even when asked with the right id or
// handle; a credential cannot be added to an owner of the wrong kind.
func testPasskeyKindsApart(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s, staff, tag := staffSeed(t, st)
	pupil, member := school.PupilOwner(s.Pupil.ID), school.StaffOwner(staff.ID)
	pupilHandle, staffHandle := must(st.UserHandle(ctx, pupil)), must(st.UserHandle(ctx, member))
	pc := must(st.AddCredential(ctx, school.Credential{ID: []byte("pupil-key-" + tag), Owner: pupil, SchoolID: s.School.ID, PublicKey: []byte{1}}))
	sc := must(st.AddCredential(ctx, school.Credential{ID: []byte("staff-key-" + tag), Owner: member, PublicKey: []byte{2}}))

	for _, tc := range []struct {
		name string
		kind school.OwnerKind
		id   []byte
	}{
		{"staff credential as a pupil's", school.OwnerPupil, sc.ID},
		{"pupil credential as a staff member's", school.OwnerStaff, pc.ID},
	} {
		_, err := st.GetCredential(ctx, tc.kind, tc.id)
		if !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("GetCredential of a %s: %v, want ErrNotFound", tc.name, err)
		}
		_, err = st.UpdateCredential(ctx, tc.kind, tc.id, func(c school.Credential) (school.Credential, error) {
			c.Label = "taken over"
			return c, nil
		})
		if !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("UpdateCredential of a %s: %v, want ErrNotFound", tc.name, err)
		}
	}
	// Each kind's credential is still there, unchanged, for its own kind.
	if got := must(st.GetCredential(ctx, school.OwnerPupil, pc.ID)); got.Owner != pupil || got.Label != "" {
		t.Fatalf("pupil credential = %+v", got)
	}
	if got := must(st.GetCredential(ctx, school.OwnerStaff, sc.ID)); got.Owner != member || got.Label != "" {
		t.Fatalf("staff credential = %+v", got)
	}

	// Lists: an owner id asked for as the other kind has nothing.
	if l := must(st.ListCredentials(ctx, school.PupilOwner(staff.ID), true)); len(l) != 0 {
		t.Fatalf("staff member's credentials listed as a pupil's: %+v", l)
	}
	if l := must(st.ListCredentials(ctx, school.StaffOwner(s.Pupil.ID), true)); len(l) != 0 {
		t.Fatalf("pupil's credentials listed as a staff member's: %+v", l)
	}
	if l := must(st.ListCredentials(ctx, pupil, true)); len(l) != 1 || !bytes.Equal(l[0].ID, pc.ID) {
		t.Fatalf("pupil's credentials = %+v", l)
	}
	if l := must(st.ListCredentials(ctx, member, true)); len(l) != 1 || !bytes.Equal(l[0].ID, sc.ID) {
		t.Fatalf("staff member's credentials = %+v", l)
	}

	// Handles: neither kind's handle finds the other kind.
	_, err := st.OwnerByHandle(ctx, school.OwnerPupil, staffHandle)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.OwnerByHandle(ctx, school.OwnerStaff, pupilHandle)
	wantErr(t, err, school.ErrNotFound)

	// A pupil login never yields a staff credential, with either handle.
	for _, hd := range [][]byte{staffHandle, pupilHandle} {
		_, _, err := st.PasskeyLogin(ctx, hd, sc.ID)
		wantErr(t, err, school.ErrNotFound)
	}

	// Deleting names the owner: the other kind's credential stays.
	wantErr(t, st.DeleteCredential(ctx, school.PupilOwner(staff.ID), sc.ID), school.ErrNotFound)
	wantErr(t, st.DeleteCredential(ctx, school.StaffOwner(s.Pupil.ID), pc.ID), school.ErrNotFound)
	must(st.GetCredential(ctx, school.OwnerStaff, sc.ID))
	must(st.GetCredential(ctx, school.OwnerPupil, pc.ID))

	// No credential for an owner of the wrong kind, nor a school on a
	// staff member's passkey, nor an unknown kind.
	for _, c := range []school.Credential{
		{ID: []byte("x1-" + tag), Owner: school.StaffOwner(s.Pupil.ID), PublicKey: []byte{3}},
		{ID: []byte("x2-" + tag), Owner: school.PupilOwner(staff.ID), SchoolID: s.School.ID, PublicKey: []byte{3}},
		{ID: []byte("x3-" + tag), Owner: member, SchoolID: s.School.ID, PublicKey: []byte{3}},
		{ID: []byte("x4-" + tag), Owner: school.Owner{Kind: "guardian", ID: s.Guardian.ID}, PublicKey: []byte{3}},
	} {
		_, err := st.AddCredential(ctx, c)
		wantErr(t, err, school.ErrInvalid)
	}
}
