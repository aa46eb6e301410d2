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

// authnSeed creates a school with one class, guardian and pupil, and a
// second school, under fresh codes so that several seeds fit one store.
func authnSeed(t *testing.T, st school.Store) Seed {
	t.Helper()
	ctx := context.Background()
	var s Seed
	tag := school.NewID()[:8]
	s.School = must(st.CreateSchool(ctx, school.School{Code: "a" + tag, Name: "Skole A", Domain: "a.example.dk"}))
	s.OtherSchl = must(st.CreateSchool(ctx, school.School{Code: "b" + tag, Name: "Skole B", Domain: "b.example.dk"}))
	s.Class = must(st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: "7A"}))
	s.Guardian = must(st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, Name: "Mor Hansen", Email: "mor@example.dk"}))
	s.Pupil = must(st.CreatePupil(ctx, school.Pupil{
		SchoolID: s.School.ID, GivenName: "Ida", FamilyName: "Hansen",
		BirthDate: time.Date(2012, 5, 17, 0, 0, 0, 0, time.UTC),
		ClassIDs:  []string{s.Class.ID}, GuardianIDs: []string{s.Guardian.ID},
	}))
	return s
}

// grantEnrolment puts the seed pupil's enrolment flow in state consented.
func grantEnrolment(t *testing.T, h Harness, s Seed) {
	t.Helper()
	grantConsent(t, h.Store, s.Pupil.ID, s.Guardian.ID)
}

func testPasskeys(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := authnSeed(t, st)

	// User handles: random, 64 bytes, stable, unique, and resolvable.
	hd := must(st.UserHandle(ctx, school.PupilOwner(s.Pupil.ID)))
	if len(hd) != 64 || !bytes.Equal(hd, must(st.UserHandle(ctx, school.PupilOwner(s.Pupil.ID)))) {
		t.Fatalf("UserHandle = %x (len %d), not stable", hd, len(hd))
	}
	if bytes.Contains(hd, []byte(s.Pupil.ID)) || bytes.Contains(hd, []byte("Ida")) {
		t.Fatal("user handle reveals the pupil")
	}
	if got := must(st.OwnerByHandle(ctx, school.OwnerPupil, hd)); got != s.Pupil.ID {
		t.Fatalf("OwnerByHandle = %q", got)
	}
	_, err := st.OwnerByHandle(ctx, school.OwnerPupil, []byte("nope"))
	wantErr(t, err, school.ErrNotFound)
	_, err = st.UserHandle(ctx, school.PupilOwner("nope"))
	wantErr(t, err, school.ErrNotFound)
	bo := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, GivenName: "Bo"}))
	if bytes.Equal(must(st.UserHandle(ctx, school.PupilOwner(bo.ID))), hd) {
		t.Fatal("two pupils share a user handle")
	}

	// Credentials.
	c := school.Credential{
		ID: []byte("cred-1"), Owner: school.PupilOwner(s.Pupil.ID), SchoolID: s.School.ID, PublicKey: []byte{1, 2, 3},
		AttestationFormat: "none", AAGUID: make([]byte, 16), SignCount: 7, BackupEligible: true, BackupState: true,
		Transports: []string{"internal", "hybrid"}, Label: "iPad",
	}
	added := must(st.AddCredential(ctx, c))
	if !added.CreatedAt.Equal(h.Clock.Now()) {
		t.Fatalf("AddCredential CreatedAt = %v", added.CreatedAt)
	}
	got := must(st.GetCredential(ctx, school.OwnerPupil, c.ID))
	if got.Owner != school.PupilOwner(s.Pupil.ID) || got.SignCount != 7 || !got.BackupEligible || !got.BackupState || got.CloneWarning ||
		len(got.Transports) != 2 || got.Transports[1] != "hybrid" || got.Label != "iPad" || !got.Active() ||
		!bytes.Equal(got.PublicKey, []byte{1, 2, 3}) || got.AttestationFormat != "none" || len(got.AAGUID) != 16 {
		t.Fatalf("GetCredential = %+v", got)
	}
	_, err = st.AddCredential(ctx, c)
	wantErr(t, err, school.ErrConflict)
	_, err = st.GetCredential(ctx, school.OwnerPupil, []byte("nope"))
	wantErr(t, err, school.ErrNotFound)
	bad := c
	bad.ID, bad.SchoolID = []byte("cred-x"), s.OtherSchl.ID // pupil is not of that school
	_, err = st.AddCredential(ctx, bad)
	wantErr(t, err, school.ErrInvalid)
	bad.SchoolID, bad.PublicKey = s.School.ID, nil
	_, err = st.AddCredential(ctx, bad)
	wantErr(t, err, school.ErrInvalid)

	h.Clock.Advance(time.Second)
	c2 := c
	c2.ID, c2.Label, c2.Transports = []byte("cred-2"), "Phone", nil
	must(st.AddCredential(ctx, c2))
	list := must(st.ListCredentials(ctx, school.PupilOwner(s.Pupil.ID), false))
	if len(list) != 2 || string(list[0].ID) != "cred-1" || string(list[1].ID) != "cred-2" || list[1].Transports != nil {
		t.Fatalf("ListCredentials = %+v", list)
	}
	h.Clock.Advance(time.Second)
	up := must(st.UpdateCredential(ctx, school.OwnerPupil, c.ID, func(c school.Credential) (school.Credential, error) {
		c.SignCount, c.CloneWarning, c.LastUsedAt, c.Label = 9, true, h.Clock.Now(), "Skolens iPad"
		c.Owner = school.StaffOwner("ignored")
		return c, nil
	}))
	got = must(st.GetCredential(ctx, school.OwnerPupil, c.ID))
	if got.SignCount != 9 || !got.CloneWarning || !got.LastUsedAt.Equal(h.Clock.Now()) || got.Label != "Skolens iPad" || got.Owner != school.PupilOwner(s.Pupil.ID) || up.Owner != school.PupilOwner(s.Pupil.ID) {
		t.Fatalf("after UpdateCredential = %+v", got)
	}
	must(st.UpdateCredential(ctx, school.OwnerPupil, c2.ID, func(c school.Credential) (school.Credential, error) { c.RevokedAt = h.Clock.Now(); return c, nil }))
	if n := len(must(st.ListCredentials(ctx, school.PupilOwner(s.Pupil.ID), false))); n != 1 {
		t.Fatalf("%d active credentials after revoking one", n)
	}
	if n := len(must(st.ListCredentials(ctx, school.PupilOwner(s.Pupil.ID), true))); n != 2 {
		t.Fatalf("%d credentials with revoked", n)
	}
	_, err = st.UpdateCredential(ctx, school.OwnerPupil, []byte("nope"), func(c school.Credential) (school.Credential, error) { return c, nil })
	wantErr(t, err, school.ErrNotFound)

	// A login reads the handle's pupil and the credential in one go; the
	// credential must be the pupil's.
	lp, lc, err := st.PasskeyLogin(ctx, hd, c2.ID)
	if err != nil || lp.ID != s.Pupil.ID || lp.SchoolID != s.School.ID || lp.Status != school.PupilActive || lp.GivenName != s.Pupil.GivenName ||
		!lp.CreatedAt.Equal(s.Pupil.CreatedAt) || string(lc.ID) != "cred-2" || lc.Active() || lc.Label != "Phone" || lc.Owner != school.PupilOwner(s.Pupil.ID) {
		t.Fatalf("PasskeyLogin = %+v, %+v, %v", lp, lc, err)
	}
	boCred := c
	boCred.ID, boCred.Owner = []byte("cred-bo"), school.PupilOwner(bo.ID)
	must(st.AddCredential(ctx, boCred))
	for _, tc := range []struct {
		name         string
		handle, cred []byte
	}{
		{"unknown handle", []byte("nope"), c.ID},
		{"unknown credential", hd, []byte("nope")},
		{"another pupil's credential", hd, boCred.ID},
	} {
		_, _, err := st.PasskeyLogin(ctx, tc.handle, tc.cred)
		if !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("PasskeyLogin with %s: %v, want ErrNotFound", tc.name, err)
		}
	}
	// Recording a use keeps a clone warning once set.
	h.Clock.Advance(time.Second)
	if err := st.RecordCredentialUse(ctx, c.ID, school.CredentialUse{SignCount: 12, BackupState: false, At: h.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	got = must(st.GetCredential(ctx, school.OwnerPupil, c.ID))
	if got.SignCount != 12 || !got.CloneWarning || got.BackupState || !got.LastUsedAt.Equal(h.Clock.Now()) || got.Label != "Skolens iPad" || !got.BackupEligible {
		t.Fatalf("after RecordCredentialUse = %+v", got)
	}
	if err := st.RecordCredentialUse(ctx, boCred.ID, school.CredentialUse{SignCount: 1, CloneWarning: true, BackupState: true, At: h.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := must(st.GetCredential(ctx, school.OwnerPupil, boCred.ID)); !got.CloneWarning || !got.BackupState || got.SignCount != 1 {
		t.Fatalf("clone warning not recorded: %+v", got)
	}
	wantErr(t, st.RecordCredentialUse(ctx, []byte("nope"), school.CredentialUse{At: h.Clock.Now()}), school.ErrNotFound)

	// Erasing the pupil erases their passkeys and handle.
	if err := st.DeletePupil(ctx, s.Pupil.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetCredential(ctx, school.OwnerPupil, c.ID)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.OwnerByHandle(ctx, school.OwnerPupil, hd)
	wantErr(t, err, school.ErrNotFound)
}

func testCeremonies(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	save := func(id string, ttl time.Duration) {
		t.Helper()
		if err := st.SaveCeremony(ctx, school.Ceremony{ID: id, Kind: school.CeremonyLogin, Ref: []byte("r"), Data: []byte(`{"challenge":"x"}`), ExpiresAt: h.Clock.Now().Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	save("c1", time.Minute)
	got := must(st.ConsumeCeremony(ctx, "c1"))
	if got.Kind != school.CeremonyLogin || string(got.Data) != `{"challenge":"x"}` || string(got.Ref) != "r" || !got.CreatedAt.Equal(h.Clock.Now()) {
		t.Fatalf("ConsumeCeremony = %+v", got)
	}
	_, err := st.ConsumeCeremony(ctx, "c1") // replay
	wantErr(t, err, school.ErrNotFound)
	_, err = st.ConsumeCeremony(ctx, "never")
	wantErr(t, err, school.ErrNotFound)
	wantErr(t, st.SaveCeremony(ctx, school.Ceremony{ID: "x"}), school.ErrInvalid)

	save("c2", time.Minute)
	h.Clock.Advance(time.Minute)
	_, err = st.ConsumeCeremony(ctx, "c2")
	wantErr(t, err, school.ErrExpired)
	_, err = st.ConsumeCeremony(ctx, "c2") // an expired one is gone too
	wantErr(t, err, school.ErrNotFound)

	// Concurrent consumers: exactly one wins.
	save("c3", time.Minute)
	wins := race(8, func() error { _, err := st.ConsumeCeremony(ctx, "c3"); return err })
	if wins != 1 {
		t.Fatalf("%d concurrent consumers won", wins)
	}
}

// race runs fn n times at once and returns how many calls returned nil.
func race(n int, fn func() error) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if fn() == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins
}

func codeHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func testEnrolmentCodes(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := authnSeed(t, st)
	week := h.Clock.Now().Add(7 * 24 * time.Hour)
	code := func(name string) school.EnrolmentCode {
		return school.EnrolmentCode{Hash: codeHash(name), PupilID: s.Pupil.ID, CreatedBy: "staff-1", ExpiresAt: week, Locator: "LOC1"}
	}

	// Without consent no code is issued: the consent placeholder decides.
	_, err := st.CreateEnrolmentCode(ctx, code("a"))
	wantErr(t, err, school.ErrInvalid)
	grantEnrolment(t, h, s)
	c := must(st.CreateEnrolmentCode(ctx, code("a")))
	if c.SchoolID != s.School.ID || !c.CreatedAt.Equal(h.Clock.Now()) {
		t.Fatalf("CreateEnrolmentCode = %+v", c)
	}
	if !must(st.PendingEnrolmentCode(ctx, s.Pupil.ID)) {
		t.Fatal("no pending code after issuing one")
	}
	got := must(st.EnrolmentCodeByHash(ctx, codeHash("a")))
	if got.PupilID != s.Pupil.ID || got.CreatedBy != "staff-1" || !got.ExpiresAt.Equal(week) || !got.Valid(h.Clock.Now()) {
		t.Fatalf("EnrolmentCodeByHash = %+v", got)
	}
	_, err = st.EnrolmentCodeByHash(ctx, codeHash("zz"))
	wantErr(t, err, school.ErrNotFound)
	_, err = st.CreateEnrolmentCode(ctx, school.EnrolmentCode{Hash: codeHash("q"), PupilID: "nope", ExpiresAt: week})
	wantErr(t, err, school.ErrNotFound)
	_, err = st.CreateEnrolmentCode(ctx, school.EnrolmentCode{Hash: []byte("short"), PupilID: s.Pupil.ID, ExpiresAt: week})
	wantErr(t, err, school.ErrInvalid)

	// A new code supersedes the old one: the old one reads as expired.
	must(st.CreateEnrolmentCode(ctx, code("b")))
	_, err = st.EnrolmentCodeByHash(ctx, codeHash("a"))
	wantErr(t, err, school.ErrExpired)
	// Only the live code answers to the locator.
	if live := must(st.LiveEnrolmentCodes(ctx, "LOC1")); len(live) != 1 || string(live[0].Hash) != string(codeHash("b")) || live[0].Locator != "LOC1" {
		t.Fatalf("LiveEnrolmentCodes = %+v", live)
	}
	if live := must(st.LiveEnrolmentCodes(ctx, "")); len(live) != 0 {
		t.Fatalf("LiveEnrolmentCodes(\"\") = %d", len(live))
	}

	// Concurrent consumption: exactly one wins, then it is used.
	wins := race(8, func() error { _, err := st.ConsumeEnrolmentCode(ctx, codeHash("b")); return err })
	if wins != 1 {
		t.Fatalf("%d concurrent consumers won", wins)
	}
	_, err = st.ConsumeEnrolmentCode(ctx, codeHash("b"))
	wantErr(t, err, school.ErrUsed)
	_, err = st.EnrolmentCodeByHash(ctx, codeHash("b"))
	wantErr(t, err, school.ErrUsed)
	if live := must(st.LiveEnrolmentCodes(ctx, "LOC1")); len(live) != 0 {
		t.Fatalf("a used code is live: %+v", live)
	}
	_, err = st.ConsumeEnrolmentCode(ctx, codeHash("zz"))
	wantErr(t, err, school.ErrNotFound)
	if must(st.PendingEnrolmentCode(ctx, s.Pupil.ID)) {
		t.Fatal("pending code after it was used")
	}

	// Consumption inside a transaction that fails is undone.
	must(st.CreateEnrolmentCode(ctx, code("c")))
	boom := context.Canceled
	err = st.InTx(ctx, func(q school.Queries) error {
		if _, err := q.ConsumeEnrolmentCode(ctx, codeHash("c")); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, err, boom)
	must(st.EnrolmentCodeByHash(ctx, codeHash("c")))

	// Expiry.
	h.Clock.Advance(7 * 24 * time.Hour)
	_, err = st.EnrolmentCodeByHash(ctx, codeHash("c"))
	wantErr(t, err, school.ErrExpired)
	_, err = st.ConsumeEnrolmentCode(ctx, codeHash("c"))
	wantErr(t, err, school.ErrExpired)

	// Only active pupils get codes.
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilQuarantined; return p, nil }))
	_, err = st.CreateEnrolmentCode(ctx, school.EnrolmentCode{Hash: codeHash("d"), PupilID: s.Pupil.ID, ExpiresAt: h.Clock.Now().Add(time.Hour)})
	wantErr(t, err, school.ErrInvalid)

	// Purging removes expired codes.
	n := must(st.PurgeAuthnState(ctx, h.Clock.Now().Add(time.Second)))
	if n < 1 {
		t.Fatalf("PurgeAuthnState removed %d rows", n)
	}
	_, err = st.EnrolmentCodeByHash(ctx, codeHash("c"))
	wantErr(t, err, school.ErrNotFound)
}

// testSignIn: a passkey sign-in records the credential's use and makes
// the session, both or neither, on its own and inside a transaction.
func testSignIn(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := authnSeed(t, st)
	c := school.Credential{ID: []byte("cred-signin-" + s.Pupil.ID), Owner: school.PupilOwner(s.Pupil.ID), SchoolID: s.School.ID, PublicKey: []byte("pk"),
		AttestationFormat: "none", AAGUID: make([]byte, 16),
		SignCount: 3, BackupEligible: true, Label: "iPad", CreatedAt: h.Clock.Now()}
	must(st.AddCredential(ctx, c))
	session := func(cred []byte, ceremony string) school.Session {
		return school.Session{Kind: school.SessionPupil, SubjectID: s.Pupil.ID, SchoolID: s.School.ID,
			ExpiresAt: h.Clock.Now().Add(8 * time.Hour), AuthTime: h.Clock.Now(), AMR: []string{"hwk", "user"}, ACR: "passkey",
			UserVerified: true, CredentialID: cred, UserAgent: "Safari", Ceremony: ceremony}
	}
	count := func() int { return len(must(st.ListSessions(ctx, s.Pupil.ID))) }
	credential := func() school.Credential { return must(st.GetCredential(ctx, school.OwnerPupil, c.ID)) }

	h.Clock.Advance(time.Second)
	ss, err := st.SignIn(ctx, school.CredentialUse{SignCount: 4, BackupState: true, At: h.Clock.Now()}, session(c.ID, "cer-1"))
	if err != nil || ss.ID == "" || ss.Ref != school.SessionRef(ss.ID) {
		t.Fatalf("SignIn = %+v, %v", ss, err)
	}
	got := must(st.TouchSession(ctx, ss.ID))
	if got.SubjectID != s.Pupil.ID || string(got.CredentialID) != string(c.ID) || got.ACR != "passkey" || len(got.AMR) != 2 ||
		!got.UserVerified || got.UserAgent != "Safari" || !got.AuthTime.Equal(h.Clock.Now()) || !got.ExpiresAt.Equal(h.Clock.Now().Add(8*time.Hour)) {
		t.Fatalf("the signed-in session = %+v", got)
	}
	if cr := credential(); cr.SignCount != 4 || !cr.BackupState || cr.CloneWarning || !cr.LastUsedAt.Equal(h.Clock.Now()) {
		t.Fatalf("the credential after SignIn = %+v", cr)
	}

	// A second session of one ceremony: ErrConflict, and the credential
	// keeps the first sign-in's use.
	h.Clock.Advance(time.Second)
	_, err = st.SignIn(ctx, school.CredentialUse{SignCount: 9, CloneWarning: true, At: h.Clock.Now()}, session(c.ID, "cer-1"))
	wantErr(t, err, school.ErrConflict)
	if cr := credential(); cr.SignCount != 4 || cr.CloneWarning || count() != 1 {
		t.Fatalf("a refused sign-in changed things: %+v, %d sessions", cr, count())
	}
	// A credential that is gone: ErrNotFound, no session.
	_, err = st.SignIn(ctx, school.CredentialUse{SignCount: 1, At: h.Clock.Now()}, session([]byte("gone"), "cer-2"))
	wantErr(t, err, school.ErrNotFound)
	if count() != 1 {
		t.Fatalf("%d sessions after signing in with a credential that is gone", count())
	}
	_, err = st.SignIn(ctx, school.CredentialUse{At: h.Clock.Now()}, session(nil, "cer-3"))
	wantErr(t, err, school.ErrInvalid)
	bad := session(c.ID, "cer-4")
	bad.Kind = "robot"
	_, err = st.SignIn(ctx, school.CredentialUse{SignCount: 10, At: h.Clock.Now()}, bad)
	wantErr(t, err, school.ErrInvalid)
	if cr := credential(); cr.SignCount != 4 {
		t.Fatalf("an invalid session's sign-in recorded the use: %+v", cr)
	}

	// Inside a transaction it joins it: a rollback undoes both.
	errStop := errors.New("stop")
	err = st.InTx(ctx, func(q school.Queries) error {
		if _, err := q.SignIn(ctx, school.CredentialUse{SignCount: 5, At: h.Clock.Now()}, session(c.ID, "cer-5")); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) || count() != 1 || credential().SignCount != 4 {
		t.Fatalf("rolled back sign-in: %v, %d sessions, %+v", err, count(), credential())
	}
	err = st.InTx(ctx, func(q school.Queries) error {
		_, err := q.SignIn(ctx, school.CredentialUse{SignCount: 6, CloneWarning: true, At: h.Clock.Now()}, session(c.ID, "cer-6"))
		return err
	})
	if cr := credential(); err != nil || count() != 2 || cr.SignCount != 6 || !cr.CloneWarning {
		t.Fatalf("sign-in in a transaction: %v, %d sessions, %+v", err, count(), cr)
	}
}

func testSessions(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := authnSeed(t, st)
	newSession := func(subject string) school.Session {
		return must(st.CreateSession(ctx, school.Session{
			Kind: school.SessionPupil, SubjectID: subject, SchoolID: s.School.ID,
			ExpiresAt: h.Clock.Now().Add(8 * time.Hour), IdleTimeout: time.Hour,
			AMR: []string{"hwk", "user"}, ACR: "passkey", UserVerified: true, CredentialID: []byte("cred"), UserAgent: "Firefox",
		}))
	}
	a := newSession(s.Pupil.ID)
	if len(a.ID) < 64 || a.Ref != school.SessionRef(a.ID) || a.Ref == a.ID {
		t.Fatalf("CreateSession = %+v", a)
	}
	_, err := st.CreateSession(ctx, school.Session{Kind: "robot", SubjectID: "x", ExpiresAt: h.Clock.Now().Add(time.Hour)})
	wantErr(t, err, school.ErrInvalid)

	got := must(st.TouchSession(ctx, a.ID))
	if got.SubjectID != s.Pupil.ID || got.Kind != school.SessionPupil || got.IdleTimeout != time.Hour || len(got.AMR) != 2 ||
		got.ACR != "passkey" || !got.UserVerified || string(got.CredentialID) != "cred" || got.UserAgent != "Firefox" || got.ID != "" || got.Ref != a.Ref {
		t.Fatalf("TouchSession = %+v", got)
	}
	_, err = st.TouchSession(ctx, a.Ref) // the stored hash is not a cookie value
	wantErr(t, err, school.ErrNotFound)

	// Idle timeout: use within the hour keeps it alive.
	for range 3 {
		h.Clock.Advance(50 * time.Minute)
		if got := must(st.TouchSession(ctx, a.ID)); !got.LastSeenAt.Equal(h.Clock.Now()) {
			t.Fatalf("LastSeenAt = %v", got.LastSeenAt)
		}
	}
	h.Clock.Advance(61 * time.Minute)
	_, err = st.TouchSession(ctx, a.ID)
	wantErr(t, err, school.ErrExpired)

	// Absolute lifetime, even with activity.
	b := newSession(s.Pupil.ID)
	for range 9 {
		h.Clock.Advance(55 * time.Minute)
		_, err = st.TouchSession(ctx, b.ID)
	}
	wantErr(t, err, school.ErrExpired)

	// Listing, revoking one and revoking all.
	c := newSession(s.Pupil.ID)
	h.Clock.Advance(time.Second)
	d := newSession(s.Pupil.ID)
	other := newSession("someone-else")
	list := must(st.ListSessions(ctx, s.Pupil.ID))
	if len(list) != 2 || list[0].Ref != d.Ref || list[1].Ref != c.Ref {
		t.Fatalf("ListSessions = %+v", list)
	}
	wantErr(t, st.RevokeSession(ctx, "someone-else", c.Ref, "x"), school.ErrNotFound) // not theirs
	if err := st.RevokeSession(ctx, s.Pupil.ID, c.Ref, "signed out elsewhere"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.RevokeSession(ctx, s.Pupil.ID, c.Ref, "again"), school.ErrNotFound)
	_, err = st.TouchSession(ctx, c.ID)
	wantErr(t, err, school.ErrNotFound)
	e := newSession(s.Pupil.ID)
	var n int
	err = st.InTx(ctx, func(q school.Queries) error {
		n, err = q.RevokeSessions(ctx, s.Pupil.ID, "quarantine")
		return err
	})
	if err != nil || n != 2 {
		t.Fatalf("RevokeSessions = %d, %v", n, err)
	}
	for _, id := range []string{d.ID, e.ID} {
		_, err = st.TouchSession(ctx, id)
		wantErr(t, err, school.ErrNotFound)
	}
	if len(must(st.ListSessions(ctx, s.Pupil.ID))) != 0 {
		t.Fatal("revoked sessions listed")
	}
	must(st.TouchSession(ctx, other.ID))
}

func testRates(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	if n := must(st.RateCount(ctx, "k", time.Minute)); n != 0 {
		t.Fatalf("RateCount of nothing = %d", n)
	}
	for i := 1; i <= 3; i++ {
		if n := must(st.HitRate(ctx, "k", time.Minute)); n != i {
			t.Fatalf("hit %d counted %d", i, n)
		}
	}
	if n := must(st.RateCount(ctx, "k", time.Minute)); n != 3 {
		t.Fatalf("RateCount = %d", n)
	}
	if n := must(st.HitRate(ctx, "other", time.Minute)); n != 1 {
		t.Fatalf("other key counted %d", n)
	}
	h.Clock.Advance(time.Minute)
	if n := must(st.RateCount(ctx, "k", time.Minute)); n != 0 {
		t.Fatalf("RateCount after the window = %d", n)
	}
	if n := must(st.HitRate(ctx, "k", time.Minute)); n != 1 {
		t.Fatalf("first hit of a new window counted %d", n)
	}
	// Concurrent hits all count.
	race(10, func() error { _, err := st.HitRate(ctx, "c", time.Minute); return err })
	if n := must(st.RateCount(ctx, "c", time.Minute)); n != 10 {
		t.Fatalf("10 concurrent hits counted %d", n)
	}
}

// testAuthn runs the parts of pupils' authentication state, each on a
// fresh store of the same factory.
func testAuthn(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Harness)
	}{
		{"Passkeys", testPasskeys},
		{"Ceremonies", testCeremonies},
		{"EnrolmentCodes", testEnrolmentCodes},
		{"Sessions", testSessions},
		{"SignIn", testSignIn},
		{"Rates", testRates},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, h)
		})
	}
}
