package crossproto_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

var (
	consentPropN    = flag.Int("consentprop.n", 200, "sequences per store in TestConsentProperty")
	consentPropSeed = flag.Uint64("consentprop.seed", 13, "seed of TestConsentProperty")
)

// propAttrs are the attributes platforms gain and lose in the property
// test: each is reachable by the RP's scopes and has a SAML attribute.
var propAttrs = []string{release.GivenName, release.FamilyName, release.Name, release.Groups, release.EPPN, release.SchoolCode}

// samlCanonical maps the SAML FriendlyNames ElevID sends to the claim names.
var samlCanonical = map[string]string{
	"displayName": release.Name, "givenName": release.GivenName, "sn": release.FamilyName, "eduPersonPrincipalName": release.EPPN,
	"eduPersonScopedAffiliation": release.Affiliation, "schacHomeOrganization": release.HomeOrg, "schoolCode": release.SchoolCode, "isMemberOf": release.Groups,
	"pairwise-id": "pairwise_id", "eduPersonTargetedID": "eduperson_targeted_id",
}

// TestConsentProperty drives seeded random sequences of events — grant,
// deny and withdraw per platform, refuse one attribute, a platform gains
// or loses an attribute, the school activates or deactivates a platform,
// and sign-ins over OpenID Connect (ID token and userinfo) and SAML
// (assertion) through the in-process harnesses — on both stores, and
// after every step checks invariants: no release holds an attribute that
// a current consent of the pupil's guardians does not cover for that
// platform and school (by a model kept apart from package school), and a
// platform the model gives nothing is refused. -consentprop.n sets the
// number of sequences, -consentprop.seed the seed.
//
// The events that end access — withdrawal, a lost attribute and
// deactivation (through the access service, as the consent service does),
// quarantine and restore, passkey reset, logout and session expiry — are
// checked too: afterwards none of the pupil's tokens and SP sessions in
// the event's scope works, and a logout notice was queued for every
// platform session (OIDC and SAML alike) that was alive in scope before.
// A quarantined pupil cannot sign in with a passkey, so OIDC sign-ins
// are skipped while quarantined; SAML sign-ins with a still-open session
// must be refused.
func TestConsentProperty(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			w := newPropWorld(t, pg)
			rng := rand.New(rand.NewPCG(*consentPropSeed, 1))
			for i := range *consentPropN {
				w.sequence(t, rng, i)
			}
			t.Logf("%d ending events ended %d platform sessions (%d over SAML)", w.endings, w.endedSessions, w.endedSAML)
		})
	}
}

// stepKind is one kind of event.
type stepKind int

const (
	stepGrant stepKind = iota
	stepDeny
	stepWithdraw
	stepRefuse
	stepGain
	stepLose
	stepActivate
	stepDeactivate
	stepSignInOIDC
	stepSignInSAML
	stepQuarantine
	stepRestore
	stepPasskeyReset
	stepLogout
	stepExpire
	stepKinds
)

var stepNames = []string{"grant", "deny", "withdraw", "refuse", "gain", "lose", "activate", "deactivate", "oidc", "saml",
	"quarantine", "restore", "passkey-reset", "logout", "expire"}

// step is one event of a sequence.
type step struct {
	kind     stepKind
	guardian int // index into propWorld.guardians
	platform int // 0: the OIDC platform, 1: the SAML platform
	attr     string
}

func (s step) String() string {
	return fmt.Sprintf("%s(g%d,p%d,%s)", stepNames[s.kind], s.guardian, s.platform, s.attr)
}

// propWorld is one pupil with two guardians, an OIDC platform and a SAML
// platform, over the OIDC and SAML harnesses on one store.
type propWorld struct {
	e         *idptest.OIDCEnv
	h         *idptest.SAMLHarness
	rp        *idptest.RP
	sp        *idptest.SP
	b         *idptest.Browser
	sid       string
	guardians []string
	rule      school.ConsentRule
	// last is what the last sign-in at each platform released (claim
	// names), or nil when it was refused.
	last        [2][]string
	quarantined bool
	// ended is what the last ending event must have ended (nil when the
	// step ended nothing): the platform sessions alive in its scope before
	// it, and the notices it queued.
	ended *endCheck
	// counts for the log
	endings, endedSessions, endedSAML int
}

// platformSession is one platform's session with the pupil: OIDC tokens
// of one login session, or a SAML SP session.
type platformSession struct {
	platform, subject, sessionRef string
}

type endCheck struct {
	inScope func(platformSession) bool
	before  []platformSession // alive, in scope, before the event
	queued  []school.LogoutNotice
}

func newPropWorld(t *testing.T, pg bool) *propWorld {
	ctx := context.Background()
	e := idptest.NewOIDCEnvOn(t, pg, oidc.KeyPolicy{})
	w := &propWorld{e: e, b: idptest.NewBrowser()}
	g2, err := e.Store.CreateGuardian(ctx, school.Guardian{SchoolID: e.School.ID, Name: "Far"})
	if err != nil {
		t.Fatal(err)
	}
	pupil, err := e.Store.UpdatePupil(ctx, e.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.GuardianIDs = append(p.GuardianIDs, g2.ID)
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.guardians = pupil.GuardianIDs
	var grants []school.AttributeGrant
	for _, a := range propAttrs {
		grants = append(grants, school.AttributeGrant{Name: a, JustificationDA: "da " + a, JustificationEN: "en " + a})
	}
	w.rp = e.NewRP(t, "propplatform", idptest.RPOptions{Attrs: grants, Scopes: []string{"openid", "profile", "eduperson", "school", "groups"}})
	w.h = idptest.NewSAMLHarnessOn(t, e.Store, e.School, pupil)
	w.sp = w.h.NewSP(t, idptest.SPOptions{EntityID: "https://prop-sp.example/saml/metadata", Attrs: propAttrs})
	w.sid = w.h.Sessions.Login(pupil.ID)
	return w
}

func (w *propWorld) platform(i int) school.Platform {
	if i == 0 {
		return w.rp.Platform
	}
	return w.sp.Platform
}

// sequence resets the world and runs one random sequence.
func (w *propWorld) sequence(t *testing.T, rng *rand.Rand, n int) {
	ctx := context.Background()
	st := w.e.Store
	if _, err := st.ClearConsents(ctx, w.e.Pupil.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdatePupil(ctx, w.e.Pupil.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilActive; return p, nil }); err != nil {
		t.Fatal(err)
	}
	w.quarantined = false
	w.rule = []school.ConsentRule{school.ConsentAny, school.ConsentAll}[rng.IntN(2)]
	if _, err := st.PutEnrolment(ctx, school.Enrolment{PupilID: w.e.Pupil.ID, State: school.EnrolmentEnrolled, Rule: w.rule}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		pf := w.platform(i)
		if _, err := st.UpdatePlatform(ctx, pf.ID, func(p school.Platform) (school.Platform, error) {
			p.Attributes = nil
			for _, a := range propAttrs[:2+rng.IntN(3)] {
				p.Attributes = append(p.Attributes, school.AttributeGrant{Name: a, JustificationDA: "da " + a, JustificationEN: "en " + a})
			}
			return p, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: w.e.School.ID, PlatformID: pf.ID, ActivatedBy: "prop"}, rng.IntN(4) != 0); err != nil {
			t.Fatal(err)
		}
	}
	var trail []step
	if rng.IntN(2) == 0 { // both guardians start with a yes to both platforms
		for g := range 2 {
			for p := range 2 {
				s := step{kind: stepGrant, guardian: g, platform: p}
				trail = append(trail, s)
				if err := w.apply(t, s); err != nil {
					t.Fatalf("sequence %d: %v", n, err)
				}
			}
		}
	}
	for range 6 + rng.IntN(10) {
		s := step{kind: stepKind(rng.IntN(int(stepKinds))), guardian: rng.IntN(2), platform: rng.IntN(2), attr: propAttrs[rng.IntN(len(propAttrs))]}
		if rng.IntN(3) == 0 { // sign-ins make the platform sessions the ending events end
			s.kind = stepSignInOIDC + stepKind(rng.IntN(2))
		}
		trail = append(trail, s)
		if err := w.apply(t, s); err != nil {
			t.Fatalf("sequence %d (rule %s), steps %v: %v", n, w.rule, trail, err)
		}
		if err := w.invariants(s); err != nil {
			t.Fatalf("sequence %d (rule %s), steps %v: %v", n, w.rule, trail, err)
		}
	}
}

// apply performs one step: consent events through the store as the
// consent flow, the console and the CLI do; sign-ins over HTTP.
func (w *propWorld) apply(t *testing.T, s step) error {
	ctx := context.Background()
	st := w.e.Store
	pf, err := st.GetPlatform(ctx, w.platform(s.platform).ID)
	if err != nil {
		return err
	}
	g := w.guardians[s.guardian]
	var mine school.Consent
	cs, err := st.ListConsents(ctx, w.e.Pupil.ID)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.GuardianID == g && c.PlatformID == pf.ID {
			mine = c
		}
	}
	set := func(c school.Consent) error {
		c.PupilID, c.GuardianID, c.PlatformID = w.e.Pupil.ID, g, pf.ID
		_, err := st.SetConsent(ctx, c)
		return err
	}
	w.ended = nil
	pupil := w.e.Pupil.ID
	onPlatform := func(ps platformSession) bool { return ps.platform == pf.ID }
	everything := func(platformSession) bool { return true }
	switch s.kind {
	case stepGrant:
		return set(school.Consent{Decision: school.DecisionGranted, Attributes: pf.Attributes})
	case stepDeny:
		return set(school.Consent{Decision: school.DecisionDenied, Attributes: pf.Attributes})
	case stepWithdraw:
		if !mine.Granted() {
			return nil
		}
		return w.end(onPlatform, func(q school.Queries) error {
			if _, err := q.SetConsent(ctx, school.Consent{PupilID: pupil, GuardianID: g, PlatformID: pf.ID, Decision: school.DecisionWithdrawn, Attributes: mine.Attributes}); err != nil {
				return err
			}
			_, err := w.e.Access.End(ctx, q, access.PupilPlatform(pupil, pf.ID), "consent withdrawn")
			return err
		})
	case stepQuarantine, stepPasskeyReset:
		return w.end(everything, func(q school.Queries) error {
			if s.kind == stepQuarantine {
				if _, err := q.UpdatePupil(ctx, pupil, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilQuarantined; return p, nil }); err != nil {
					return err
				}
				w.quarantined = true
			}
			_, err := w.e.Access.End(ctx, q, access.Pupil(pupil), stepNames[s.kind])
			return err
		})
	case stepRestore:
		w.quarantined = false
		_, err := st.UpdatePupil(ctx, pupil, func(p school.Pupil) (school.Pupil, error) { p.Status = school.PupilActive; return p, nil })
		return err
	case stepLogout: // the SAML harness's login session signs out
		ref := school.SessionRef(w.sid)
		return w.end(func(ps platformSession) bool { return ps.sessionRef == ref }, func(q school.Queries) error {
			_, err := w.e.Access.End(ctx, q, access.Session(pupil, ref), "logout")
			return err
		})
	case stepExpire: // the pupil's open sessions reach their absolute timeout
		// (set in the database: the SAML harness runs on the real clock,
		// so the store's clock is not moved)
		w.e.Exec(`UPDATE sessions SET expires_at = $1 WHERE subject_id = $2 AND revoked_at = 0`,
			w.e.Clock.Now().Add(-time.Second).UnixMicro(), pupil)
		sessions, err := st.ExpiredPupilSessions(ctx, w.e.Clock.Now(), 1000)
		if err != nil {
			return err
		}
		expired := map[string]bool{}
		for _, ss := range sessions {
			expired[ss.Ref] = true
		}
		return w.endDirect(func(ps platformSession) bool { return expired[ps.sessionRef] }, func() error {
			_, err := w.e.Access.EndExpired(ctx, st, "prop")
			return err
		})
	case stepRefuse:
		if !mine.Granted() {
			return nil
		}
		kept := slices.DeleteFunc(slices.Clone(mine.Attributes), func(a school.AttributeGrant) bool { return a.Name == s.attr })
		return set(school.Consent{Decision: school.DecisionGranted, Attributes: kept, Refused: append(slices.Clone(mine.Refused), s.attr)})
	case stepLose: // as the consent service's PlatformChanged: the platform's sessions end
		return w.end(onPlatform, func(q school.Queries) error {
			if _, err := q.UpdatePlatform(ctx, pf.ID, func(p school.Platform) (school.Platform, error) {
				p.Attributes = slices.DeleteFunc(p.Attributes, func(a school.AttributeGrant) bool { return a.Name == s.attr })
				return p, nil
			}); err != nil {
				return err
			}
			_, err := w.e.Access.End(ctx, q, access.SchoolPlatform(w.e.School.ID, pf.ID), "platform lost an attribute")
			return err
		})
	case stepGain:
		_, err := st.UpdatePlatform(ctx, pf.ID, func(p school.Platform) (school.Platform, error) {
			has := p.Allows(s.attr)
			if s.kind == stepGain && !has {
				p.Attributes = append(p.Attributes, school.AttributeGrant{Name: s.attr, JustificationDA: "da", JustificationEN: "en"})
			}
			if s.kind == stepLose && has {
				p.Attributes = slices.DeleteFunc(p.Attributes, func(a school.AttributeGrant) bool { return a.Name == s.attr })
			}
			return p, nil
		})
		return err
	case stepActivate:
		_, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: w.e.School.ID, PlatformID: pf.ID, ActivatedBy: "prop"}, true)
		return err
	case stepDeactivate: // as the consent service: deactivation ends access
		return w.end(onPlatform, func(q school.Queries) error {
			if _, err := q.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: w.e.School.ID, PlatformID: pf.ID, ActivatedBy: "prop"}, false); err != nil {
				return err
			}
			_, err := w.e.Access.End(ctx, q, access.SchoolPlatform(w.e.School.ID, pf.ID), "deactivated")
			return err
		})
	case stepSignInOIDC:
		if w.quarantined {
			return nil // the passkey login refuses a quarantined pupil
		}
		w.last[0], err = w.signInOIDC(t)
		return err
	case stepSignInSAML:
		if _, err := st.TouchSession(ctx, w.sid); err != nil {
			w.sid = w.h.Sessions.Login(pupil) // signed in again (the harness's login)
		}
		w.last[1], err = w.signInSAML(t)
		return err
	}
	return nil
}

// end runs fn (which ends access) in one transaction and records what it
// must have ended: the platform sessions inScope alive before it.
func (w *propWorld) end(inScope func(platformSession) bool, fn func(q school.Queries) error) error {
	return w.endDirect(inScope, func() error { return w.e.Store.InTx(context.Background(), fn) })
}

func (w *propWorld) endDirect(inScope func(platformSession) bool, run func() error) error {
	ctx := context.Background()
	before, err := w.platformSessions(ctx)
	if err != nil {
		return err
	}
	queued, err := w.e.Store.ListLogouts(ctx)
	if err != nil {
		return err
	}
	if err := run(); err != nil {
		return err
	}
	c := &endCheck{inScope: inScope}
	for _, ps := range before {
		if inScope(ps) {
			c.before = append(c.before, ps)
		}
	}
	old := map[string]bool{}
	for _, n := range queued {
		old[n.ID] = true
	}
	all, err := w.e.Store.ListLogouts(ctx)
	for _, n := range all {
		if !old[n.ID] {
			c.queued = append(c.queued, n)
		}
	}
	w.ended = c
	return err
}

// platformSessions lists the pupil's alive platform sessions: active OIDC
// tokens by platform, subject and login session, and the SAML SP's
// sessions for the pupil's NameID.
func (w *propWorld) platformSessions(ctx context.Context) ([]platformSession, error) {
	var out []platformSession
	toks, err := w.e.Store.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: w.e.Pupil.ID})
	if err != nil {
		return nil, err
	}
	for _, tk := range toks {
		ps := platformSession{tk.PlatformID, tk.Subject, tk.SessionRef}
		if !slices.Contains(out, ps) {
			out = append(out, ps)
		}
	}
	nameID := release.Pairwise(w.h.Secret, w.e.Pupil.ID, w.sp.EntityID)
	parts, err := w.e.Store.SAMLParticipantsByNameID(ctx, w.sp.Platform.ID, nameID)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		ps := platformSession{p.PlatformID, p.NameID, school.SAMLSessionRef(p.SessionID, p.PupilID)}
		if !slices.Contains(out, ps) {
			out = append(out, ps)
		}
	}
	return out, nil
}

// endInvariants checks the last ending event: nothing in its scope is
// alive, and each platform session alive in scope before has its notice.
func (w *propWorld) endInvariants(s step) error {
	c := w.ended
	if c == nil {
		return nil
	}
	after, err := w.platformSessions(context.Background())
	if err != nil {
		return err
	}
	for _, ps := range after {
		if c.inScope(ps) {
			return fmt.Errorf("%s: platform session %+v still alive", stepNames[s.kind], ps)
		}
	}
	w.endings++
	w.endedSessions += len(c.before)
	for _, ps := range c.before {
		if ps.platform == w.sp.Platform.ID {
			w.endedSAML++
		}
		if !slices.ContainsFunc(c.queued, func(n school.LogoutNotice) bool {
			return n.PlatformID == ps.platform && n.Subject == ps.subject && n.SessionRef == ps.sessionRef
		}) {
			return fmt.Errorf("%s: no logout notice for the platform session %+v (queued %+v)", stepNames[s.kind], ps, c.queued)
		}
	}
	return nil
}

// signInOIDC signs in at the OIDC platform and returns the names of the
// release claims in the ID token and the userinfo response together, or
// nil when ElevID refused (access_denied).
func (w *propWorld) signInOIDC(t *testing.T) ([]string, error) {
	ctx := context.Background()
	res := w.e.Authorize(t, w.b, w.rp)
	if res.Err == "access_denied" {
		return nil, nil
	}
	if res.Code == "" {
		return nil, fmt.Errorf("oidc sign-in: no code: %+v", res)
	}
	tok, err := w.rp.Exchange(ctx, res)
	if err != nil {
		if strings.Contains(err.Error(), "invalid_grant") {
			return nil, nil // consent changed between code and token: refused
		}
		return nil, err
	}
	idt, err := w.rp.Verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		return nil, err
	}
	got := []string{}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	known := oidc.KnownClaims()
	for k := range claims {
		if slices.Contains(known, k) {
			got = append(got, k)
		}
	}
	ui, err := w.rp.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	var uc map[string]any
	if err := ui.Claims(&uc); err != nil {
		return nil, err
	}
	for k := range uc {
		if slices.Contains(known, k) && !slices.Contains(got, k) {
			got = append(got, k)
		}
	}
	return got, nil
}

// signInSAML signs in at the SAML platform (SP-initiated, redirect
// binding) and returns the claim names of the assertion's attributes, or
// nil when ElevID refused.
func (w *propWorld) signInSAML(t *testing.T) ([]string, error) {
	authn, err := w.sp.MakeAuthenticationRequest(w.h.Server.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return nil, err
	}
	u, err := authn.Redirect("", w.sp.ServiceProvider)
	if err != nil {
		return nil, err
	}
	resp := w.h.Get(t, u.String(), w.sid)
	idptest.ReadAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("saml sso: %d", resp.StatusCode)
	}
	resp = w.h.Get(t, resp.Header.Get("Location"), w.sid)
	body := idptest.ReadAll(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/saml/refused?") {
		// Refused: the pupil sees why, with a signed refusal for the SP.
		resp = w.h.Get(t, loc, w.sid)
		body = idptest.ReadAll(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "saml-refused-form") {
			return nil, fmt.Errorf("saml refusal page: %d", resp.StatusCode)
		}
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("saml resume: %d %s", resp.StatusCode, regexp.MustCompile(`(?s)<main.*</main>`).FindString(body))
	}
	action, form := idptest.PostedForm(t, body)
	a, err := w.sp.ACS(t, action, form, authn.ID)
	if err != nil {
		return nil, fmt.Errorf("SP rejected the assertion: %w", err)
	}
	got := []string{}
	for friendly := range idptest.AttrValues(a) {
		if strings.HasPrefix(friendly, "name:") {
			continue
		}
		c, ok := samlCanonical[friendly]
		if !ok {
			return nil, fmt.Errorf("unknown SAML attribute %s", friendly)
		}
		got = append(got, c)
	}
	return got, nil
}

// invariants checks, after step s, that what the platforms received at
// the last sign-in, if s was one, is exactly what current consents cover
// for the platform and school according to the model, and nothing when
// the model gives nothing.
func (w *propWorld) invariants(s step) error {
	if err := w.endInvariants(s); err != nil {
		return err
	}
	if s.kind != stepSignInOIDC && s.kind != stepSignInSAML || (s.kind == stepSignInOIDC && w.quarantined) {
		return nil
	}
	ctx := context.Background()
	i := 0
	if s.kind == stepSignInSAML {
		i = 1
	}
	pf, err := w.e.Store.GetPlatform(ctx, w.platform(i).ID)
	if err != nil {
		return err
	}
	acts, err := w.e.Store.ListPlatformActivations(ctx, w.e.School.ID)
	if err != nil {
		return err
	}
	consents, err := w.e.Store.ListConsents(ctx, w.e.Pupil.ID)
	if err != nil {
		return err
	}
	activated := slices.ContainsFunc(acts, func(a school.PlatformActivation) bool { return a.PlatformID == pf.ID })
	want := idptest.ConsentModelCovered(w.rule, w.guardians, consents, pf, activated)
	if w.quarantined {
		want = nil // a quarantined pupil's releases stop
	}
	got := w.last[i]
	switch {
	case want == nil && got != nil:
		return fmt.Errorf("%s released %v although no current consent covers it (activated %t, consents %+v)", pf.Protocol, got, activated, consents)
	case want != nil && got == nil:
		return fmt.Errorf("%s refused although consents cover %v", pf.Protocol, want)
	}
	for _, name := range got {
		if !slices.Contains(want, name) {
			return fmt.Errorf("%s released %s; current consents cover %v (consents %+v)", pf.Protocol, name, want, consents)
		}
	}
	for _, name := range want {
		if !slices.Contains(got, name) {
			return fmt.Errorf("%s withheld %s that consents cover (got %v)", pf.Protocol, name, got)
		}
	}
	return nil
}
