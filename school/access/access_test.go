package access_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
)

// openStore returns a fresh, migrated store of kind ("sqlite" or
// "postgres", the latter in a schema of its own in ELEVID_TEST_POSTGRES).
func openStore(t *testing.T, kind string, now func() time.Time) school.Store {
	t.Helper()
	ctx := context.Background()
	if kind == "sqlite" {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, err := postgres.Open(ctx, testenv.PostgresSchema(t, "t"), sqlstore.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// world is a school with two pupils (and one pupil of another school),
// two OIDC platforms and one SAML SP.
type world struct {
	st                   school.Store
	clock                *storetest.Clock
	svc                  *access.Service
	sch, other           school.School
	ida, noah, bo        school.Pupil
	oidcA, oidcB, samlSP school.Platform
}

func newWorld(t *testing.T, kind string) *world {
	clock := storetest.NewClock()
	w := &world{clock: clock, st: openStore(t, kind, clock.Now)}
	w.svc = access.New(access.Options{Now: clock.Now})
	ctx := context.Background()
	w.sch = must[school.School](t)(w.st.CreateSchool(ctx, school.School{Code: "s1", Name: "Skole", Domain: "s1.example.dk"}))
	w.other = must[school.School](t)(w.st.CreateSchool(ctx, school.School{Code: "s2", Name: "Anden", Domain: "s2.example.dk"}))
	pupil := func(s school.School, ext string) school.Pupil {
		return must[school.Pupil](t)(w.st.CreatePupil(ctx, school.Pupil{SchoolID: s.ID, ExternalID: ext, GivenName: ext, FamilyName: "X",
			BirthDate: time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC)}))
	}
	w.ida, w.noah, w.bo = pupil(w.sch, "ida"), pupil(w.sch, "noah"), pupil(w.other, "bo")
	platform := func(name string, p school.Protocol) school.Platform {
		return must[school.Platform](t)(w.st.CreatePlatform(ctx, school.Platform{Name: name, Protocol: p, ClientID: name, SubjectType: school.SubjectPairwise}))
	}
	w.oidcA, w.oidcB, w.samlSP = platform("a", school.ProtocolOIDC), platform("b", school.ProtocolOIDC), platform("https://sp.example/shibboleth", school.ProtocolSAML)
	return w
}

func (w *world) session(t *testing.T, p school.Pupil, life time.Duration) school.Session {
	return must[school.Session](t)(w.st.CreateSession(context.Background(), school.Session{Kind: school.SessionPupil, SubjectID: p.ID,
		SchoolID: p.SchoolID, ExpiresAt: w.clock.Now().Add(life)}))
}

// signIn gives platform pf an access and a refresh token (OIDC) or an
// SP session (SAML) for pupil p in login session ss.
func (w *world) signIn(t *testing.T, p school.Pupil, ss school.Session, pf school.Platform) {
	ctx := context.Background()
	now := w.clock.Now()
	if pf.Protocol == school.ProtocolSAML {
		must[school.SAMLParticipant](t)(w.st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: school.SAMLSessionID(p.ID, ss.Ref),
			PupilID: p.ID, PlatformID: pf.ID, NameID: "name-" + p.ID, NameIDFormat: "persistent", SessionIndex: "idx-" + ss.Ref[:8], ExpiresAt: now.Add(8 * time.Hour)}))
		return
	}
	base := school.OIDCToken{Kind: school.TokenAccess, PlatformID: pf.ID, PupilID: p.ID, SessionRef: ss.Ref, Subject: "sub-" + pf.Name + "-" + p.ID,
		AuthTime: now, ExpiresAt: now.Add(time.Hour)}
	must[school.OIDCToken](t)(w.st.CreateOIDCToken(ctx, base))
	base.Kind, base.Hash, base.FamilyID, base.ExpiresAt = school.TokenRefresh, school.NewSecret(32), school.NewID(), now.Add(30*24*time.Hour)
	must[school.OIDCToken](t)(w.st.CreateOIDCToken(ctx, base))
}

// active counts the pupil's active tokens at pf.
func (w *world) active(t *testing.T, p school.Pupil, pf school.Platform) int {
	return len(must[[]school.OIDCToken](t)(w.st.ListOIDCTokens(context.Background(), school.OIDCTokenFilter{PupilID: p.ID, PlatformID: pf.ID})))
}

// notices returns the queued notices by platform.
func (w *world) notices(t *testing.T) map[string][]school.LogoutNotice {
	out := map[string][]school.LogoutNotice{}
	for _, n := range must[[]school.LogoutNotice](t)(w.st.ListLogouts(context.Background())) {
		out[n.PlatformID] = append(out[n.PlatformID], n)
	}
	return out
}

func (w *world) clearNotices(t *testing.T) {
	ctx := context.Background()
	for _, p := range []school.Protocol{school.ProtocolOIDC, school.ProtocolSAML} {
		for _, n := range must[[]school.LogoutNotice](t)(w.st.ClaimLogouts(ctx, "test", p, time.Minute, 100)) {
			if err := w.st.LogoutDelivered(ctx, n.ID, "test"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func forEachStore(t *testing.T, fn func(t *testing.T, kind string)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { fn(t, kind) })
	}
}

// TestEndSession ends one login session: its tokens at every platform and
// its SAML SP sessions end, each platform of the session gets exactly one
// notice, and the pupil's other session lives on.
func TestEndSession(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
		w := newWorld(t, kind)
		ctx := context.Background()
		s1, s2 := w.session(t, w.ida, 2*time.Hour), w.session(t, w.ida, 2*time.Hour)
		w.signIn(t, w.ida, s1, w.oidcA)
		w.signIn(t, w.ida, s1, w.samlSP)
		w.signIn(t, w.ida, s2, w.oidcB)
		woke := w.svc.Subscribe()

		e := must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.Session(w.ida.ID, s1.Ref), "logout"))
		if e.Sessions != 1 || e.Tokens != 2 || e.Notices != 2 {
			t.Fatalf("Ended = %+v", e)
		}
		select {
		case <-woke:
		default:
			t.Fatal("queue workers not woken after the commit")
		}
		if w.active(t, w.ida, w.oidcA) != 0 || w.active(t, w.ida, w.oidcB) != 2 {
			t.Fatalf("tokens: A %d, B %d", w.active(t, w.ida, w.oidcA), w.active(t, w.ida, w.oidcB))
		}
		live := must[[]school.Session](t)(w.st.ListSessions(ctx, w.ida.ID))
		if len(live) != 1 || live[0].Ref != s2.Ref {
			t.Fatalf("sessions left = %+v", live)
		}
		ns := w.notices(t)
		if len(ns) != 2 || len(ns[w.oidcA.ID]) != 1 || len(ns[w.samlSP.ID]) != 1 {
			t.Fatalf("notices = %+v", ns)
		}
		o, sa := ns[w.oidcA.ID][0], ns[w.samlSP.ID][0]
		if o.Protocol != school.ProtocolOIDC || o.Subject != "sub-a-"+w.ida.ID || o.SessionRef != s1.Ref {
			t.Fatalf("OIDC notice = %+v", o)
		}
		if sa.Protocol != school.ProtocolSAML || sa.Subject != "name-"+w.ida.ID || sa.SessionIndex != "idx-"+s1.Ref[:8] || sa.NameIDFormat != "persistent" || sa.SessionRef != s1.Ref {
			t.Fatalf("SAML notice = %+v", sa)
		}
		// Ending it again finds nothing to end and tells no one twice.
		e = must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.Session(w.ida.ID, s1.Ref), "logout"))
		if e != (access.Ended{}) || len(w.notices(t)[w.oidcA.ID]) != 1 {
			t.Fatalf("second end = %+v", e)
		}
	})
}

// TestEndRollsBack: when the caller's transaction fails, nothing ended
// and no notice was queued (the notice commits with the change or not at
// all).
func TestEndRollsBack(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
		w := newWorld(t, kind)
		ctx := context.Background()
		s1 := w.session(t, w.ida, time.Hour)
		w.signIn(t, w.ida, s1, w.oidcA)
		w.signIn(t, w.ida, s1, w.samlSP)
		woke := w.svc.Subscribe()
		boom := errors.New("the withdrawal failed")
		err := w.st.InTx(ctx, func(q school.Queries) error {
			if _, err := w.svc.End(ctx, q, access.Pupil(w.ida.ID), "consent withdrawn"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v", err)
		}
		select {
		case <-woke:
			t.Fatal("woken for a rolled-back transaction")
		default:
		}
		if len(w.notices(t)) != 0 || w.active(t, w.ida, w.oidcA) != 2 || len(must[[]school.Session](t)(w.st.ListSessions(ctx, w.ida.ID))) != 1 {
			t.Fatal("a rolled-back end left effects")
		}
		// The SP's session is still known, so a later end tells it.
		if e := must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.Pupil(w.ida.ID), "consent withdrawn")); e.Notices != 2 || e.Tokens != 2 || e.Sessions != 1 {
			t.Fatalf("Ended = %+v", e)
		}
	})
}

// TestEndScopes checks the pupil × platform, pupil × all, school ×
// platform scopes and the initiator.
func TestEndScopes(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
		w := newWorld(t, kind)
		ctx := context.Background()
		for _, p := range []school.Pupil{w.ida, w.noah, w.bo} {
			ss := w.session(t, p, 2*time.Hour)
			for _, pf := range []school.Platform{w.oidcA, w.oidcB, w.samlSP} {
				w.signIn(t, p, ss, pf)
			}
		}
		// Withdrawal of one platform: only that platform of that pupil.
		e := must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.PupilPlatform(w.ida.ID, w.samlSP.ID), "consent withdrawn"))
		if e.Tokens != 0 || e.Notices != 1 {
			t.Fatalf("pupil × SAML platform: %+v", e)
		}
		if ns := w.notices(t); len(ns) != 1 || ns[w.samlSP.ID][0].Subject != "name-"+w.ida.ID {
			t.Fatalf("notices = %+v", ns)
		}
		w.clearNotices(t)
		e = must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.PupilPlatform(w.ida.ID, w.oidcB.ID), "consent withdrawn"))
		if e.Tokens != 2 || e.Notices != 1 || w.active(t, w.ida, w.oidcA) != 2 || w.active(t, w.ida, w.oidcB) != 0 {
			t.Fatalf("pupil × OIDC platform: %+v", e)
		}
		w.clearNotices(t)
		// Deactivation at one school: Noah (and Ida) at A, not Bo.
		e = must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.SchoolPlatform(w.sch.ID, w.oidcA.ID), "deactivated"))
		if e.Tokens != 4 || e.Notices != 2 || e.Sessions != 0 || w.active(t, w.bo, w.oidcA) != 2 || w.active(t, w.noah, w.oidcB) != 2 {
			t.Fatalf("school × platform: %+v", e)
		}
		if len(must[[]school.Session](t)(w.st.ListSessions(ctx, w.noah.ID))) != 1 {
			t.Fatal("deactivation signed the pupil out of ElevID")
		}
		w.clearNotices(t)
		// Quarantine of Bo, started by nobody; Noah's session ended by
		// platform B itself (it gets no notice).
		e = must[access.Ended](t)(w.svc.EndIn(ctx, w.st, access.Pupil(w.bo.ID), "quarantined"))
		if e.Sessions != 1 || e.Tokens != 4 || e.Notices != 3 {
			t.Fatalf("pupil × all: %+v", e)
		}
		w.clearNotices(t)
		noahs := must[[]school.Session](t)(w.st.ListSessions(ctx, w.noah.ID))
		sc := access.Session(w.noah.ID, noahs[0].Ref)
		sc.Initiator = w.oidcB.ID
		e = must[access.Ended](t)(w.svc.EndIn(ctx, w.st, sc, "rp-logout"))
		if ns := w.notices(t); e.Tokens != 2 || len(ns) != 1 || len(ns[w.samlSP.ID]) != 1 {
			t.Fatalf("initiated by B: %+v, notices %+v", e, ns)
		}
		for _, bad := range []access.Scope{{}, {PlatformID: w.oidcA.ID}, {SchoolID: w.sch.ID}, {SchoolID: w.sch.ID, PupilID: w.ida.ID, PlatformID: w.oidcA.ID},
			{PupilID: w.ida.ID, SessionRef: "x", PlatformID: w.oidcA.ID}} {
			if _, err := w.svc.EndIn(ctx, w.st, bad, "x"); !errors.Is(err, school.ErrInvalid) {
				t.Fatalf("scope %+v: %v", bad, err)
			}
		}
	})
}

// TestEndExpired: sessions past their idle or absolute timeout end
// through the service, so their platforms are told; one node at a time.
func TestEndExpired(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
		w := newWorld(t, kind)
		ctx := context.Background()
		short, long := w.session(t, w.ida, time.Hour), w.session(t, w.noah, 12*time.Hour)
		w.signIn(t, w.ida, short, w.oidcA)
		w.signIn(t, w.ida, short, w.samlSP)
		w.signIn(t, w.noah, long, w.oidcA)
		if n := must[int](t)(w.svc.EndExpired(ctx, w.st, "node-a")); n != 0 || len(w.notices(t)) != 0 {
			t.Fatalf("ended %d before expiry", n)
		}
		w.clock.Advance(61 * time.Minute)
		if err := w.st.TryLock(ctx, "session-expiry", "node-b", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.EndExpired(ctx, w.st, "node-a"); !errors.Is(err, school.ErrLocked) {
			t.Fatalf("with the lease held elsewhere: %v", err)
		}
		if err := w.st.Unlock(ctx, "session-expiry", "node-b"); err != nil {
			t.Fatal(err)
		}
		if n := must[int](t)(w.svc.EndExpired(ctx, w.st, "node-a")); n != 1 {
			t.Fatalf("ended %d, want 1", n)
		}
		ns := w.notices(t)
		if len(ns) != 2 || len(ns[w.oidcA.ID]) != 1 || ns[w.oidcA.ID][0].SessionRef != short.Ref || len(ns[w.samlSP.ID]) != 1 {
			t.Fatalf("notices = %+v", ns)
		}
		// The refresh token issued in the expired session is gone too.
		if w.active(t, w.ida, w.oidcA) != 0 || w.active(t, w.noah, w.oidcA) != 1 { // Noah's access token expired by time; the refresh token lives
			t.Fatal("tokens of the expired session survive, or others ended")
		}
		if n := must[int](t)(w.svc.EndExpired(ctx, w.st, "node-a")); n != 0 {
			t.Fatalf("ended again: %d", n)
		}
	})
}
