package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testStaffPasskeys(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := authnSeed(t, st)
	tag := school.NewID()[:8]
	staff := must(st.CreateStaff(ctx, school.Staff{SchoolID: s.School.ID, Username: "t-" + tag, Name: "Tove", Role: school.RoleTeacher}))
	op := must(st.CreateStaff(ctx, school.Staff{Username: "op-" + tag, Name: "Otto", Role: school.RoleOperator}))

	// Handles: random, 64 bytes, stable, and separate from the pupils'.
	hd := must(st.StaffHandle(ctx, staff.ID))
	if len(hd) != 64 || !bytes.Equal(hd, must(st.StaffHandle(ctx, staff.ID))) {
		t.Fatalf("StaffHandle = %x (len %d), not stable", hd, len(hd))
	}
	if got := must(st.StaffByHandle(ctx, hd)); got != staff.ID {
		t.Fatalf("StaffByHandle = %q", got)
	}
	opHandle := must(st.StaffHandle(ctx, op.ID))
	if bytes.Equal(opHandle, hd) {
		t.Fatal("two staff members share a user handle")
	}
	pupilHandle := must(st.PupilHandle(ctx, s.Pupil.ID))
	_, err := st.StaffByHandle(ctx, pupilHandle)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.PupilByHandle(ctx, hd)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.StaffHandle(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)

	// Credentials.
	c := school.StaffCredential{ID: []byte("staff-cred-" + tag), StaffID: staff.ID, PublicKey: []byte{1, 2, 3}, AttestationFormat: "none",
		SignCount: 3, BackupEligible: true, Transports: []string{"internal", "hybrid"}, Label: "Laptop"}
	added := must(st.AddStaffCredential(ctx, c))
	if !added.CreatedAt.Equal(h.Clock.Now()) {
		t.Fatalf("CreatedAt = %v", added.CreatedAt)
	}
	got := must(st.GetStaffCredential(ctx, c.ID))
	if got.StaffID != staff.ID || got.SignCount != 3 || !got.BackupEligible || got.BackupState || got.Label != "Laptop" ||
		len(got.Transports) != 2 || !bytes.Equal(got.PublicKey, []byte{1, 2, 3}) {
		t.Fatalf("GetStaffCredential = %+v", got)
	}
	_, err = st.AddStaffCredential(ctx, c)
	wantErr(t, err, school.ErrConflict)
	bad := c
	bad.ID, bad.StaffID = []byte("x-"+tag), "nope"
	_, err = st.AddStaffCredential(ctx, bad)
	wantErr(t, err, school.ErrInvalid)
	bad.StaffID, bad.PublicKey = staff.ID, nil
	_, err = st.AddStaffCredential(ctx, bad)
	wantErr(t, err, school.ErrInvalid)
	// A staff credential is not a pupil's, and the reverse.
	_, err = st.GetCredential(ctx, c.ID)
	wantErr(t, err, school.ErrNotFound)

	h.Clock.Advance(time.Second)
	c2 := c
	c2.ID, c2.Label = []byte("staff-cred2-"+tag), "Key"
	must(st.AddStaffCredential(ctx, c2))
	must(st.AddStaffCredential(ctx, school.StaffCredential{ID: []byte("op-cred-" + tag), StaffID: op.ID, PublicKey: []byte{9}}))
	list := must(st.ListStaffCredentials(ctx, staff.ID))
	if len(list) != 2 || !bytes.Equal(list[0].ID, c.ID) || !bytes.Equal(list[1].ID, c2.ID) {
		t.Fatalf("ListStaffCredentials = %+v", list)
	}
	up := must(st.UpdateStaffCredential(ctx, c.ID, func(c school.StaffCredential) (school.StaffCredential, error) {
		c.SignCount, c.CloneWarning, c.LastUsedAt, c.StaffID = 9, true, h.Clock.Now(), op.ID
		return c, nil
	}))
	got = must(st.GetStaffCredential(ctx, c.ID))
	if got.SignCount != 9 || !got.CloneWarning || !got.LastUsedAt.Equal(h.Clock.Now()) || got.StaffID != staff.ID || up.StaffID != staff.ID {
		t.Fatalf("after UpdateStaffCredential = %+v", got)
	}
	_, err = st.UpdateStaffCredential(ctx, []byte("nope"), func(c school.StaffCredential) (school.StaffCredential, error) { return c, nil })
	wantErr(t, err, school.ErrNotFound)

	// Deleting: only one's own.
	wantErr(t, st.DeleteStaffCredential(ctx, op.ID, c2.ID), school.ErrNotFound)
	if err := st.DeleteStaffCredential(ctx, staff.ID, c2.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.DeleteStaffCredential(ctx, staff.ID, c2.ID), school.ErrNotFound)
	if n := len(must(st.ListStaffCredentials(ctx, staff.ID))); n != 1 {
		t.Fatalf("%d credentials after deleting one", n)
	}
}
