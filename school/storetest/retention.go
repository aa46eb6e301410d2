package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// testRetention checks that Purge deletes exactly what is due, records
// the counts in the audit log, and leaves every audit chain verifiable
// after a pupil is erased.
func testRetention(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	day := 24 * time.Hour
	start := h.Clock.Now()

	// The removed pupil gone long ago, and one removed recently.
	gone := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "gone", GivenName: "Gone", ClassIDs: []string{s.Class.ID}}))
	must(st.AppendAudit(ctx, school.AuditEntry{SchoolID: s.School.ID, ActorID: "sync", Action: "pupil.quarantine", SubjectID: gone.ID}))
	must(st.UpdatePupil(ctx, gone.ID, func(p school.Pupil) (school.Pupil, error) {
		p.Status, p.QuarantinedAt = school.PupilRemoved, start
		return p, nil
	}))
	rec := func(pupil string) {
		t.Helper()
		must(st.AddRelease(ctx, school.Release{PupilID: pupil, PlatformID: s.Platform.ID, PlatformName: "MF", Protocol: school.ProtocolOIDC, Via: "id_token", Claims: []string{"sub"}}))
		if err := st.RecordAccess(ctx, school.AccessEntry{SchoolID: s.School.ID, PupilID: pupil, StaffID: "t1", Role: school.RoleTeacher, Action: "pupil.view"}); err != nil {
			t.Fatal(err)
		}
	}
	rec(s.Pupil.ID) // old: due after 400 days
	rec(gone.ID)
	h.Clock.Advance(200 * day)
	recent := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "recent", GivenName: "Recent"}))
	must(st.UpdatePupil(ctx, recent.ID, func(p school.Pupil) (school.Pupil, error) {
		p.Status, p.QuarantinedAt = school.PupilRemoved, h.Clock.Now()
		return p, nil
	}))
	rec(s.Pupil.ID) // new: not due
	h.Clock.Advance(201 * day)
	now := h.Clock.Now()

	// Removed pupils with a 300-day cutoff: only the one removed 401 days ago.
	n := must(st.Purge(ctx, school.PurgeRemovedPupils, now.Add(-300*day), now, 10))
	if n != 1 {
		t.Fatalf("purged %d removed pupils, want 1", n)
	}
	_, err := st.GetPupil(ctx, gone.ID)
	wantErr(t, err, school.ErrNotFound)
	// The recent one (removed 201 days ago) is not due yet.
	if n := must(st.Purge(ctx, school.PurgeRemovedPupils, now.Add(-300*day), now, 10)); n != 0 {
		t.Fatalf("purged %d pupils not yet due", n)
	}
	must(st.GetPupil(ctx, recent.ID))
	must(st.GetPupil(ctx, s.Pupil.ID))
	// Its releases and access entries went with it (cascade).
	if got := must(st.ListReleases(ctx, gone.ID)); len(got) != 0 {
		t.Fatalf("erased pupil's releases remain: %d", len(got))
	}

	// Logs: the entries of day 0 are due with a 300-day retention, those of day 200 not.
	cut := now.Add(-300 * day)
	if n := must(st.Purge(ctx, school.PurgeReleases, cut, now, 1)); n != 1 {
		t.Fatalf("first release batch = %d, want 1", n)
	}
	if n := must(st.Purge(ctx, school.PurgeReleases, cut, now, 1)); n != 0 {
		t.Fatalf("second release batch = %d, want 0 (nothing more due)", n)
	}
	if got := must(st.ListReleases(ctx, s.Pupil.ID)); len(got) != 1 || !got[0].Time.Equal(start.Add(200*day)) {
		t.Fatalf("releases left = %+v", got)
	}
	if n := must(st.Purge(ctx, school.PurgeAccess, cut, now, 100)); n != 1 {
		t.Fatalf("access purge = %d, want 1", n)
	}
	if got := must(st.AccessForPupil(ctx, s.Pupil.ID)); len(got) != 1 {
		t.Fatalf("access left = %+v", got)
	}
	if _, err := st.Purge(ctx, school.PurgeExpired, cut, now, 0); err != nil {
		t.Fatalf("expired purge: %v", err)
	}
	_, err = st.Purge(ctx, "bogus", cut, now, 0)
	wantErr(t, err, school.ErrInvalid)

	// The chains still verify, erasure is audited by id only, and the
	// counts are in the instance chain.
	for _, chain := range []string{s.School.ID, school.InstanceChain} {
		if err := st.VerifyAudit(ctx, chain); err != nil {
			t.Fatalf("chain %q after erasure: %v", chain, err)
		}
	}
	erased := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: s.School.ID, SubjectID: gone.ID}))
	if len(erased) != 2 || erased[0].Action != "pupil.erase" || erased[1].Action != "pupil.quarantine" {
		t.Fatalf("audit about the erased pupil = %+v", erased)
	}
	counts := must(st.ListAudit(ctx, school.AuditFilter{SchoolID: school.InstanceChain}))
	var details []string
	for _, e := range counts {
		details = append(details, e.Detail)
	}
	want := []string{"kind=access deleted=1", "kind=releases deleted=1", "kind=removed_pupils deleted=1"}
	for _, w := range want {
		found := false
		for _, d := range details {
			found = found || d == w
		}
		if !found {
			t.Fatalf("instance audit lacks %q: %v", w, details)
		}
	}
}
