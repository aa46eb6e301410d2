package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/elevid/elevid/school"
)

func testAudit(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	_, err := st.AppendAudit(ctx, school.AuditEntry{SchoolID: s.School.ID})
	wantErr(t, err, school.ErrInvalid)
	if err := st.VerifyAudit(ctx, s.School.ID); err != nil {
		t.Fatalf("empty chain: %v", err)
	}
	var entries []school.AuditEntry
	for i := range 5 {
		e := must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: s.School.ID, ActorID: "staff-1", ActorRole: "teacher",
			Action: "pupil.view", SubjectID: s.Pupil.ID, Detail: fmt.Sprintf("n=%d", i), Remote: "127.0.0.1"}))
		entries = append(entries, e)
	}
	must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: s.OtherSchl.ID, ActorID: "sync", Action: "sync.apply"}))
	must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: school.InstanceChain, ActorID: "op", Action: "school.create", SubjectID: s.School.ID}))
	if entries[0].Seq != 1 || entries[4].Seq != 5 || entries[0].PrevHash != nil || !slices.Equal(entries[1].PrevHash, entries[0].Hash) {
		t.Fatalf("chain links wrong: %+v", entries[:2])
	}
	for _, id := range []string{s.School.ID, s.OtherSchl.ID, school.InstanceChain} {
		if err := st.VerifyAudit(ctx, id); err != nil {
			t.Fatalf("VerifyAudit(%q) = %v", id, err)
		}
	}
	list := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: s.School.ID, Limit: 2}))
	if len(list) != 2 || list[0].Seq != 5 || list[0].Detail != "n=4" || !slices.Equal(list[0].Hash, entries[4].Hash) {
		t.Fatalf("ListAudit = %+v", list)
	}
	if list := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: s.School.ID, AfterSeq: 3})); len(list) != 2 {
		t.Fatalf("ListAudit(after 3) = %d entries", len(list))
	}
	if list := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: s.School.ID, SubjectID: "other"})); len(list) != 0 {
		t.Fatalf("ListAudit(subject) = %+v", list)
	}

	// Concurrent appends to one chain keep it intact.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := st.AppendAudit(ctx, school.AuditEntry{SchoolID: s.School.ID, ActorID: "sync", Action: "pupil.update"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.VerifyAudit(ctx, s.School.ID); err != nil {
		t.Fatalf("after concurrent appends: %v", err)
	}

	tamper := []struct {
		name string
		sql  string
	}{
		{"changed detail", `UPDATE audit_log SET detail = 'n=99' WHERE school_id = $1 AND seq = 3`},
		{"changed actor", `UPDATE audit_log SET actor_id = 'someone' WHERE school_id = $1 AND seq = 1`},
		{"deleted middle", `DELETE FROM audit_log WHERE school_id = $1 AND seq = 2`},
		{"deleted newest", `DELETE FROM audit_log WHERE school_id = $1 AND seq = 25`},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			h2 := h
			_ = h2
			if err := h.Exec(ctx, `CREATE TABLE IF NOT EXISTS audit_backup AS SELECT * FROM audit_log WHERE 1 = 0`); err != nil {
				t.Fatal(err)
			}
			mustExec(t, h, `DELETE FROM audit_backup`)
			mustExec(t, h, `INSERT INTO audit_backup SELECT * FROM audit_log`)
			mustExec(t, h, tc.sql, s.School.ID)
			if err := st.VerifyAudit(ctx, s.School.ID); !errors.Is(err, school.ErrChainBroken) {
				t.Fatalf("VerifyAudit after %s = %v, want ErrChainBroken", tc.name, err)
			}
			if err := st.VerifyAudit(ctx, s.OtherSchl.ID); err != nil {
				t.Fatalf("other chain affected: %v", err)
			}
			mustExec(t, h, `DELETE FROM audit_log`)
			mustExec(t, h, `INSERT INTO audit_log SELECT * FROM audit_backup`)
			if err := st.VerifyAudit(ctx, s.School.ID); err != nil {
				t.Fatalf("restored chain: %v", err)
			}
		})
	}
}

func mustExec(t *testing.T, h Harness, q string, args ...any) {
	t.Helper()
	if err := h.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
