package release_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestReleaseBuildersProperty drives random sequences of consent events (grant,
// deny and withdraw per platform, refuse one attribute, platform gains or
// loses an attribute, the school activates or deactivates a platform) and
// sign-ins, on both stores, and after every step checks the invariants:
// no release (the OIDC claims and the SAML attributes built from
// release.Compute, as the token endpoint, userinfo and the SSO endpoint
// build them) holds an attribute that a current consent of the pupil's
// guardians does not cover for that platform and school, by a model kept
// apart from the code under test.
//
// It works at the store and release-function level, not over HTTP; the
// end-access work extends step with ending events and invariants with
// token and logout checks.
//
// TestConsentProperty (package idp_test) drives the same kind of
// sequences with real sign-ins over HTTP; this one reaches many more
// sequences at the level of the release builders.
func TestReleaseBuildersProperty(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			st := openPropStore(t, kind)
			rng := rand.New(rand.NewPCG(13, 0))
			n := 300
			if kind == "postgres" {
				n = 60
			}
			for i := range n {
				runConsentSequence(t, st, rng, i)
			}
		})
	}
}

func openPropStore(t *testing.T, kind string) school.Store {
	ctx := context.Background()
	if kind == "sqlite" {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "prop.db"), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, err := postgres.Open(ctx, testenv.PostgresSchema(t, "prop"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// propAttrs are the attributes platforms gain and lose.
var propAttrs = []string{release.GivenName, release.FamilyName, release.Name, release.Groups, release.EPPN, release.SchoolCode}

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
	stepSignIn
	stepKinds
)

// step is one event of a sequence.
type step struct {
	kind     stepKind
	guardian int // index into the world's guardians
	platform int // index into the world's platforms
	attr     string
}

func (s step) String() string {
	return fmt.Sprintf("%d(g%d,p%d,%s)", s.kind, s.guardian, s.platform, s.attr)
}

// propWorld is one sequence's school, pupil, guardians and platforms.
type propWorld struct {
	st        school.Store
	school    school.School
	pupil     school.Pupil
	guardians []string
	platforms []school.Platform // [0] OIDC, [1] SAML
	rule      school.ConsentRule
}

func runConsentSequence(t *testing.T, st school.Store, rng *rand.Rand, n int) {
	ctx := context.Background()
	w := &propWorld{st: st, rule: []school.ConsentRule{school.ConsentAny, school.ConsentAll}[rng.IntN(2)]}
	var err error
	code := fmt.Sprintf("p%d-%s", n, school.NewID()[:6])
	if w.school, err = st.CreateSchool(ctx, school.School{Code: code, Name: "Skole", Domain: code + ".example.dk"}); err != nil {
		t.Fatal(err)
	}
	class, _ := st.CreateClass(ctx, school.Class{SchoolID: w.school.ID, Name: "7A"})
	for i := range 2 {
		g, err := st.CreateGuardian(ctx, school.Guardian{SchoolID: w.school.ID, Name: fmt.Sprint("G", i)})
		if err != nil {
			t.Fatal(err)
		}
		w.guardians = append(w.guardians, g.ID)
	}
	if w.pupil, err = st.CreatePupil(ctx, school.Pupil{SchoolID: w.school.ID, ExternalID: "dir-" + code, GivenName: "Ida", FamilyName: "Hansen",
		Status: school.PupilActive, ClassIDs: []string{class.ID}, GuardianIDs: w.guardians}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutEnrolment(ctx, school.Enrolment{PupilID: w.pupil.ID, State: school.EnrolmentConsented, Rule: w.rule}); err != nil {
		t.Fatal(err)
	}
	for i, proto := range []school.Protocol{school.ProtocolOIDC, school.ProtocolSAML} {
		pf, err := st.CreatePlatform(ctx, school.Platform{Name: fmt.Sprint("P", i), Protocol: proto, ClientID: code + fmt.Sprint("-pf", i),
			Attributes: grantsOf(propAttrs[:2+rng.IntN(3)])})
		if err != nil {
			t.Fatal(err)
		}
		w.platforms = append(w.platforms, pf)
	}
	var trail []step
	for range 8 + rng.IntN(16) {
		s := step{kind: stepKind(rng.IntN(int(stepKinds))), guardian: rng.IntN(2), platform: rng.IntN(2), attr: propAttrs[rng.IntN(len(propAttrs))]}
		trail = append(trail, s)
		if err := w.apply(ctx, s); err != nil {
			t.Fatalf("sequence %d, steps %v: %v", n, trail, err)
		}
		if err := w.invariants(ctx); err != nil {
			t.Fatalf("sequence %d (rule %s), steps %v: %v", n, w.rule, trail, err)
		}
	}
}

func grantsOf(names []string) []school.AttributeGrant {
	var out []school.AttributeGrant
	for _, n := range names {
		out = append(out, school.AttributeGrant{Name: n, JustificationDA: "da " + n, JustificationEN: "en " + n})
	}
	return out
}

// apply performs one step through the store, as the consent flow, the
// console and the sign-in endpoints do.
func (w *propWorld) apply(ctx context.Context, s step) error {
	st := w.st
	pf, err := st.GetPlatform(ctx, w.platforms[s.platform].ID)
	if err != nil {
		return err
	}
	g := w.guardians[s.guardian]
	mine := school.Consent{}
	cs, err := st.ListConsents(ctx, w.pupil.ID)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.GuardianID == g && c.PlatformID == pf.ID {
			mine = c
		}
	}
	set := func(c school.Consent) error {
		c.PupilID, c.GuardianID, c.PlatformID = w.pupil.ID, g, pf.ID
		_, err := st.SetConsent(ctx, c)
		return err
	}
	switch s.kind {
	case stepGrant: // the consent page: yes to what it shows
		return set(school.Consent{Decision: school.DecisionGranted, Attributes: pf.Attributes})
	case stepDeny:
		return set(school.Consent{Decision: school.DecisionDenied, Attributes: pf.Attributes})
	case stepWithdraw:
		if !mine.Granted() {
			return nil
		}
		return set(school.Consent{Decision: school.DecisionWithdrawn, Attributes: mine.Attributes})
	case stepRefuse: // a no to one attribute, the rest of the grant stands
		if !mine.Granted() {
			return nil
		}
		kept := slices.DeleteFunc(slices.Clone(mine.Attributes), func(a school.AttributeGrant) bool { return a.Name == s.attr })
		return set(school.Consent{Decision: school.DecisionGranted, Attributes: kept, Refused: append(slices.Clone(mine.Refused), s.attr)})
	case stepGain, stepLose:
		_, err := st.UpdatePlatform(ctx, pf.ID, func(p school.Platform) (school.Platform, error) {
			has := p.Allows(s.attr)
			if s.kind == stepGain && !has {
				p.Attributes = append(p.Attributes, grantsOf([]string{s.attr})...)
			}
			if s.kind == stepLose && has {
				p.Attributes = slices.DeleteFunc(p.Attributes, func(a school.AttributeGrant) bool { return a.Name == s.attr })
			}
			return p, nil
		})
		return err
	case stepActivate, stepDeactivate:
		_, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: w.school.ID, PlatformID: pf.ID, ActivatedBy: "prop"}, s.kind == stepActivate)
		return err
	case stepSignIn:
		return nil // every step is followed by sign-ins at both platforms (invariants)
	}
	return nil
}

// invariants signs the pupil in at every platform (the OIDC claims, as
// the ID token and userinfo carry them, and the SAML attributes) and
// checks that what went out is exactly what the model says current
// consents cover for the platform and school.
func (w *propWorld) invariants(ctx context.Context) error {
	profile, err := w.st.GetPupilProfile(ctx, w.pupil.ID)
	if err != nil {
		return err
	}
	acts, err := w.st.ListPlatformActivations(ctx, w.school.ID)
	if err != nil {
		return err
	}
	consents, err := w.st.ListConsents(ctx, w.pupil.ID)
	if err != nil {
		return err
	}
	for _, ref := range w.platforms {
		pf, err := w.st.GetPlatform(ctx, ref.ID)
		if err != nil {
			return err
		}
		want := idptest.ConsentModelCovered(w.rule, w.guardians, consents, pf, slices.ContainsFunc(acts, func(a school.PlatformActivation) bool { return a.PlatformID == pf.ID }))
		cs, err := w.st.ConsentState(ctx, w.pupil.ID, pf.ID)
		if err != nil {
			return err
		}
		rel, err := release.Compute(release.Input{Profile: profile, Platform: pf, State: cs, PairwiseSecret: []byte("0123456789abcdef0123456789abcdef"), Sector: pf.ClientID})
		if release.Refused(err) {
			if want != nil {
				return fmt.Errorf("platform %s refused (%v), model covers %v", pf.Name, err, want)
			}
			continue
		}
		if err != nil {
			return err
		}
		var got []string
		if pf.Protocol == school.ProtocolOIDC {
			for name := range oidc.Claims(rel, []string{"profile", "eduperson", "school", "groups"}) {
				got = append(got, name)
			}
		} else {
			_, names := saml.Attributes("https://idp", pf, rel)
			got = names
		}
		for _, name := range got {
			if !slices.Contains(want, name) {
				return fmt.Errorf("platform %s (%s) released %s; consents cover %v (consents %+v)", pf.Name, pf.Protocol, name, want, consents)
			}
		}
		for _, name := range want {
			if !slices.Contains(got, name) {
				return fmt.Errorf("platform %s (%s) withheld %s that consents cover (got %v)", pf.Name, pf.Protocol, name, got)
			}
		}
	}
	return nil
}
