package idp_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp"
	"github.com/elevid/elevid/school"
)

var (
	consentPropN    = flag.Int("consentprop.n", 200, "sequences per store in TestConsentProperty")
	consentPropSeed = flag.Uint64("consentprop.seed", 13, "seed of TestConsentProperty")
)

// propAttrs are the attributes platforms gain and lose in the property
// test: each is reachable by the RP's scopes and has a SAML attribute.
var propAttrs = []string{idp.ClaimGivenName, idp.ClaimFamilyName, idp.ClaimName, idp.ClaimGroups, idp.ClaimEPPN, idp.ClaimSchoolCode}

// samlCanonical maps the SAML FriendlyNames ElevID sends to the claim names.
var samlCanonical = map[string]string{
	"displayName": idp.ClaimName, "givenName": idp.ClaimGivenName, "sn": idp.ClaimFamilyName, "eduPersonPrincipalName": idp.ClaimEPPN,
	"eduPersonScopedAffiliation": idp.ClaimAffiliation, "schacHomeOrganization": idp.ClaimHomeOrg, "schoolCode": idp.ClaimSchoolCode, "isMemberOf": idp.ClaimGroups,
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
// To add an event (the ending events: quarantine, passkey reset, logout,
// expiry), add a stepKind, its case in propWorld.apply, and its checks in
// propWorld.invariants.
func TestConsentProperty(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			w := newPropWorld(t, pg)
			rng := rand.New(rand.NewPCG(*consentPropSeed, 1))
			for i := range *consentPropN {
				w.sequence(t, rng, i)
			}
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
	stepKinds
)

var stepNames = []string{"grant", "deny", "withdraw", "refuse", "gain", "lose", "activate", "deactivate", "oidc", "saml"}

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
	e         *oidcEnv
	h         *harness
	rp        *testRP
	sp        *testSP
	b         *browser
	sid       string
	guardians []string
	rule      school.ConsentRule
	// last is what the last sign-in at each platform released (claim
	// names), or nil when it was refused.
	last [2][]string
}

func newPropWorld(t *testing.T, pg bool) *propWorld {
	ctx := context.Background()
	e := newOIDCEnvOn(t, pg, idp.KeyPolicy{})
	w := &propWorld{e: e, b: newBrowser()}
	g2, err := e.st.CreateGuardian(ctx, school.Guardian{SchoolID: e.school.ID, Name: "Far"})
	if err != nil {
		t.Fatal(err)
	}
	pupil, err := e.st.UpdatePupil(ctx, e.pupil.ID, func(p school.Pupil) (school.Pupil, error) {
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
	w.rp = e.newRP(t, "propplatform", rpOptions{attrs: grants, scopes: []string{"openid", "profile", "eduperson", "school", "groups"}})
	w.h = newHarnessOn(t, e.st, e.school, pupil)
	w.sp = w.h.newSP(t, spOptions{entityID: "https://prop-sp.example/saml/metadata", attrs: propAttrs})
	w.sid = w.h.sessions.login(pupil.ID)
	return w
}

func (w *propWorld) platform(i int) school.Platform {
	if i == 0 {
		return w.rp.platform
	}
	return w.sp.platform
}

// sequence resets the world and runs one random sequence.
func (w *propWorld) sequence(t *testing.T, rng *rand.Rand, n int) {
	ctx := context.Background()
	st := w.e.st
	if _, err := st.ClearConsents(ctx, w.e.pupil.ID); err != nil {
		t.Fatal(err)
	}
	w.rule = []school.ConsentRule{school.ConsentAny, school.ConsentAll}[rng.IntN(2)]
	if _, err := st.PutEnrolment(ctx, school.Enrolment{PupilID: w.e.pupil.ID, State: school.EnrolmentEnrolled, Rule: w.rule}); err != nil {
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
		if _, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: w.e.school.ID, PlatformID: pf.ID, ActivatedBy: "prop"}, rng.IntN(4) != 0); err != nil {
			t.Fatal(err)
		}
	}
	var trail []step
	for range 6 + rng.IntN(10) {
		s := step{kind: stepKind(rng.IntN(int(stepKinds))), guardian: rng.IntN(2), platform: rng.IntN(2), attr: propAttrs[rng.IntN(len(propAttrs))]}
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
	st := w.e.st
	pf, err := st.GetPlatform(ctx, w.platform(s.platform).ID)
	if err != nil {
		return err
	}
	g := w.guardians[s.guardian]
	var mine school.Consent
	cs, err := st.ListConsents(ctx, w.e.pupil.ID)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.GuardianID == g && c.PlatformID == pf.ID {
			mine = c
		}
	}
	set := func(c school.Consent) error {
		c.PupilID, c.GuardianID, c.PlatformID = w.e.pupil.ID, g, pf.ID
		_, err := st.SetConsent(ctx, c)
		return err
	}
	switch s.kind {
	case stepGrant:
		return set(school.Consent{Decision: school.DecisionGranted, Attributes: pf.Attributes})
	case stepDeny:
		return set(school.Consent{Decision: school.DecisionDenied, Attributes: pf.Attributes})
	case stepWithdraw:
		if !mine.Granted() {
			return nil
		}
		return set(school.Consent{Decision: school.DecisionWithdrawn, Attributes: mine.Attributes})
	case stepRefuse:
		if !mine.Granted() {
			return nil
		}
		kept := slices.DeleteFunc(slices.Clone(mine.Attributes), func(a school.AttributeGrant) bool { return a.Name == s.attr })
		return set(school.Consent{Decision: school.DecisionGranted, Attributes: kept, Refused: append(slices.Clone(mine.Refused), s.attr)})
	case stepGain, stepLose:
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
	case stepActivate, stepDeactivate:
		_, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: w.e.school.ID, PlatformID: pf.ID, ActivatedBy: "prop"}, s.kind == stepActivate)
		return err
	case stepSignInOIDC:
		w.last[0], err = w.signInOIDC(t)
		return err
	case stepSignInSAML:
		w.last[1], err = w.signInSAML(t)
		return err
	}
	return nil
}

// signInOIDC signs in at the OIDC platform and returns the names of the
// release claims in the ID token and the userinfo response together, or
// nil when ElevID refused (access_denied).
func (w *propWorld) signInOIDC(t *testing.T) ([]string, error) {
	ctx := context.Background()
	res := w.e.authorize(t, w.b, w.rp)
	if res.err == "access_denied" {
		return nil, nil
	}
	if res.code == "" {
		return nil, fmt.Errorf("oidc sign-in: no code: %+v", res)
	}
	tok, err := w.rp.exchange(ctx, res)
	if err != nil {
		if strings.Contains(err.Error(), "invalid_grant") {
			return nil, nil // consent changed between code and token: refused
		}
		return nil, err
	}
	idt, err := w.rp.verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		return nil, err
	}
	got := []string{}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	known := idp.KnownClaims()
	for k := range claims {
		if slices.Contains(known, k) {
			got = append(got, k)
		}
	}
	ui, err := w.rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
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
	authn, err := w.sp.MakeAuthenticationRequest(w.h.srv.URL+"/saml/sso", saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return nil, err
	}
	u, err := authn.Redirect("", w.sp.ServiceProvider)
	if err != nil {
		return nil, err
	}
	resp := w.h.get(t, u.String(), w.sid)
	readAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("saml sso: %d", resp.StatusCode)
	}
	resp = w.h.get(t, resp.Header.Get("Location"), w.sid)
	body := readAll(t, resp)
	if resp.StatusCode == http.StatusForbidden {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("saml resume: %d", resp.StatusCode)
	}
	action, form := postedForm(t, body)
	a, err := w.sp.acs(t, action, form, authn.ID)
	if err != nil {
		return nil, fmt.Errorf("SP rejected the assertion: %w", err)
	}
	got := []string{}
	for friendly := range attrValues(a) {
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
	if s.kind != stepSignInOIDC && s.kind != stepSignInSAML {
		return nil
	}
	ctx := context.Background()
	i := 0
	if s.kind == stepSignInSAML {
		i = 1
	}
	pf, err := w.e.st.GetPlatform(ctx, w.platform(i).ID)
	if err != nil {
		return err
	}
	acts, err := w.e.st.ListPlatformActivations(ctx, w.e.school.ID)
	if err != nil {
		return err
	}
	consents, err := w.e.st.ListConsents(ctx, w.e.pupil.ID)
	if err != nil {
		return err
	}
	activated := slices.ContainsFunc(acts, func(a school.PlatformActivation) bool { return a.PlatformID == pf.ID })
	want := idp.ConsentModelCovered(w.rule, w.guardians, consents, pf, activated)
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
