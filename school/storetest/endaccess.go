package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// testEndAccess checks what the access-ending service (school/access)
// needs of a store: logout notices of both protocols queued inside a
// transaction and claimed per protocol, SAML participants taken by
// scope, tokens selected by school, and pupil sessions that expired
// without being ended.
func testEndAccess(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	now := h.Clock.Now()
	sp := must(st.CreatePlatform(ctx, school.Platform{Name: "SP", Protocol: school.ProtocolSAML, ClientID: "https://sp.example/shibboleth"}))
	other := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.OtherSchl.ID, ExternalID: "p-9", GivenName: "Bo", FamilyName: "Berg",
		BirthDate: time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)}))

	t.Run("notices", func(t *testing.T) {
		_, err := st.QueueLogout(ctx, school.LogoutNotice{PlatformID: sp.ID, Protocol: "ws-fed", Subject: "n", ExpiresAt: now.Add(time.Hour)})
		wantErr(t, err, school.ErrInvalid)
		_, err = st.ClaimLogouts(ctx, "node", "ws-fed", time.Minute, 5)
		wantErr(t, err, school.ErrInvalid)
		// A notice queued in a transaction that rolls back is gone with it.
		boom := errors.New("boom")
		err = st.InTx(ctx, func(q school.Queries) error {
			if _, err := q.QueueLogout(ctx, school.LogoutNotice{PlatformID: sp.ID, Protocol: school.ProtocolSAML, Subject: "lost", ExpiresAt: now.Add(time.Hour)}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v", err)
		}
		if l := must(st.ListLogouts(ctx)); len(l) != 0 {
			t.Fatalf("rolled-back notice kept: %+v", l)
		}
		saml := must(st.QueueLogout(ctx, school.LogoutNotice{PlatformID: sp.ID, Protocol: school.ProtocolSAML, Subject: "name-1",
			NameIDFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", SessionIndex: "idx-1", SessionRef: "ref-1", ExpiresAt: now.Add(time.Hour)}))
		oidc := must(st.QueueLogout(ctx, school.LogoutNotice{PlatformID: s.Platform.ID, Subject: "sub-1", SessionRef: "ref-1", ExpiresAt: now.Add(time.Hour)}))
		if oidc.Protocol != school.ProtocolOIDC {
			t.Fatalf("default protocol = %q", oidc.Protocol)
		}
		got := must(st.ClaimLogouts(ctx, "node-a", school.ProtocolSAML, time.Minute, 10))
		if len(got) != 1 || got[0].ID != saml.ID || got[0].Protocol != school.ProtocolSAML || got[0].Subject != "name-1" ||
			got[0].SessionIndex != "idx-1" || got[0].NameIDFormat != saml.NameIDFormat || got[0].SessionRef != "ref-1" {
			t.Fatalf("SAML claim = %+v", got)
		}
		got = must(st.ClaimLogouts(ctx, "node-a", school.ProtocolOIDC, time.Minute, 10))
		if len(got) != 1 || got[0].ID != oidc.ID || got[0].SessionRef != "ref-1" || got[0].Sid != "" {
			t.Fatalf("OIDC claim = %+v", got)
		}
		for _, n := range []school.LogoutNotice{saml, oidc} {
			if err := st.LogoutDelivered(ctx, n.ID, "node-a"); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("participants", func(t *testing.T) {
		_, err := st.TakeSAMLParticipants(ctx, school.SAMLParticipantFilter{PlatformID: sp.ID})
		wantErr(t, err, school.ErrInvalid)
		exp := now.Add(time.Hour)
		add := func(sess, pupil string) school.SAMLParticipant {
			return must(st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: sess, PupilID: pupil, PlatformID: sp.ID,
				NameID: "n-" + sess, NameIDFormat: "persistent", SessionIndex: "i-" + sess, ExpiresAt: exp}))
		}
		a := add(school.SAMLSessionID(s.Pupil.ID, "r1"), s.Pupil.ID)
		b := add(school.SAMLSessionID(s.Pupil.ID, "r2"), s.Pupil.ID)
		c := add(school.SAMLSessionID(other.ID, "r3"), other.ID)
		got := must(st.TakeSAMLParticipants(ctx, school.SAMLParticipantFilter{SessionID: school.SAMLSessionID(s.Pupil.ID, "r1")}))
		if len(got) != 1 || got[0].ID != a.ID || got[0].SessionIndex != "i-"+a.SessionID {
			t.Fatalf("by session = %+v", got)
		}
		if got := must(st.TakeSAMLParticipants(ctx, school.SAMLParticipantFilter{SessionID: a.SessionID})); len(got) != 0 {
			t.Fatalf("taken twice: %+v", got)
		}
		// One school at one platform: the other school's pupil stays.
		got = must(st.TakeSAMLParticipants(ctx, school.SAMLParticipantFilter{SchoolID: s.School.ID, PlatformID: sp.ID}))
		if len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("by school = %+v", got)
		}
		if got := must(st.TakeSAMLParticipants(ctx, school.SAMLParticipantFilter{PupilID: other.ID, PlatformID: s.Platform.ID})); len(got) != 0 {
			t.Fatalf("other platform taken: %+v", got)
		}
		got = must(st.TakeSAMLParticipants(ctx, school.SAMLParticipantFilter{PupilID: other.ID}))
		if len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("by pupil = %+v", got)
		}
	})

	t.Run("tokens by school", func(t *testing.T) {
		mk := func(pupil string) school.OIDCToken {
			return must(st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenAccess, PlatformID: s.Platform.ID, PupilID: pupil,
				Subject: "sub-" + pupil, AuthTime: now, ExpiresAt: now.Add(time.Hour)}))
		}
		mine, theirs := mk(s.Pupil.ID), mk(other.ID)
		if n := must(st.RevokeOIDCTokens(ctx, school.OIDCTokenFilter{SchoolID: s.School.ID, PlatformID: s.Platform.ID})); n != 1 {
			t.Fatalf("revoked %d, want 1", n)
		}
		if got := must(st.GetOIDCToken(ctx, mine.ID)); got.RevokedAt.IsZero() {
			t.Fatal("the school's token survived")
		}
		if got := must(st.GetOIDCToken(ctx, theirs.ID)); !got.RevokedAt.IsZero() {
			t.Fatal("the other school's token was revoked")
		}
		if l := must(st.ListOIDCTokens(ctx, school.OIDCTokenFilter{SchoolID: s.OtherSchl.ID})); len(l) != 1 || l[0].ID != theirs.ID {
			t.Fatalf("ListOIDCTokens by school = %+v", l)
		}
	})

	t.Run("expired sessions", func(t *testing.T) {
		mk := func(kind school.SessionKind, subject string, life, idle time.Duration) school.Session {
			return must(st.CreateSession(ctx, school.Session{Kind: kind, SubjectID: subject, ExpiresAt: h.Clock.Now().Add(life), IdleTimeout: idle}))
		}
		absolute := mk(school.SessionPupil, s.Pupil.ID, time.Hour, 0)
		idle := mk(school.SessionPupil, s.Pupil.ID, 12*time.Hour, 30*time.Minute)
		revoked := mk(school.SessionPupil, s.Pupil.ID, time.Hour, 0)
		live := mk(school.SessionPupil, other.ID, 12*time.Hour, 0)
		staff := mk(school.SessionStaff, "staff-1", time.Hour, 0)
		if err := st.RevokeSession(ctx, s.Pupil.ID, revoked.Ref, "logout"); err != nil {
			t.Fatal(err)
		}
		if l := must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 10)); len(l) != 0 {
			t.Fatalf("expired before their time: %+v", l)
		}
		h.Clock.Advance(31 * time.Minute)
		l := must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 10))
		if len(l) != 1 || l[0].Ref != idle.Ref || l[0].SubjectID != s.Pupil.ID {
			t.Fatalf("idle-expired = %+v", l)
		}
		h.Clock.Advance(30 * time.Minute)
		refs := map[string]bool{}
		for _, x := range must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 10)) {
			refs[x.Ref] = true
		}
		if len(refs) != 2 || !refs[absolute.Ref] || !refs[idle.Ref] || refs[revoked.Ref] || refs[live.Ref] || refs[staff.Ref] {
			t.Fatalf("expired = %v", refs)
		}
		if l := must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 1)); len(l) != 1 {
			t.Fatalf("limit 1 gave %d", len(l))
		}
		// Purging keeps the unended pupil session (the expiry job has not
		// told the platforms yet) but not the expired staff session.
		must(st.PurgeAuthnState(ctx, h.Clock.Now()))
		refs = map[string]bool{}
		for _, x := range must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 10)) {
			refs[x.Ref] = true
		}
		if !refs[absolute.Ref] {
			t.Fatal("purge removed a pupil session the expiry job has not ended")
		}
		// Once ended, it is no longer listed.
		if err := st.RevokeSession(ctx, s.Pupil.ID, absolute.Ref, "expired"); err != nil {
			t.Fatal(err)
		}
		for _, x := range must(st.ExpiredPupilSessions(ctx, h.Clock.Now(), 10)) {
			if x.Ref == absolute.Ref {
				t.Fatal("an ended session is listed again")
			}
		}
	})
}
