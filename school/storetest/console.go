package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testConsole(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	seed := NewSeed(t, st)
	staff := must(st.CreateStaff(ctx, school.Staff{SchoolID: seed.School.ID, Username: "t1", Role: school.RoleTeacher}))

	t.Run("StaffAuthDefaults", func(t *testing.T) {
		a := must(st.GetStaffAuth(ctx, staff.ID))
		if a.StaffID != staff.ID || a.TOTPLastStep != 0 || a.Failures != 0 || len(a.RecoveryHashes) != 0 {
			t.Fatalf("zero state = %+v", a)
		}
		_, err := st.GetStaffAuth(ctx, "nobody")
		wantErr(t, err, school.ErrNotFound)
		_, err = st.UpdateStaffAuth(ctx, "nobody", func(a school.StaffAuth) (school.StaffAuth, error) { return a, nil })
		wantErr(t, err, school.ErrNotFound)
	})

	t.Run("StaffAuthRoundTrip", func(t *testing.T) {
		h1, h2 := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
		now := h.Clock.Now()
		must(st.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
			a.TOTPLastStep = 42
			a.PendingTOTP = []byte("sealed")
			a.RecoveryHashes = [][]byte{h1[:], h2[:]}
			a.Failures = 3
			a.LockedUntil = now.Add(time.Minute)
			a.ReauthSession, a.ReauthAt = "ref", now
			return a, nil
		}))
		a := must(st.GetStaffAuth(ctx, staff.ID))
		if a.TOTPLastStep != 42 || string(a.PendingTOTP) != "sealed" || len(a.RecoveryHashes) != 2 || !bytes.Equal(a.RecoveryHashes[1], h2[:]) ||
			a.Failures != 3 || !a.LockedUntil.Equal(now.Add(time.Minute)) || a.ReauthSession != "ref" || !a.ReauthAt.Equal(now) {
			t.Fatalf("stored state = %+v", a)
		}
		boom := errors.New("boom")
		_, err := st.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) { a.Failures = 99; return a, boom })
		wantErr(t, err, boom)
		if a := must(st.GetStaffAuth(ctx, staff.ID)); a.Failures != 3 {
			t.Fatalf("aborted update stored: %+v", a)
		}
		_, err = st.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
			a.RecoveryHashes = [][]byte{[]byte("short")}
			return a, nil
		})
		wantErr(t, err, school.ErrInvalid)
	})

	t.Run("TOTPStepSingleUseConcurrently", func(t *testing.T) {
		errUsed := school.ErrUsed
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
					if a.TOTPLastStep >= 1000 {
						return a, errUsed
					}
					a.TOTPLastStep = 1000
					return a, nil
				})
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if !errors.Is(err, errUsed) {
					t.Errorf("concurrent update: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("%d concurrent uses of one step succeeded, want 1", ok)
		}
	})

	t.Run("Sheets", func(t *testing.T) {
		exp := h.Clock.Now().Add(time.Hour)
		sh := must(st.SaveSheet(ctx, school.EnrolmentSheet{ID: "sh1", SchoolID: seed.School.ID, ClassID: seed.Class.ID, CreatedBy: staff.ID, Data: []byte("x"), ExpiresAt: exp}))
		if !sh.CreatedAt.Equal(h.Clock.Now()) {
			t.Fatalf("created = %v", sh.CreatedAt)
		}
		got := must(st.GetSheet(ctx, seed.School.ID, "sh1"))
		if got.ClassID != seed.Class.ID || string(got.Data) != "x" || got.CreatedBy != staff.ID || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("sheet = %+v", got)
		}
		_, err := st.GetSheet(ctx, seed.OtherSchl.ID, "sh1")
		wantErr(t, err, school.ErrNotFound)
		_, err = st.SaveSheet(ctx, school.EnrolmentSheet{ID: "sh1", SchoolID: seed.School.ID, CreatedBy: staff.ID, Data: []byte("y"), ExpiresAt: exp})
		wantErr(t, err, school.ErrConflict)
		_, err = st.SaveSheet(ctx, school.EnrolmentSheet{ID: "sh2", SchoolID: seed.School.ID})
		wantErr(t, err, school.ErrInvalid)
		h.Clock.Advance(time.Hour)
		_, err = st.GetSheet(ctx, seed.School.ID, "sh1")
		wantErr(t, err, school.ErrExpired)
		if n := must(st.PurgeSheets(ctx, h.Clock.Now().Add(time.Second))); n != 1 {
			t.Fatalf("purged %d", n)
		}
		_, err = st.GetSheet(ctx, seed.School.ID, "sh1")
		wantErr(t, err, school.ErrNotFound)
	})
}
