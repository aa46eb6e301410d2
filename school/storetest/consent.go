package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// grantConsent puts the pupil's flow in state consented under rule any
// and records the guardian's grant for every platform given: the state
// other suites need before they issue codes or release claims.
func grantConsent(t *testing.T, st school.Queries, pupilID, guardianID string, platformIDs ...string) {
	t.Helper()
	ctx := context.Background()
	must(st.PutEnrolment(ctx, school.Enrolment{PupilID: pupilID, State: school.EnrolmentConsented, Rule: school.ConsentAny, StartedBy: "test"}))
	p := must(st.GetPupil(ctx, pupilID))
	for _, pf := range platformIDs {
		must(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: p.SchoolID, PlatformID: pf, ActivatedBy: "test"}, true))
		must(st.SetConsent(ctx, school.Consent{PupilID: pupilID, GuardianID: guardianID, PlatformID: pf, Decision: school.DecisionGranted}))
	}
}

func testConsent(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	other := must(st.CreatePlatform(ctx, school.Platform{Name: "Other", Protocol: school.ProtocolOIDC, ClientID: "other"}))
	for _, pf := range []string{s.Platform.ID, other.ID} {
		must(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.School.ID, PlatformID: pf, ActivatedBy: "test"}, true))
	}
	g2 := must(st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, Name: "Far Hansen", Email: "Far@Example.dk"}))
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.GuardianIDs = append(p.GuardianIDs, g2.ID)
		return p, nil
	}))
	check := func(wantEnrol, wantRelease, wantOther bool) {
		t.Helper()
		if got := must(st.EnrolmentAllowed(ctx, s.Pupil.ID)); got != wantEnrol {
			t.Fatalf("EnrolmentAllowed = %v, want %v", got, wantEnrol)
		}
		if got := must(st.ReleaseAllowed(ctx, s.Pupil.ID, s.Platform.ID)); got != wantRelease {
			t.Fatalf("ReleaseAllowed(platform) = %v, want %v", got, wantRelease)
		}
		if got := must(st.ReleaseAllowed(ctx, s.Pupil.ID, other.ID)); got != wantOther {
			t.Fatalf("ReleaseAllowed(other) = %v, want %v", got, wantOther)
		}
	}
	set := func(g, pf, decision string) {
		t.Helper()
		must(st.SetConsent(ctx, school.Consent{PupilID: s.Pupil.ID, GuardianID: g, PlatformID: pf, Decision: decision}))
	}
	state := func(to school.EnrolmentState) {
		t.Helper()
		must(st.UpdateEnrolment(ctx, s.Pupil.ID, func(e school.Enrolment) (school.Enrolment, error) { e.State = to; return e, nil }))
	}

	check(false, false, false) // no flow: nothing
	wantErr(t, func() error { _, err := st.GetEnrolment(ctx, s.Pupil.ID); return err }(), school.ErrNotFound)
	_, err := st.PutEnrolment(ctx, school.Enrolment{PupilID: "nobody", State: school.EnrolmentRequested, Rule: school.ConsentAny})
	wantErr(t, err, school.ErrInvalid)
	_, err = st.UpdateEnrolment(ctx, "nobody", func(e school.Enrolment) (school.Enrolment, error) { return e, nil })
	wantErr(t, err, school.ErrNotFound)

	exp := h.Clock.Now().Add(time.Hour)
	e := must(st.PutEnrolment(ctx, school.Enrolment{PupilID: s.Pupil.ID, State: school.EnrolmentAwaitingConsent, Rule: school.ConsentAny, Age: 13, Flagged: true, StartedBy: "staff-1", ExpiresAt: exp}))
	got := must(st.GetEnrolment(ctx, s.Pupil.ID))
	if got.SchoolID != s.School.ID || got.State != school.EnrolmentAwaitingConsent || got.Rule != school.ConsentAny || got.Age != 13 || !got.Flagged || got.StartedBy != "staff-1" || !got.ExpiresAt.Equal(exp) || !got.CreatedAt.Equal(e.CreatedAt) {
		t.Fatalf("GetEnrolment = %+v, want %+v", got, e)
	}
	if !got.Valid(h.Clock.Now()) || got.Valid(exp) {
		t.Fatal("Valid does not follow ExpiresAt")
	}
	if l := must(st.ListEnrolments(ctx, s.School.ID)); len(l) != 1 || len(must(st.ListEnrolments(ctx, s.OtherSchl.ID))) != 0 {
		t.Fatalf("ListEnrolments = %d", len(l))
	}

	set(s.Guardian.ID, s.Platform.ID, school.DecisionGranted)
	check(false, false, false) // a grant while still awaiting consent allows nothing
	state(school.EnrolmentConsented)
	check(true, true, false) // rule any: one guardian's grant covers the platform only
	set(g2.ID, other.ID, school.DecisionGranted)
	check(true, true, true)
	set(g2.ID, s.Platform.ID, school.DecisionDenied)
	check(true, false, true) // a denial by any guardian blocks the platform
	set(g2.ID, s.Platform.ID, school.DecisionGranted)
	check(true, true, true) // a later decision replaces the earlier one
	if n := len(must(st.ListConsents(ctx, s.Pupil.ID))); n != 3 {
		t.Fatalf("ListConsents = %d rows, want 3 current decisions", n)
	}

	// Rule all: every guardian on record must grant.
	must(st.PutEnrolment(ctx, school.Enrolment{PupilID: s.Pupil.ID, State: school.EnrolmentConsented, Rule: school.ConsentAll}))
	check(true, true, false)
	set(s.Guardian.ID, other.ID, school.DecisionGranted)
	check(true, true, true)
	// A guardian no longer on record counts for nothing.
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.GuardianIDs = []string{s.Guardian.ID}; return p, nil }))
	set(g2.ID, other.ID, school.DecisionDenied)
	check(true, true, true)

	// Quarantine keeps the consent but makes it inactive.
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilQuarantined; return p, nil }))
	check(false, false, false)
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilActive; return p, nil }))
	check(true, true, true)

	// Withdrawal blocks the platform; code_issued and enrolled allow, the
	// final states do not.
	set(s.Guardian.ID, other.ID, school.DecisionWithdrawn)
	check(true, true, false)
	for _, tc := range []struct {
		s     school.EnrolmentState
		allow bool
	}{
		{school.EnrolmentCodeIssued, true}, {school.EnrolmentEnrolled, true}, {school.EnrolmentRequested, false},
		{school.EnrolmentDenied, false}, {school.EnrolmentExpired, false}, {school.EnrolmentWithdrawn, false},
	} {
		state(tc.s)
		if got := must(st.EnrolmentAllowed(ctx, s.Pupil.ID)); got != tc.allow {
			t.Fatalf("EnrolmentAllowed in %s = %v", tc.s, got)
		}
	}
	// Rule none: no guardian consent is needed, every platform is covered.
	must(st.PutEnrolment(ctx, school.Enrolment{PupilID: s.Pupil.ID, State: school.EnrolmentConsented, Rule: school.ConsentNone}))
	check(true, true, true)
	if n := must(st.ClearConsents(ctx, s.Pupil.ID)); n != 4 || len(must(st.ListConsents(ctx, s.Pupil.ID))) != 0 {
		t.Fatalf("ClearConsents = %d", n)
	}
	for _, bad := range []school.Consent{
		{PupilID: s.Pupil.ID, GuardianID: s.Guardian.ID, PlatformID: s.Platform.ID, Decision: "maybe"},
		{PupilID: s.Pupil.ID, GuardianID: s.Guardian.ID, Decision: school.DecisionGranted},
	} {
		_, err := st.SetConsent(ctx, bad)
		wantErr(t, err, school.ErrInvalid)
	}

	// Guardians by e-mail, case-insensitively.
	if gs := must(st.GuardiansByEmail(ctx, "far@example.DK")); len(gs) != 1 || gs[0].ID != g2.ID {
		t.Fatalf("GuardiansByEmail = %+v", gs)
	}
	if gs := must(st.GuardiansByEmail(ctx, "")); len(gs) != 0 {
		t.Fatal("empty address matched")
	}
}

func testGuardianLinks(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	mk := func(token string, kind school.LinkKind, pupil string, ttl time.Duration) school.GuardianLink {
		return must(st.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash(token), Kind: kind, GuardianID: s.Guardian.ID,
			PupilID: pupil, SchoolID: s.School.ID, ExpiresAt: h.Clock.Now().Add(ttl)}))
	}
	mk("consent-1", school.LinkConsent, s.Pupil.ID, time.Hour)
	mk("guardian-1", school.LinkGuardian, "", time.Hour)
	mk("short", school.LinkGuardian, "", time.Minute)
	_, err := st.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash("consent-1"), Kind: school.LinkConsent, GuardianID: s.Guardian.ID, PupilID: s.Pupil.ID, SchoolID: s.School.ID, ExpiresAt: h.Clock.Now().Add(time.Hour)})
	wantErr(t, err, school.ErrConflict)
	_, err = st.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash("x"), Kind: school.LinkConsent, GuardianID: s.Guardian.ID, SchoolID: s.School.ID, ExpiresAt: h.Clock.Now().Add(time.Hour)})
	wantErr(t, err, school.ErrInvalid) // a consent link names its pupil

	l := must(st.GuardianLinkByHash(ctx, school.LinkHash("consent-1")))
	if l.Kind != school.LinkConsent || l.PupilID != s.Pupil.ID || l.GuardianID != s.Guardian.ID || !l.UsedAt.IsZero() {
		t.Fatalf("link = %+v", l)
	}
	_, err = st.GuardianLinkByHash(ctx, school.LinkHash("forged"))
	wantErr(t, err, school.ErrNotFound)

	// Concurrent use: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := st.UseGuardianLink(ctx, school.LinkHash("consent-1"))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, school.ErrUsed):
				t.Errorf("UseGuardianLink: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent uses succeeded, want 1", wins.Load())
	}
	_, err = st.GuardianLinkByHash(ctx, school.LinkHash("consent-1"))
	wantErr(t, err, school.ErrUsed)

	h.Clock.Advance(2 * time.Minute)
	_, err = st.UseGuardianLink(ctx, school.LinkHash("short"))
	wantErr(t, err, school.ErrExpired)
	_, err = st.UseGuardianLink(ctx, school.LinkHash("forged"))
	wantErr(t, err, school.ErrNotFound)
	if l := must(st.UseGuardianLink(ctx, school.LinkHash("guardian-1"))); l.UsedAt.IsZero() || l.Kind != school.LinkGuardian {
		t.Fatalf("used link = %+v", l)
	}

	if ids := must(st.PupilsOfGuardian(ctx, s.Guardian.ID)); len(ids) != 1 || ids[0] != s.Pupil.ID {
		t.Fatalf("PupilsOfGuardian = %v", ids)
	}
}

// testGuardianSessions: guardians' sessions (after a magic link) are
// sessions of the one SessionStore, kind guardian, kept apart from the
// pupils' and staff's by subject and kind.
func testGuardianSessions(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	create := func(ttl time.Duration) school.Session {
		return must(st.CreateSession(ctx, school.Session{Kind: school.SessionGuardian, SubjectID: s.Guardian.ID, SchoolID: s.Guardian.SchoolID,
			ExpiresAt: h.Clock.Now().Add(ttl)}))
	}
	// Stored hashed, found by the cookie id.
	gs := create(time.Hour)
	if len(gs.ID) != 64 || gs.Ref != school.SessionRef(gs.ID) || gs.Ref == gs.ID {
		t.Fatalf("created guardian session = %+v", gs)
	}
	if got := must(st.TouchSession(ctx, gs.ID)); got.SubjectID != s.Guardian.ID || got.Kind != school.SessionGuardian ||
		got.SchoolID != s.Guardian.SchoolID || got.Ref != gs.Ref || got.ID != "" {
		t.Fatalf("guardian session not found: %+v", got)
	}
	_, err := st.TouchSession(ctx, "x"+gs.ID[1:])
	wantErr(t, err, school.ErrNotFound)
	// Listed as the guardian's, never as the pupil's.
	if l := must(st.ListSessions(ctx, s.Guardian.ID)); len(l) != 1 || l[0].Ref != gs.Ref || l[0].Kind != school.SessionGuardian {
		t.Fatalf("ListSessions(guardian) = %+v", l)
	}
	if l := must(st.ListSessions(ctx, s.Pupil.ID)); len(l) != 0 {
		t.Fatalf("ListSessions(pupil) = %+v", l)
	}
	// Expire: and an expired guardian session is no pupil session for
	// the session expiry job.
	h.Clock.Advance(2 * time.Hour)
	_, err = st.TouchSession(ctx, gs.ID)
	wantErr(t, err, school.ErrExpired)
	if l := must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 10)); len(l) != 0 {
		t.Fatalf("ExpiredPupilSessions = %+v", l)
	}
	// End (sign-out): not found afterwards; ending it again is ErrNotFound.
	gs2 := create(time.Hour)
	if err := st.RevokeSession(ctx, s.Guardian.ID, gs2.Ref, "logout"); err != nil {
		t.Fatal(err)
	}
	_, err = st.TouchSession(ctx, gs2.ID)
	wantErr(t, err, school.ErrNotFound)
	wantErr(t, st.RevokeSession(ctx, s.Guardian.ID, gs2.Ref, "logout"), school.ErrNotFound)
	// Ending every session of the pupil leaves the guardian's alone.
	gs3 := create(time.Hour)
	err = st.InTx(ctx, func(q school.Queries) error {
		_, err := q.RevokeSessions(ctx, s.Pupil.ID, "quarantine")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	must(st.TouchSession(ctx, gs3.ID))
	// Purged like staff sessions once ended before the cutoff.
	h.Clock.Advance(school.CeremonyMaxAge + time.Hour)
	if n := must(st.PurgeAuthnState(ctx, h.Clock.Now())); n < 3 {
		t.Fatalf("PurgeAuthnState purged %d rows, want the guardian's 3 ended sessions at least", n)
	}
	for _, x := range []school.Session{gs, gs2, gs3} {
		_, err = st.TouchSession(ctx, x.ID)
		wantErr(t, err, school.ErrNotFound) // gone, no longer expired
	}
	// Erasing the guardian ends its sessions.
	gs4 := create(time.Hour)
	if err := st.DeleteGuardian(ctx, s.Guardian.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.TouchSession(ctx, gs4.ID)
	wantErr(t, err, school.ErrNotFound)
}

func testOutbox(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	for _, bad := range []school.Mail{
		{Kind: "k", To: "a@b.dk\r\nBcc: x@y.dk", Subject: "s", Text: "t"},
		{Kind: "k", To: "a@b.dk", Subject: "s\r\nBcc: x@y.dk", Text: "t"},
		{Kind: "k", To: "Mor <a@b.dk>", Subject: "s", Text: "t"},
	} {
		_, err := st.EnqueueMail(ctx, bad)
		wantErr(t, err, school.ErrInvalid)
	}
	// A mail enqueued in a failed transaction is not there.
	_ = st.InTx(ctx, func(q school.Queries) error {
		must(q.EnqueueMail(ctx, school.Mail{SchoolID: s.School.ID, Kind: "k", To: "ghost@example.dk", Subject: "s", Text: "t"}))
		return school.ErrConflict
	})
	const n = 12
	for i := range n {
		must(st.EnqueueMail(ctx, school.Mail{SchoolID: s.School.ID, Kind: "consent_request", To: "mor@example.dk", Subject: "Samtykke", Text: "link " + string(rune('a'+i)), HTML: "<p>x</p>"}))
	}
	if l := must(st.ListMail(ctx, school.MailFilter{SchoolID: s.School.ID})); len(l) != n || l[0].Text != "" {
		t.Fatalf("ListMail = %d (bodies %q)", len(l), l[0].Text)
	}
	// With Bodies (the demo's outbox view) the pending mail comes whole.
	if l := must(st.ListMail(ctx, school.MailFilter{SchoolID: s.School.ID, Bodies: true})); len(l) != n {
		t.Fatalf("ListMail with bodies = %d", len(l))
	} else {
		for i, m := range l {
			if !strings.HasPrefix(m.Text, "link ") || m.HTML != "<p>x</p>" {
				t.Fatalf("ListMail with bodies: mail %d = %q / %q", i, m.Text, m.HTML)
			}
			if i > 0 && m.CreatedAt.After(l[i-1].CreatedAt) {
				t.Fatalf("ListMail with bodies: not newest first at %d", i)
			}
		}
	}

	// Concurrent claimers on "several nodes" never share a message.
	seen := claimOnNodes(t, func(owner string) ([]school.Mail, error) { return st.ClaimMail(ctx, owner, time.Minute, 5) },
		func(m school.Mail) string { return m.ID },
		func(m school.Mail) bool { return m.Attempts == 1 && m.Text != "" })
	if len(seen) != n {
		t.Fatalf("claimed %d of %d", len(seen), n)
	}
	if ms := must(st.ClaimMail(ctx, "node-z", time.Minute, 50)); len(ms) != 0 {
		t.Fatalf("leased mail claimed again: %d", len(ms))
	}
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// Sent: bodies dropped; another owner cannot mark it.
	wantErr(t, st.MailSent(ctx, ids[0], "node-z"), school.ErrLocked)
	if err := st.MailSent(ctx, ids[0], seen[ids[0]]); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.MailSent(ctx, ids[0], seen[ids[0]]), school.ErrLocked)
	// GetMail (the demo mail page): bodies while pending, none once sent,
	// the metadata kept.
	if m := must(st.GetMail(ctx, ids[1])); m.Text == "" || m.HTML != "<p>x</p>" || m.To != "mor@example.dk" {
		t.Fatalf("GetMail of pending mail = %+v", m)
	}
	if m := must(st.GetMail(ctx, ids[0])); m.Text != "" || m.HTML != "" || m.To != "mor@example.dk" || m.Subject != "Samtykke" ||
		m.Kind != "consent_request" || m.Status != school.MailSent || m.SentAt.IsZero() {
		t.Fatalf("GetMail of sent mail = %+v", m)
	}
	_, err := st.GetMail(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)
	// A failed attempt comes back when due; a final failure stays visible.
	retry := h.Clock.Now().Add(30 * time.Second)
	if err := st.MailFailed(ctx, ids[1], seen[ids[1]], "421 try later", retry); err != nil {
		t.Fatal(err)
	}
	if err := st.MailFailed(ctx, ids[2], seen[ids[2]], "550 no such user", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if ms := must(st.ClaimMail(ctx, "node-z", time.Minute, 50)); len(ms) != 0 {
		t.Fatalf("claimed before due: %d", len(ms))
	}
	// After the lease ends, unfinished mail is claimed again (a crashed node).
	h.Clock.Advance(2 * time.Minute)
	ms := must(st.ClaimMail(ctx, "node-z", time.Minute, 50))
	if len(ms) != n-2 {
		t.Fatalf("after lease expiry claimed %d, want %d", len(ms), n-2)
	}
	for _, m := range ms {
		if m.ID == ids[1] && (m.Attempts != 2 || m.LastError != "421 try later") {
			t.Fatalf("retried mail %+v", m)
		}
	}
	failed := must(st.ListMail(ctx, school.MailFilter{Status: school.MailFailed}))
	if len(failed) != 1 || failed[0].ID != ids[2] || failed[0].LastError != "550 no such user" {
		t.Fatalf("failed = %+v", failed)
	}
	sent := must(st.ListMail(ctx, school.MailFilter{Status: school.MailSent}))
	if len(sent) != 1 || sent[0].SentAt.IsZero() {
		t.Fatalf("sent = %+v", sent)
	}
	if err := st.RetryMail(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.RetryMail(ctx, ids[2]), school.ErrNotFound)
	if ms := must(st.ClaimMail(ctx, "node-y", time.Minute, 50)); len(ms) != 1 || ms[0].ID != ids[2] {
		t.Fatalf("retried mail not claimable: %d", len(ms))
	}
}

// claimOnNodes runs claim for four owners ("node-a" …) at once and returns
// the owner of each claimed item by id; two owners getting one item, or
// an item that fails ok, fails the test.
func claimOnNodes[T any](t *testing.T, claim func(owner string) ([]T, error), id func(T) string, ok func(T) bool) map[string]string {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		owner := "node-" + string(rune('a'+w))
		wg.Go(func() {
			items, err := claim(owner)
			if err != nil {
				t.Errorf("claim: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, x := range items {
				if prev, dup := seen[id(x)]; dup {
					t.Errorf("%s claimed by %s and %s", id(x), prev, owner)
				}
				seen[id(x)] = owner
				if !ok(x) {
					t.Errorf("claimed %+v", x)
				}
			}
		})
	}
	wg.Wait()
	return seen
}
