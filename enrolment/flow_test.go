package enrolment_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestPolicyAssess(t *testing.T) {
	now := day(2026, 3, 2)
	def := enrolment.DefaultPolicy()
	allowAll := def
	allowAll.OutsideRange, allowAll.Guardians = "allow", "all"
	young := def
	young.ConsentRequiredUnder = 13
	for _, tc := range []struct {
		name    string
		p       enrolment.Policy
		born    time.Time
		wantErr error
		age     int
		flagged bool
		rule    school.ConsentRule
	}{
		{"no birth date", def, time.Time{}, enrolment.ErrNoBirthDate, 0, false, ""},
		{"12, any guardian", def, day(2013, 6, 1), nil, 12, false, school.ConsentAny},
		{"birthday today", def, day(2011, 3, 2), nil, 15, false, school.ConsentNone},
		{"day before 15th birthday", def, day(2011, 3, 3), nil, 14, false, school.ConsentAny},
		{"11, denied", def, day(2014, 6, 1), enrolment.ErrOutsideAge, 11, false, ""},
		{"16, denied", def, day(2009, 6, 1), enrolment.ErrOutsideAge, 16, false, ""},
		{"11 allowed, flagged, all guardians", allowAll, day(2014, 6, 1), nil, 11, true, school.ConsentAll},
		{"16 allowed, flagged, no consent", allowAll, day(2009, 6, 1), nil, 16, true, school.ConsentNone},
		{"12 under 13 always needs consent", young, day(2013, 6, 1), nil, 12, false, school.ConsentAny},
		{"13 with consent_required_under 13", young, day(2012, 6, 1), nil, 13, false, school.ConsentNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.p.Assess(school.Pupil{BirthDate: tc.born}, now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (a.Age != tc.age || a.Flagged != tc.flagged || a.Rule != tc.rule) {
				t.Fatalf("Assess = %+v, want age %d flagged %t rule %s", a, tc.age, tc.flagged, tc.rule)
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	legal := map[[2]school.EnrolmentState]bool{
		{school.EnrolmentRequested, school.EnrolmentAwaitingConsent}:       true,
		{school.EnrolmentAwaitingConsent, school.EnrolmentConsented}:       true,
		{school.EnrolmentAwaitingConsent, school.EnrolmentDenied}:          true,
		{school.EnrolmentAwaitingConsent, school.EnrolmentExpired}:         true,
		{school.EnrolmentConsented, school.EnrolmentCodeIssued}:            true,
		{school.EnrolmentCodeIssued, school.EnrolmentEnrolled}:             true,
		{school.EnrolmentEnrolled, school.EnrolmentWithdrawn}:              true,
		{school.EnrolmentRequested, school.EnrolmentCodeIssued}:            false,
		{school.EnrolmentAwaitingConsent, school.EnrolmentCodeIssued}:      false,
		{school.EnrolmentDenied, school.EnrolmentConsented}:                false,
		{school.EnrolmentExpired, school.EnrolmentConsented}:               false,
		{school.EnrolmentWithdrawn, school.EnrolmentEnrolled}:              false,
		{school.EnrolmentConsented, school.EnrolmentEnrolled}:              false,
		{school.EnrolmentAwaitingConsent, school.EnrolmentAwaitingConsent}: false,
	}
	for mv, want := range legal {
		if got := enrolment.CanMove(mv[0], mv[1]); got != want {
			t.Errorf("CanMove(%s, %s) = %v", mv[0], mv[1], got)
		}
	}
}

// noRequests is a ConsentRequester that records who was asked.
type noRequests struct{ asked []string }

func (n *noRequests) RequestConsent(_ context.Context, _ school.Queries, r enrolment.ConsentRequest) error {
	for _, g := range r.Guardians {
		n.asked = append(n.asked, g.ID)
	}
	return nil
}

func TestStart(t *testing.T) {
	ctx := context.Background()
	now := day(2026, 3, 2).Add(9 * time.Hour)
	clock := func() time.Time { return now }
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "e.db"), sqlstore.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sch, _ := st.CreateSchool(ctx, school.School{Code: "s1", Name: "S", Domain: "s.example.dk"})
	other, _ := st.CreateSchool(ctx, school.School{Code: "s2", Name: "T", Domain: "t.example.dk"})
	cls, _ := st.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "7A"})
	cls2, _ := st.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "7B"})
	g, _ := st.CreateGuardian(ctx, school.Guardian{SchoolID: sch.ID, Email: "g@example.dk"})
	gNoMail, _ := st.CreateGuardian(ctx, school.Guardian{SchoolID: sch.ID})
	mk := func(name string, born time.Time, class string, guardians ...string) school.Pupil {
		p, err := st.CreatePupil(ctx, school.Pupil{SchoolID: sch.ID, GivenName: name, BirthDate: born, Status: school.PupilActive, ClassIDs: []string{class}, GuardianIDs: guardians})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := mk("ok", day(2013, 1, 1), cls.ID, g.ID)
	noDOB := mk("nodob", time.Time{}, cls.ID, g.ID)
	tooYoung := mk("young", day(2016, 1, 1), cls.ID, g.ID)
	noGuardian := mk("nog", day(2013, 1, 1), cls.ID, gNoMail.ID)
	old := mk("old", day(2010, 6, 1), cls.ID)
	otherClass := mk("other", day(2013, 1, 1), cls2.ID, g.ID)
	foreign, _ := st.CreatePupil(ctx, school.Pupil{SchoolID: other.ID, GivenName: "f", BirthDate: day(2013, 1, 1), Status: school.PupilActive})

	req := &noRequests{}
	flows, err := enrolment.NewFlows(enrolment.FlowOptions{Store: st, Sealer: testSealer, Requester: req, Now: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	teacher := enrolment.Actor{ID: "t1", Role: school.RoleTeacher, SchoolID: sch.ID, ClassIDs: []string{cls.ID}}
	res, err := flows.Start(ctx, teacher, []string{ok.ID, noDOB.ID, tooYoung.ID, noGuardian.ID, old.ID, otherClass.ID, foreign.ID, "missing"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state school.EnrolmentState
		err   error
	}{
		{school.EnrolmentAwaitingConsent, nil},
		{"", enrolment.ErrNoBirthDate},
		{"", enrolment.ErrOutsideAge},
		{"", enrolment.ErrNoGuardian},
		{school.EnrolmentConsented, nil}, // 15: no guardian consent needed
		{"", school.ErrNotFound},
		{"", school.ErrNotFound},
		{"", school.ErrNotFound},
	}
	for i, w := range want {
		if res[i].State != w.state || !errors.Is(res[i].Err, w.err) {
			t.Errorf("pupil %d: %+v, want %s / %v", i, res[i], w.state, w.err)
		}
	}
	if len(req.asked) != 1 || req.asked[0] != g.ID {
		t.Fatalf("asked %v", req.asked)
	}
	// Starting again leaves a running flow alone.
	res, _ = flows.Start(ctx, teacher, []string{ok.ID})
	if !res[0].Already || len(req.asked) != 1 {
		t.Fatalf("restart of a running flow: %+v", res[0])
	}
	// Illegal moves are refused.
	err = st.InTx(ctx, func(q school.Queries) error {
		_, err := enrolment.Move(ctx, q, teacher, ok.ID, school.EnrolmentEnrolled, now)
		return err
	})
	if !errors.Is(err, enrolment.ErrTransition) {
		t.Fatalf("illegal move: %v", err)
	}
	// Expiry applies lazily; an expired flow restarts.
	now = now.Add(8 * 24 * time.Hour)
	if e, _ := flows.Get(ctx, ok.ID); e.State != school.EnrolmentExpired || e.Valid(now) {
		t.Fatalf("after expiry: %+v", e)
	}
	res, _ = flows.Start(ctx, teacher, []string{ok.ID})
	if res[0].State != school.EnrolmentAwaitingConsent || len(req.asked) != 2 {
		t.Fatalf("restart after expiry: %+v", res[0])
	}
	// A whole class.
	admin := enrolment.Actor{ID: "a1", Role: school.RoleSchoolAdmin, SchoolID: sch.ID}
	res, err = flows.StartClass(ctx, admin, sch.ID, cls2.ID)
	if err != nil || len(res) != 1 || res[0].State != school.EnrolmentAwaitingConsent {
		t.Fatalf("class start: %+v %v", res, err)
	}
	// Audit entries carry no personal data.
	entries, _ := st.ListAudit(ctx, school.AuditFilter{SchoolID: sch.ID, Limit: 100})
	if len(entries) == 0 {
		t.Fatal("no audit entries")
	}
	if err := st.VerifyAudit(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
}
