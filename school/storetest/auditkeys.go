package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// testAuditKeyed (issue 15, item 9): the chain is keyed (HMAC-SHA256)
// with a key id per entry; legacy entries are re-keyed once; rotation
// keeps old entries verifiable; someone with write access but no key can
// rewrite neither entries and head together nor downgrade them to legacy
// entries; anchors kept outside the database catch a truncation; client
// addresses expire and go with erasure while the chain still verifies.
func testAuditKeyed(t *testing.T, h Harness) {
	if h.AuditKeys == nil {
		t.Skip("the harness does not expose its audit keys")
	}
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	k1 := h.AuditKeys.Keys()
	all := func(chain string) []school.AuditEntry {
		t.Helper()
		l := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: chain, Limit: 1000}))
		slices.Reverse(l)
		return l
	}
	add := func(chain, detail, remote string) school.AuditEntry {
		t.Helper()
		return must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: chain, ActorID: "staff-1", ActorRole: "teacher",
			Action: "pupil.view", SubjectID: s.Pupil.ID, Detail: detail, Remote: remote}))
	}

	// Legacy entries (written without keys) are re-keyed once.
	h.AuditKeys.Set(nil)
	for i := range 3 {
		if e := add(s.School.ID, fmt.Sprint("legacy ", i), "192.0.2.7"); e.KeyID != "" {
			t.Fatalf("entry without keys has key id %q", e.KeyID)
		}
	}
	h.AuditKeys.Set(k1)
	wantErr(t, st.VerifyAudit(ctx, s.School.ID), school.ErrChainBroken) // unkeyed entries under keys
	if n := must(st.RekeyAudit(ctx)); n < 3 {
		t.Fatalf("RekeyAudit = %d, want ≥ 3", n)
	}
	if n := must(st.RekeyAudit(ctx)); n != 0 {
		t.Fatalf("second RekeyAudit = %d", n)
	}
	if err := st.VerifyAudit(ctx, s.School.ID); err != nil {
		t.Fatalf("after re-keying: %v", err)
	}
	for _, e := range all(s.School.ID) {
		if e.KeyID != k1[0].ID {
			t.Fatalf("entry %d key id %q after re-keying", e.Seq, e.KeyID)
		}
	}

	// Rotation: new entries under the new key; old ones verify while the
	// old key is listed.
	add(s.School.ID, "under k1", "192.0.2.8")
	k2 := school.AuditKeys{{ID: "test2", Key: []byte("storetest audit key 2 0123456789")}, k1[0]}
	h.AuditKeys.Set(k2)
	if e := add(s.School.ID, "under k2", "192.0.2.9"); e.KeyID != "test2" {
		t.Fatalf("after rotation the key id is %q", e.KeyID)
	}
	if err := st.VerifyAudit(ctx, s.School.ID); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	h.AuditKeys.Set(k2[:1])
	wantErr(t, st.VerifyAudit(ctx, s.School.ID), school.ErrChainBroken) // the old key dropped too early
	h.AuditKeys.Set(k2)

	// Anchors, as `elevid admin audit anchor` prints them.
	for range 3 {
		add(s.OtherSchl.ID, "other", "")
		add(school.InstanceChain, "instance", "")
	}
	heads := must(st.AuditHeads(ctx))
	anchor := map[string]school.AuditAnchor{}
	for _, a := range heads {
		anchor[a.SchoolID] = a
	}
	for _, id := range []string{s.School.ID, s.OtherSchl.ID, school.InstanceChain} {
		if err := st.VerifyAudit(ctx, id, anchor[id]); err != nil || anchor[id].Seq == 0 {
			t.Fatalf("VerifyAudit(%q) with its anchor %+v: %v", id, anchor[id], err)
		}
	}

	// Rewrite without the key: entries and head recomputed under a guessed
	// key, with the key ids kept.
	rewrite := func(chain string, seal func(*school.AuditEntry)) {
		t.Helper()
		var prev []byte
		for _, e := range all(chain) {
			if e.Seq == 2 {
				e.Detail = "rewritten"
			}
			e.PrevHash = prev
			seal(&e)
			mustExec(t, h, `UPDATE audit_log SET detail = $3, prev_hash = $4, hash = $5, key_id = $6 WHERE school_id = $1 AND seq = $2`,
				chain, e.Seq, e.Detail, e.PrevHash, e.Hash, e.KeyID)
			prev = e.Hash
		}
		mustExec(t, h, `UPDATE audit_heads SET hash = $2 WHERE school_id = $1`, chain, prev)
	}
	rewrite(s.School.ID, func(e *school.AuditEntry) { e.Hash = e.ComputeMAC([]byte("a guessed key, not the real one")) })
	wantErr(t, st.VerifyAudit(ctx, s.School.ID), school.ErrChainBroken)
	// … or downgraded to legacy (unkeyed SHA-256) entries.
	rewrite(s.OtherSchl.ID, func(e *school.AuditEntry) { e.KeyID, e.Hash = "", e.ComputeHash() })
	wantErr(t, st.VerifyAudit(ctx, s.OtherSchl.ID), school.ErrChainBroken)

	// Truncation after the anchor: the newest entries deleted and the head
	// moved back consistently (no key needed). Only the anchor catches it.
	add(school.InstanceChain, "after the anchor", "")
	inst := all(school.InstanceChain)
	cut := anchor[school.InstanceChain].Seq - 1
	mustExec(t, h, `DELETE FROM audit_log WHERE school_id = $1 AND seq > $2`, school.InstanceChain, cut)
	mustExec(t, h, `UPDATE audit_heads SET seq = $2, hash = $3 WHERE school_id = $1`, school.InstanceChain, cut, inst[cut-1].Hash)
	if err := st.VerifyAudit(ctx, school.InstanceChain); err != nil {
		t.Fatalf("the consistent truncation is not visible without an anchor, yet: %v", err)
	}
	wantErr(t, st.VerifyAudit(ctx, school.InstanceChain, anchor[school.InstanceChain]), school.ErrChainBroken)

	// Client addresses: cleared by the access-log retention and by the
	// pupil's erasure; the chain still verifies.
	other := must(st.CreateSchool(ctx, school.School{Code: "ip", Name: "IP Skole", Domain: "ip.example.dk"}))
	pupil := must(st.CreatePupil(ctx, school.Pupil{SchoolID: other.ID, ExternalID: "ip-1", GivenName: "Ip", Status: school.PupilActive}))
	old := must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: other.ID, ActorID: "staff-1", Action: "pupil.view", SubjectID: "someone", Remote: "198.51.100.1"}))
	h.Clock.Advance(48 * time.Hour)
	recent := must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: other.ID, ActorID: "staff-1", Action: "pupil.view", SubjectID: "someone", Remote: "198.51.100.2"}))
	byPupil := must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: other.ID, ActorID: "pupil:" + pupil.ID, Action: "passkey.remove", SubjectID: pupil.ID, Remote: "198.51.100.3"}))
	if _, err := st.Purge(ctx, school.PurgeAccess, h.Clock.Now().Add(-24*time.Hour), h.Clock.Now(), 100); err != nil {
		t.Fatal(err)
	}
	remote := func(seq int64) string {
		for _, e := range all(other.ID) {
			if e.Seq == seq {
				return e.Remote
			}
		}
		t.Fatalf("entry %d gone", seq)
		return ""
	}
	if remote(old.Seq) != "" || remote(recent.Seq) != "198.51.100.2" {
		t.Fatalf("after the access-log retention: old %q, recent %q", remote(old.Seq), remote(recent.Seq))
	}
	if err := st.DeletePupil(ctx, pupil.ID); err != nil {
		t.Fatal(err)
	}
	if remote(byPupil.Seq) != "" || remote(recent.Seq) != "198.51.100.2" {
		t.Fatalf("after erasure: pupil's %q, other %q", remote(byPupil.Seq), remote(recent.Seq))
	}
	if err := st.VerifyAudit(ctx, other.ID); err != nil {
		t.Fatalf("after clearing addresses: %v", err)
	}
}
