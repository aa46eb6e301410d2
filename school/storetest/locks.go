package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testSettings(t *testing.T, h Harness) {
	ctx := context.Background()
	_, err := h.Store.GetSetting(ctx, "k")
	wantErr(t, err, school.ErrNotFound)
	// Concurrent first starts agree on one value.
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			v, err := h.Store.EnsureSetting(ctx, "k", []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for _, v := range got {
		if !slices.Equal(v, got[0]) {
			t.Fatalf("EnsureSetting disagrees: %v", got)
		}
	}
	if v := must(h.Store.GetSetting(ctx, "k")); !slices.Equal(v, got[0]) {
		t.Fatalf("GetSetting = %v", v)
	}
}

func testLocks(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	if err := st.TryLock(ctx, "sync:s1", "node-a", time.Minute); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.TryLock(ctx, "sync:s1", "node-b", time.Minute), school.ErrLocked)
	if err := st.TryLock(ctx, "sync:s1", "node-a", time.Minute); err != nil {
		t.Fatalf("owner renews: %v", err)
	}
	if err := st.TryLock(ctx, "sync:s2", "node-b", time.Minute); err != nil {
		t.Fatalf("other lock: %v", err)
	}
	if err := st.Unlock(ctx, "sync:s1", "node-b"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.TryLock(ctx, "sync:s1", "node-b", time.Minute), school.ErrLocked)
	h.Clock.Advance(2 * time.Minute)
	if err := st.TryLock(ctx, "sync:s1", "node-b", time.Minute); err != nil {
		t.Fatalf("expired lease not taken over: %v", err)
	}
	if err := st.Unlock(ctx, "sync:s1", "node-b"); err != nil {
		t.Fatal(err)
	}
	if err := st.TryLock(ctx, "sync:s1", "node-a", time.Minute); err != nil {
		t.Fatalf("released lease not free: %v", err)
	}
	// Many contenders: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 10 {
		wg.Go(func() {
			err := st.TryLock(ctx, "race", fmt.Sprintf("n%d", i), time.Minute)
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, school.ErrLocked) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d contenders won the lock", wins)
	}
}

func testTransactions(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)

	// A failing transaction leaves nothing behind.
	boom := errors.New("boom")
	err := st.InTx(ctx, func(q school.Queries) error {
		if _, err := q.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: "Ghost"}); err != nil {
			return err
		}
		if _, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: s.School.ID, ActorID: "t", Action: "class.create"}); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, err, boom)
	if n := len(must(st.ListClasses(ctx, s.School.ID))); n != 1 {
		t.Fatalf("rolled-back class visible: %d classes", n)
	}
	if n := len(must(st.ListAudit(ctx, school.AuditFilter{SchoolID: s.School.ID}))); n != 0 {
		t.Fatalf("rolled-back audit entry visible")
	}
	// Updaters inside InTx join it.
	err = st.InTx(ctx, func(q school.Queries) error {
		if _, err := q.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.GivenName = "Idaa"; return p, nil }); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, err, boom)
	if must(st.GetPupil(ctx, s.Pupil.ID)).GivenName != "Ida" {
		t.Fatal("updater inside a failed transaction was committed")
	}

	// AfterCommit hooks run once after a commit, never after a rollback,
	// and see the committed data.
	ran := 0
	err = st.InTx(ctx, func(q school.Queries) error {
		q.AfterCommit(func(context.Context) { ran++ })
		return boom
	})
	wantErr(t, err, boom)
	if ran != 0 {
		t.Fatal("AfterCommit hook ran after a rollback")
	}
	var seen string
	err = st.InTx(ctx, func(q school.Queries) error {
		if _, err := q.UpdateSchool(ctx, s.School.ID, func(x school.School) (school.School, error) { x.Name = "Efter"; return x, nil }); err != nil {
			return err
		}
		q.AfterCommit(func(ctx context.Context) {
			ran++
			seen = must(st.GetSchool(ctx, s.School.ID)).Name
		})
		return nil
	})
	if err != nil || ran != 1 || seen != "Efter" {
		t.Fatalf("AfterCommit: ran %d times, saw %q, err %v", ran, seen, err)
	}
	st.AfterCommit(func(context.Context) { ran++ })
	if ran != 2 {
		t.Fatal("AfterCommit outside a transaction did not run at once")
	}

	// Concurrent updaters never lose an update.
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
				p.FamilyName += "x"
				return p, nil
			})
			if err != nil {
				t.Errorf("updater %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := must(st.GetPupil(ctx, s.Pupil.ID)).FamilyName; len(got) != len("Hansen")+n {
		t.Fatalf("lost updates: family name %q has %d of %d marks", got, len(got)-len("Hansen"), n)
	}
	// Concurrent transactions mixing reads and writes all commit.
	for i := range n {
		wg.Go(func() {
			err := st.InTx(ctx, func(q school.Queries) error {
				if _, err := q.GetSchool(ctx, s.School.ID); err != nil {
					return err
				}
				_, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: s.School.ID, ActorID: "t", Action: fmt.Sprintf("x.%d", i)})
				return err
			})
			if err != nil {
				t.Errorf("tx %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if err := st.VerifyAudit(ctx, s.School.ID); err != nil {
		t.Fatal(err)
	}
}
