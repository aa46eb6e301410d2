package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// testConsentAttributes: a consent covers exactly the attributes it
// records; a platform's later additions wait for the guardian; a refusal
// blocks one attribute under rule any; activation is per school; the
// consent state is one read.
func testConsentAttributes(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	g2 := must(st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, Name: "Far"}))
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.GuardianIDs = append(p.GuardianIDs, g2.ID)
		return p, nil
	}))
	must(st.PutEnrolment(ctx, school.Enrolment{PupilID: s.Pupil.ID, State: school.EnrolmentConsented, Rule: school.ConsentAny}))
	covered := func(want ...string) {
		t.Helper()
		pf := must(st.GetPlatform(ctx, s.Platform.ID))
		cs := must(st.ConsentState(ctx, s.Pupil.ID, pf.ID))
		if got := cs.Covered(pf); !slices.Equal(got, want) {
			t.Fatalf("covered = %v, want %v (state %+v)", got, want, cs)
		}
	}
	// A grant with no attributes named records the platform's current set.
	c := must(st.SetConsent(ctx, school.Consent{PupilID: s.Pupil.ID, GuardianID: s.Guardian.ID, PlatformID: s.Platform.ID, Decision: school.DecisionGranted}))
	if len(c.Attributes) != 1 || c.Attributes[0].Name != "given_name" || c.Attributes[0].JustificationEN == "" {
		t.Fatalf("recorded attributes = %+v", c.Attributes)
	}
	// Not activated for the school: nothing.
	if cs := must(st.ConsentState(ctx, s.Pupil.ID, s.Platform.ID)); cs.Activated || cs.CoversPlatform(s.Platform.ID) {
		t.Fatalf("not activated: %+v", cs)
	}
	covered()
	if !must(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.School.ID, PlatformID: s.Platform.ID, ActivatedBy: "t"}, true)) {
		t.Fatal("activation changed nothing")
	}
	if must(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.School.ID, PlatformID: s.Platform.ID, ActivatedBy: "t"}, true)) {
		t.Fatal("second activation reported a change")
	}
	covered("given_name")
	// The platform gains family_name: the old grant does not cover it.
	must(st.UpdatePlatform(ctx, s.Platform.ID, func(p school.Platform) (school.Platform, error) {
		p.Attributes = append(p.Attributes, school.AttributeGrant{Name: "family_name", JustificationDA: "efternavn", JustificationEN: "surname"})
		return p, nil
	}))
	covered("given_name")
	pf := must(st.GetPlatform(ctx, s.Platform.ID))
	if pend := school.Pending(pf, must(st.ListConsents(ctx, s.Pupil.ID)), s.Guardian.ID); len(pend) != 1 || pend[0].Name != "family_name" {
		t.Fatalf("pending = %+v", pend)
	}
	// The guardian approves the addition.
	must(st.SetConsent(ctx, school.Consent{PupilID: s.Pupil.ID, GuardianID: s.Guardian.ID, PlatformID: pf.ID, Decision: school.DecisionGranted, Attributes: pf.Attributes}))
	covered("given_name", "family_name")
	// The other guardian refuses family_name only: under rule any it is
	// blocked, given_name stands.
	must(st.SetConsent(ctx, school.Consent{PupilID: s.Pupil.ID, GuardianID: g2.ID, PlatformID: pf.ID, Decision: school.DecisionGranted,
		Attributes: pf.Attributes[:1], Refused: []string{"family_name"}}))
	covered("given_name")
	got := must(st.ListConsents(ctx, s.Pupil.ID))
	if len(got) != 2 || !slices.Contains(got[1].Refused, "family_name") && !slices.Contains(got[0].Refused, "family_name") {
		t.Fatalf("consents = %+v", got)
	}
	// Removing an attribute from the platform stops it at once.
	must(st.UpdatePlatform(ctx, s.Platform.ID, func(p school.Platform) (school.Platform, error) {
		p.Attributes = p.Attributes[1:]
		return p, nil
	}))
	covered()
	// Deactivation: nothing, whatever the consent.
	if !must(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.School.ID, PlatformID: s.Platform.ID}, false)) {
		t.Fatal("deactivation changed nothing")
	}
	if must(st.ReleaseAllowed(ctx, s.Pupil.ID, s.Platform.ID)) {
		t.Fatal("released to a deactivated platform")
	}
	if acts := must(st.ListPlatformActivations(ctx, s.School.ID)); len(acts) != 0 {
		t.Fatalf("activations = %+v", acts)
	}
	if _, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.School.ID, PlatformID: "nope"}, true); err == nil {
		t.Fatal("activated an unknown platform")
	}
	// The consent state of an unknown pupil is ErrNotFound.
	_, err := st.ConsentState(ctx, "nobody", s.Platform.ID)
	wantErr(t, err, school.ErrNotFound)
}

// testReleaseInputs: ReleaseInputs reads in one query exactly what
// GetPupilProfile and ConsentState read in two, however the joins
// multiply rows (two classes × two guardians, who decided on two
// platforms: only the decisions about the platform asked about are read),
// and ErrNotFound for an unknown pupil.
func testReleaseInputs(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	other := must(st.CreatePlatform(ctx, school.Platform{Name: "Ordbogen", Protocol: school.ProtocolOIDC, ClientID: "ordbogen",
		Attributes: []school.AttributeGrant{{Name: "given_name", JustificationDA: "navn", JustificationEN: "name"}}}))
	kor := must(st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: "Kor"}))
	g2 := must(st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, Name: "Far"}))
	must(st.UpdatePupil(ctx, s.Pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.GuardianIDs = append(p.GuardianIDs, g2.ID)
		p.ClassIDs = append(p.ClassIDs, kor.ID)
		return p, nil
	}))
	must(st.PutEnrolment(ctx, school.Enrolment{PupilID: s.Pupil.ID, State: school.EnrolmentEnrolled, Rule: school.ConsentAll}))
	for _, g := range []string{s.Guardian.ID, g2.ID} {
		for _, pf := range []string{s.Platform.ID, other.ID} {
			must(st.SetConsent(ctx, school.Consent{PupilID: s.Pupil.ID, GuardianID: g, PlatformID: pf, Decision: school.DecisionGranted}))
		}
	}
	must(st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.School.ID, PlatformID: s.Platform.ID, ActivatedBy: "t"}, true))
	noClass := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "p-none", GivenName: "Nor", Status: school.PupilActive}))
	for _, c := range []struct{ pupil, platform string }{
		{s.Pupil.ID, s.Platform.ID}, {s.Pupil.ID, other.ID}, {s.Pupil.ID, "nope"}, {noClass.ID, s.Platform.ID},
	} {
		prof, cs := must(st.GetPupilProfile(ctx, c.pupil)), must(st.ConsentState(ctx, c.pupil, c.platform))
		gotProf, gotCS, err := st.ReleaseInputs(ctx, c.pupil, c.platform)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotProf, prof) {
			t.Fatalf("ReleaseInputs(%s) profile = %+v\nwant %+v", c.platform, gotProf, prof)
		}
		sortConsents := func(l []school.Consent) {
			slices.SortFunc(l, func(a, b school.Consent) int { return strings.Compare(a.ID, b.ID) })
		}
		sortConsents(gotCS.Consents)
		sortConsents(cs.Consents)
		slices.Sort(gotCS.Guardians)
		slices.Sort(cs.Guardians)
		if !reflect.DeepEqual(gotCS, cs) {
			t.Fatalf("ReleaseInputs(%s) state = %+v\nwant %+v", c.platform, gotCS, cs)
		}
		// Only the decisions about the platform asked about are read: one
		// row per guardian, not one per guardian and platform.
		want := 0
		if c.pupil == s.Pupil.ID && c.platform != "nope" {
			want = 2
		}
		if len(cs.Consents) != want || slices.ContainsFunc(cs.Consents, func(x school.Consent) bool { return x.PlatformID != c.platform }) {
			t.Fatalf("ConsentState(%s) read decisions %+v, want the %d about that platform", c.platform, cs.Consents, want)
		}
	}
	if prof, _ := st.GetPupilProfile(ctx, s.Pupil.ID); len(prof.Classes) != 2 {
		t.Fatalf("the pupil is in %d classes, want 2", len(prof.Classes))
	}
	_, _, err := st.ReleaseInputs(ctx, "nobody", s.Platform.ID)
	wantErr(t, err, school.ErrNotFound)

	// TokenReleaseInputs: the token as GetOIDCToken reads it and the
	// release inputs of its pupil for its platform, in one statement.
	exp := h.Clock.Now().Add(time.Hour)
	for _, c := range []struct{ pupil, platform string }{{s.Pupil.ID, s.Platform.ID}, {s.Pupil.ID, other.ID}, {noClass.ID, other.ID}} {
		tok := must(st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenAccess, PlatformID: c.platform, PupilID: c.pupil,
			Subject: "sub-" + c.platform, Scopes: []string{"openid", "profile"}, AMR: []string{"hwk"}, ExpiresAt: exp, SessionRef: "sess"}))
		gotTok, gotProf, gotCS, err := st.TokenReleaseInputs(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantTok, prof, cs := must(st.GetOIDCToken(ctx, tok.ID)), must(st.GetPupilProfile(ctx, c.pupil)), must(st.ConsentState(ctx, c.pupil, c.platform))
		slices.SortFunc(gotCS.Consents, func(a, b school.Consent) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(cs.Consents, func(a, b school.Consent) int { return strings.Compare(a.ID, b.ID) })
		slices.Sort(gotCS.Guardians)
		slices.Sort(cs.Guardians)
		if !reflect.DeepEqual(gotTok, wantTok) || !reflect.DeepEqual(gotProf, prof) || !reflect.DeepEqual(gotCS, cs) {
			t.Fatalf("TokenReleaseInputs(%s/%s) =\n%+v\n%+v\n%+v\nwant\n%+v\n%+v\n%+v", c.pupil, c.platform, gotTok, gotProf, gotCS, wantTok, prof, cs)
		}
	}
	_, _, _, err = st.TokenReleaseInputs(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)

	// PasskeyLoginConsent: PasskeyLogin's pupil and credential and
	// ConsentState's state, in one statement.
	handles := map[string][]byte{}
	for _, p := range []string{s.Pupil.ID, noClass.ID} {
		handles[p] = must(st.UserHandle(ctx, school.PupilOwner(p)))
		must(st.AddCredential(ctx, school.Credential{ID: []byte("cred-login-" + p), Owner: school.PupilOwner(p), SchoolID: s.School.ID,
			PublicKey: []byte("pk"), AttestationFormat: "none", AAGUID: make([]byte, 16), Transports: []string{"internal"}, Label: "iPad"}))
	}
	sortCS := func(cs *school.ConsentState) {
		slices.SortFunc(cs.Consents, func(a, b school.Consent) int { return strings.Compare(a.ID, b.ID) })
		slices.Sort(cs.Guardians)
	}
	for _, c := range []struct{ pupil, platform string }{
		{s.Pupil.ID, s.Platform.ID}, {s.Pupil.ID, other.ID}, {s.Pupil.ID, "nope"}, {noClass.ID, s.Platform.ID},
	} {
		cred := []byte("cred-login-" + c.pupil)
		gotP, gotC, gotCS, err := st.PasskeyLoginConsent(ctx, handles[c.pupil], cred, c.platform)
		if err != nil {
			t.Fatal(err)
		}
		wantP, wantC, err := st.PasskeyLogin(ctx, handles[c.pupil], cred)
		if err != nil {
			t.Fatal(err)
		}
		wantCS := must(st.ConsentState(ctx, c.pupil, c.platform))
		sortCS(&gotCS)
		sortCS(&wantCS)
		if !reflect.DeepEqual(gotP, wantP) || !reflect.DeepEqual(gotC, wantC) || !reflect.DeepEqual(gotCS, wantCS) {
			t.Fatalf("PasskeyLoginConsent(%s, %s) =\n%+v\n%+v\n%+v\nwant\n%+v\n%+v\n%+v", c.pupil, c.platform, gotP, gotC, gotCS, wantP, wantC, wantCS)
		}
	}
	for _, c := range []struct {
		name         string
		handle, cred []byte
	}{
		{"unknown handle", []byte("nope"), []byte("cred-login-" + s.Pupil.ID)},
		{"unknown credential", handles[s.Pupil.ID], []byte("nope")},
		{"another pupil's credential", handles[s.Pupil.ID], []byte("cred-login-" + noClass.ID)},
	} {
		_, _, _, err := st.PasskeyLoginConsent(ctx, c.handle, c.cred, s.Platform.ID)
		if !errors.Is(err, school.ErrNotFound) {
			t.Fatalf("PasskeyLoginConsent with %s: %v, want ErrNotFound", c.name, err)
		}
	}

	// TouchSessionConsent: TouchSession's session and ConsentState's
	// state of its subject, in one statement; the zero state when the
	// subject is no pupil.
	session := func(kind school.SessionKind, subject string) school.Session {
		return must(st.CreateSession(ctx, school.Session{Kind: kind, SubjectID: subject, SchoolID: s.School.ID,
			ExpiresAt: h.Clock.Now().Add(8 * time.Hour), IdleTimeout: time.Hour, AMR: []string{"hwk"}, ACR: "passkey", CredentialID: []byte("c")}))
	}
	sortState := func(cs *school.ConsentState) {
		slices.SortFunc(cs.Consents, func(a, b school.Consent) int { return strings.Compare(a.ID, b.ID) })
		slices.Sort(cs.Guardians)
	}
	for _, c := range []struct {
		kind              school.SessionKind
		subject, platform string
	}{
		{school.SessionPupil, s.Pupil.ID, s.Platform.ID}, {school.SessionPupil, s.Pupil.ID, other.ID}, {school.SessionPupil, s.Pupil.ID, "nope"},
		{school.SessionPupil, noClass.ID, s.Platform.ID}, {school.SessionStaff, "staff-1", s.Platform.ID},
	} {
		ss := session(c.kind, c.subject)
		h.Clock.Advance(2 * time.Minute) // past the touch interval: the read records the use
		gotSS, gotCS, err := st.TouchSessionConsent(ctx, ss.ID, c.platform)
		if err != nil {
			t.Fatal(err)
		}
		wantSS := must(st.TouchSession(ctx, ss.ID))
		var wantCS school.ConsentState
		if c.kind == school.SessionPupil {
			wantCS = must(st.ConsentState(ctx, c.subject, c.platform))
		}
		sortState(&gotCS)
		sortState(&wantCS)
		if !reflect.DeepEqual(gotSS, wantSS) || !reflect.DeepEqual(gotCS, wantCS) || !gotSS.LastSeenAt.Equal(h.Clock.Now()) {
			t.Fatalf("TouchSessionConsent(%s, %s) =\n%+v\n%+v\nwant\n%+v\n%+v", c.subject, c.platform, gotSS, gotCS, wantSS, wantCS)
		}
	}
	// A withdrawal shows on the next read.
	ss := session(school.SessionPupil, s.Pupil.ID)
	if _, cs, err := st.TouchSessionConsent(ctx, ss.ID, other.ID); err != nil || len(cs.Consents) != 2 || !cs.Consents[0].Granted() || !cs.Consents[1].Granted() {
		t.Fatalf("before the withdrawal: %+v, %v", cs, err)
	}
	must(st.SetConsent(ctx, school.Consent{PupilID: s.Pupil.ID, GuardianID: s.Guardian.ID, PlatformID: other.ID, Decision: school.DecisionWithdrawn}))
	_, cs, err := st.TouchSessionConsent(ctx, ss.ID, other.ID)
	if err != nil || !slices.ContainsFunc(cs.Consents, func(c school.Consent) bool { return c.GuardianID == s.Guardian.ID && !c.Granted() }) {
		t.Fatalf("after the withdrawal: %+v, %v", cs, err)
	}
	// A pupil erased under a live session: the zero state.
	if err := st.DeletePupil(ctx, noClass.ID); err != nil {
		t.Fatal(err)
	}
	gone := session(school.SessionPupil, noClass.ID)
	if _, cs, err := st.TouchSessionConsent(ctx, gone.ID, s.Platform.ID); err != nil || !reflect.DeepEqual(cs, school.ConsentState{}) {
		t.Fatalf("the session of an erased pupil: %+v, %v", cs, err)
	}
	// Sessions that are not valid: as TouchSession.
	_, _, err = st.TouchSessionConsent(ctx, "nope", s.Platform.ID)
	wantErr(t, err, school.ErrNotFound)
	must(st.RevokeSessions(ctx, s.Pupil.ID, "test"))
	_, _, err = st.TouchSessionConsent(ctx, ss.ID, s.Platform.ID)
	wantErr(t, err, school.ErrNotFound)
	late := session(school.SessionStaff, "staff-2")
	h.Clock.Advance(2 * time.Hour) // past the idle timeout
	_, _, err = st.TouchSessionConsent(ctx, late.ID, s.Platform.ID)
	wantErr(t, err, school.ErrExpired)
}
