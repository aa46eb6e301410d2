package access_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/school/storetest"
)

var (
	accessPropN    = flag.Int("accessprop.n", 40, "sequences per store in TestEndAccessProperty")
	accessPropSeed = flag.Uint64("accessprop.seed", 14, "seed of TestEndAccessProperty")
)

// TestEndAccessProperty drives random sequences of sign-ins (OIDC tokens,
// SAML SP sessions) and events that end access (logout, session expiry,
// quarantine and restore, passkey reset, withdrawal of one platform,
// deactivation for a school) on both stores, and after every event checks
// against a model: none of the tokens and SP sessions in the event's
// scope works any more, exactly one logout notice was queued for each
// platform session in scope (OIDC and SAML alike), and nothing outside
// the scope ended. Seeded; more sequences with -accessprop.n.
func TestEndAccessProperty(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
		clock := storetest.NewClock()
		st := openStore(t, kind, clock.Now)
		rng := rand.New(rand.NewPCG(*accessPropSeed, 0))
		for n := range *accessPropN {
			runAccessSequence(t, st, clock, rng, n)
		}
	})
}

type holding struct{ pupil, platform, ref string }

type accessModel struct {
	st        school.Store
	clock     *storetest.Clock
	svc       *access.Service
	schools   []school.School
	pupils    []school.Pupil // [0], [1] in schools[0]; [2] in schools[1]
	platforms []school.Platform
	sessions  map[string]school.Session // by ref
	revoked   map[string]bool
	held      map[holding]bool
}

const (
	evSignIn = iota
	evLogout
	evExpire
	evQuarantine
	evRestore
	evReset
	evWithdraw
	evDeactivate
	evKinds
)

var evNames = []string{"sign-in", "logout", "expire", "quarantine", "restore", "passkey-reset", "withdraw", "deactivate"}

func runAccessSequence(t *testing.T, st school.Store, clock *storetest.Clock, rng *rand.Rand, n int) {
	ctx := context.Background()
	m := &accessModel{st: st, clock: clock, svc: access.New(access.Options{Now: clock.Now}),
		sessions: map[string]school.Session{}, revoked: map[string]bool{}, held: map[holding]bool{}}
	// The store is shared by the sequences: end every earlier sequence's
	// session (2 hours long) first, so that expiry counts only this one's.
	clock.Advance(3 * time.Hour)
	if _, err := m.svc.EndExpired(ctx, st, "prop"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		code := fmt.Sprintf("q%d-%d-%s", n, i, school.NewID()[:4])
		m.schools = append(m.schools, mustT[school.School](t)(st.CreateSchool(ctx, school.School{Code: code, Name: code, Domain: code + ".example.dk"})))
	}
	for i, s := range []int{0, 0, 1} {
		m.pupils = append(m.pupils, mustT[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: m.schools[s].ID, ExternalID: fmt.Sprint("p", i),
			GivenName: "P", FamilyName: "Q", Status: school.PupilActive, BirthDate: time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC)})))
	}
	for i, proto := range []school.Protocol{school.ProtocolOIDC, school.ProtocolOIDC, school.ProtocolSAML} {
		m.platforms = append(m.platforms, mustT[school.Platform](t)(st.CreatePlatform(ctx, school.Platform{Name: fmt.Sprint("pf", i), Protocol: proto,
			ClientID: fmt.Sprintf("q%d-pf%d-%s", n, i, school.NewID()[:4]), SubjectType: school.SubjectPairwise})))
	}
	var trail []string
	for range 10 + rng.IntN(20) {
		ev, p, pf := rng.IntN(evKinds), rng.IntN(len(m.pupils)), rng.IntN(len(m.platforms))
		if rng.IntN(3) > 0 {
			ev = evSignIn // sign-ins make the sessions that the other events end
		}
		trail = append(trail, fmt.Sprintf("%s(p%d,pf%d)", evNames[ev], p, pf))
		if err := m.step(ctx, ev, p, pf, rng); err != nil {
			t.Fatalf("%s sequence %d: %v\nsteps: %v", t.Name(), n, err, trail)
		}
	}
}

func mustT[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func subjectOf(h holding) string { return "sub-" + h.platform + "-" + h.pupil }

// step applies one event and checks the invariant for its scope.
func (m *accessModel) step(ctx context.Context, ev, pi, pfi int, rng *rand.Rand) error {
	p, pf := m.pupils[pi], m.platforms[pfi]
	now := m.clock.Now()
	var scope func(h holding) bool
	var end func(q school.Queries) error
	var direct func() error
	endScope := func(sc access.Scope, reason string) func(q school.Queries) error {
		return func(q school.Queries) error { _, err := m.svc.End(ctx, q, sc, reason); return err }
	}
	switch ev {
	case evSignIn:
		cur, err := m.st.GetPupil(ctx, p.ID)
		if err != nil || cur.Status != school.PupilActive {
			return err
		}
		var ss school.Session
		for _, s := range m.sessions {
			if s.SubjectID == p.ID && !m.revoked[s.Ref] && now.Before(s.ExpiresAt) && rng.IntN(2) == 0 {
				ss = s
			}
		}
		if ss.Ref == "" {
			if ss, err = m.st.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: p.ID, SchoolID: p.SchoolID, ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
				return err
			}
			m.sessions[ss.Ref] = ss
		}
		h := holding{p.ID, pf.ID, ss.Ref}
		if m.held[h] {
			return nil
		}
		m.held[h] = true
		if pf.Protocol == school.ProtocolSAML {
			_, err := m.st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: school.SAMLSessionID(p.ID, ss.Ref), PupilID: p.ID, PlatformID: pf.ID,
				NameID: subjectOf(h), NameIDFormat: "persistent", SessionIndex: "idx-" + ss.Ref[:8], ExpiresAt: now.Add(24 * time.Hour)})
			return err
		}
		tok := school.OIDCToken{Kind: school.TokenAccess, PlatformID: pf.ID, PupilID: p.ID, SessionRef: ss.Ref, Subject: subjectOf(h), AuthTime: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
		if _, err := m.st.CreateOIDCToken(ctx, tok); err != nil {
			return err
		}
		tok.Kind, tok.Hash, tok.FamilyID = school.TokenRefresh, school.NewSecret(32), school.NewID()
		_, err = m.st.CreateOIDCToken(ctx, tok)
		return err
	case evLogout:
		var ref string
		for r, s := range m.sessions {
			if s.SubjectID == p.ID && !m.revoked[r] {
				ref = r
			}
		}
		if ref == "" {
			return nil
		}
		scope = func(h holding) bool { return h.pupil == p.ID && h.ref == ref }
		end = endScope(access.Session(p.ID, ref), "logout")
		m.revoked[ref] = true
	case evExpire:
		m.clock.Advance(time.Duration(30+rng.IntN(90)) * time.Minute)
		now = m.clock.Now()
		expired := map[string]bool{}
		for r, s := range m.sessions {
			if !m.revoked[r] && !now.Before(s.ExpiresAt) {
				expired[r], m.revoked[r] = true, true
			}
		}
		scope = func(h holding) bool { return expired[h.ref] }
		direct = func() error { // its own transactions, one per session
			n, err := m.svc.EndExpired(ctx, m.st, "prop")
			if err == nil && n != len(expired) {
				err = fmt.Errorf("EndExpired ended %d sessions, the model %d", n, len(expired))
			}
			return err
		}
	case evQuarantine, evReset:
		scope = func(h holding) bool { return h.pupil == p.ID }
		inner := endScope(access.Pupil(p.ID), evNames[ev])
		end = func(q school.Queries) error {
			if ev == evQuarantine {
				if _, err := q.UpdatePupil(ctx, p.ID, func(x school.Pupil) (school.Pupil, error) { x.Status = school.PupilQuarantined; return x, nil }); err != nil {
					return err
				}
			}
			return inner(q)
		}
		m.revokeUnexpired(p.ID, now)
	case evRestore:
		_, err := m.st.UpdatePupil(ctx, p.ID, func(x school.Pupil) (school.Pupil, error) { x.Status = school.PupilActive; return x, nil })
		return err
	case evWithdraw:
		scope = func(h holding) bool { return h.pupil == p.ID && h.platform == pf.ID }
		end = endScope(access.PupilPlatform(p.ID, pf.ID), "consent withdrawn")
		m.revokeUnexpired(p.ID, now)
	case evDeactivate:
		sch := m.schools[pi%2]
		inSchool := map[string]bool{}
		for _, x := range m.pupils {
			inSchool[x.ID] = x.SchoolID == sch.ID
		}
		scope = func(h holding) bool { return inSchool[h.pupil] && h.platform == pf.ID }
		end = endScope(access.SchoolPlatform(sch.ID, pf.ID), "deactivated")
	}

	before, err := m.st.ListLogouts(ctx)
	if err != nil {
		return err
	}
	if direct == nil {
		direct = func() error { return m.st.InTx(ctx, end) }
	}
	if err := direct(); err != nil {
		return err
	}
	after, err := m.st.ListLogouts(ctx)
	if err != nil {
		return err
	}
	old := map[string]bool{}
	for _, n := range before {
		old[n.ID] = true
	}
	var queued []school.LogoutNotice
	for _, n := range after {
		if !old[n.ID] {
			queued = append(queued, n)
		}
	}
	var inScope []holding
	for h := range m.held {
		if scope(h) {
			inScope = append(inScope, h)
		}
	}
	if len(queued) != len(inScope) {
		return fmt.Errorf("%s queued %d notices for %d platform sessions in scope: %+v", evNames[ev], len(queued), len(inScope), queued)
	}
	for _, h := range inScope {
		pf := m.platformByID(h.platform)
		if !slices.ContainsFunc(queued, func(n school.LogoutNotice) bool {
			return n.PlatformID == h.platform && n.Subject == subjectOf(h) && n.SessionRef == h.ref && n.Protocol == pf.Protocol
		}) {
			return fmt.Errorf("%s: no logout notice for %+v (%s)", evNames[ev], h, pf.Protocol)
		}
		delete(m.held, h)
	}
	// Ended in scope, alive outside it.
	for _, h := range append(inScope, m.heldList()...) {
		alive, err := m.alive(ctx, h)
		if err != nil {
			return err
		}
		if want := m.held[h]; alive != want {
			return fmt.Errorf("after %s: platform session %+v alive=%v, want %v", evNames[ev], h, alive, want)
		}
	}
	return nil
}

// revokeUnexpired marks the pupil's unexpired sessions revoked, as
// RevokeSessions does.
func (m *accessModel) revokeUnexpired(pupilID string, now time.Time) {
	for r, s := range m.sessions {
		if s.SubjectID == pupilID && now.Before(s.ExpiresAt) {
			m.revoked[r] = true
		}
	}
}

func (m *accessModel) heldList() []holding {
	var out []holding
	for h := range m.held {
		out = append(out, h)
	}
	return out
}

func (m *accessModel) platformByID(id string) school.Platform {
	for _, pf := range m.platforms {
		if pf.ID == id {
			return pf
		}
	}
	return school.Platform{}
}

// alive reports whether the platform session h still works: both OIDC
// tokens active, or the SAML participant still recorded.
func (m *accessModel) alive(ctx context.Context, h holding) (bool, error) {
	if m.platformByID(h.platform).Protocol == school.ProtocolSAML {
		parts, err := m.st.SAMLParticipants(ctx, school.SAMLSessionID(h.pupil, h.ref))
		return slices.ContainsFunc(parts, func(p school.SAMLParticipant) bool { return p.PlatformID == h.platform }), err
	}
	toks, err := m.st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: h.pupil, PlatformID: h.platform, SessionRef: h.ref})
	if err != nil {
		return false, err
	}
	switch len(toks) {
	case 0:
		return false, nil
	case 2:
		return true, nil
	}
	return false, fmt.Errorf("platform session %+v has %d of its 2 tokens active", h, len(toks))
}
