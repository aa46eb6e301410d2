package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// must returns v, or panics on err: the suite treats an unexpected error
// from a call that must succeed as a broken store (the test binary reports
// the panic with its stack).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("storetest: unexpected error: %v", err))
	}
	return v
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

// Seed is a small school used by many tests.
type Seed struct {
	School    school.School
	Class     school.Class
	Pupil     school.Pupil
	Guardian  school.Guardian
	Platform  school.Platform
	OtherSchl school.School
}

// NewSeed creates a school "s1" with one class, one guardian, one pupil in
// both, a platform, and a second school "s2".
func NewSeed(t *testing.T, st school.Store) Seed {
	t.Helper()
	ctx := context.Background()
	var s Seed
	s.School = must(st.CreateSchool(ctx, school.School{Code: "s1", Name: "Skole 1", Domain: "s1.example.dk"}))
	s.OtherSchl = must(st.CreateSchool(ctx, school.School{Code: "s2", Name: "Skole 2", Domain: "s2.example.dk"}))
	s.Class = must(st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, ExternalID: "c-7a", Name: "7A"}))
	s.Guardian = must(st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, ExternalID: "g-1", Name: "Mor Hansen", Email: "mor@example.dk"}))
	s.Pupil = must(st.CreatePupil(ctx, school.Pupil{
		SchoolID: s.School.ID, ExternalID: "p-1", GivenName: "Ida", FamilyName: "Hansen",
		BirthDate: time.Date(2012, 5, 17, 0, 0, 0, 0, time.UTC),
		ClassIDs:  []string{s.Class.ID}, GuardianIDs: []string{s.Guardian.ID},
	}))
	s.Platform = must(st.CreatePlatform(ctx, school.Platform{
		Name: "MatematikFessor", Protocol: school.ProtocolOIDC, ClientID: "mf",
		Attributes: []school.AttributeGrant{{Name: "given_name", JustificationDA: "Shown to the teacher", JustificationEN: "Shown to the teacher"}},
	}))
	return s
}

func testSchools(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	a := must(st.CreateSchool(ctx, school.School{Code: "alpha", Name: "Alpha Skole", Domain: "alpha.example.dk"}))
	if a.ID == "" || !a.CreatedAt.Equal(h.Clock.Now()) {
		t.Fatalf("created school = %+v", a)
	}
	_, err := st.CreateSchool(ctx, school.School{Code: "alpha", Name: "Again", Domain: "x.example.dk"})
	wantErr(t, err, school.ErrConflict)
	_, err = st.CreateSchool(ctx, school.School{Code: "Bad Code", Name: "x", Domain: "x.example.dk"})
	wantErr(t, err, school.ErrInvalid)
	_, err = st.CreateSchool(ctx, school.School{Code: "ok", Name: "x", Domain: "not a domain"})
	wantErr(t, err, school.ErrInvalid)

	got := must(st.GetSchool(ctx, a.ID))
	if got != a {
		t.Fatalf("GetSchool = %+v, want %+v", got, a)
	}
	got = must(st.SchoolByCode(ctx, "alpha"))
	if got.ID != a.ID {
		t.Fatalf("SchoolByCode = %+v", got)
	}
	_, err = st.GetSchool(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.SchoolByCode(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)

	must(st.CreateSchool(ctx, school.School{Code: "beta", Name: "Beta", Domain: "beta.example.dk"}))
	list := must(st.ListSchools(ctx))
	if len(list) != 2 || list[0].Code != "alpha" || list[1].Code != "beta" {
		t.Fatalf("ListSchools = %+v", list)
	}

	up := must(st.UpdateSchool(ctx, a.ID, func(s school.School) (school.School, error) {
		s.Name = "Alpha Skolen"
		s.ID = "ignored"
		return s, nil
	}))
	if up.Name != "Alpha Skolen" || up.ID != a.ID || must(st.GetSchool(ctx, a.ID)).Name != "Alpha Skolen" {
		t.Fatalf("UpdateSchool = %+v", up)
	}
	boom := errors.New("boom")
	_, err = st.UpdateSchool(ctx, a.ID, func(s school.School) (school.School, error) { s.Name = "changed"; return s, boom })
	wantErr(t, err, boom)
	if must(st.GetSchool(ctx, a.ID)).Name != "Alpha Skolen" {
		t.Fatal("failed updater changed the record")
	}
	_, err = st.UpdateSchool(ctx, a.ID, func(s school.School) (school.School, error) { s.Code = "beta"; return s, nil })
	wantErr(t, err, school.ErrConflict)
	_, err = st.UpdateSchool(ctx, "nope", func(s school.School) (school.School, error) { return s, nil })
	wantErr(t, err, school.ErrNotFound)
}

func testClasses(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	got := must(st.GetClass(ctx, s.School.ID, s.Class.ID))
	if got != s.Class {
		t.Fatalf("GetClass = %+v, want %+v", got, s.Class)
	}
	_, err := st.GetClass(ctx, s.OtherSchl.ID, s.Class.ID)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, ExternalID: "c-7a", Name: "dup"})
	wantErr(t, err, school.ErrConflict)
	_, err = st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: " "})
	wantErr(t, err, school.ErrInvalid)
	_, err = st.CreateClass(ctx, school.Class{SchoolID: "missing", Name: "x"})
	wantErr(t, err, school.ErrInvalid)
	// Hand-made classes have no external id; several may coexist.
	must(st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: "Kor"}))
	must(st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: "Band"}))
	list := must(st.ListClasses(ctx, s.School.ID))
	if len(list) != 3 || list[0].Name != "7A" || list[1].Name != "Band" {
		t.Fatalf("ListClasses = %+v", list)
	}
	if other := must(st.ListClasses(ctx, s.OtherSchl.ID)); len(other) != 0 {
		t.Fatalf("other school sees %+v", other)
	}
	up := must(st.UpdateClass(ctx, s.School.ID, s.Class.ID, func(c school.Class) (school.Class, error) { c.Name = "8A"; return c, nil }))
	if up.Name != "8A" {
		t.Fatalf("UpdateClass = %+v", up)
	}
	_, err = st.UpdateClass(ctx, s.OtherSchl.ID, s.Class.ID, func(c school.Class) (school.Class, error) { return c, nil })
	wantErr(t, err, school.ErrNotFound)
	wantErr(t, st.DeleteClass(ctx, s.OtherSchl.ID, s.Class.ID), school.ErrNotFound)
	if err := st.DeleteClass(ctx, s.School.ID, s.Class.ID); err != nil {
		t.Fatal(err)
	}
	p := must(st.GetPupil(ctx, s.Pupil.ID))
	if len(p.ClassIDs) != 0 {
		t.Fatalf("pupil still in deleted class: %+v", p.ClassIDs)
	}
	wantErr(t, st.DeleteClass(ctx, s.School.ID, s.Class.ID), school.ErrNotFound)
}

func testPupils(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	p := must(st.GetPupil(ctx, s.Pupil.ID))
	if p.Status != school.PupilActive || p.Name() != "Ida Hansen" || !slices.Equal(p.ClassIDs, []string{s.Class.ID}) ||
		!slices.Equal(p.GuardianIDs, []string{s.Guardian.ID}) || !p.BirthDate.Equal(time.Date(2012, 5, 17, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("GetPupil = %+v", p)
	}
	if age, ok := p.AgeOn(time.Date(2026, 5, 16, 0, 0, 0, 0, time.UTC)); !ok || age != 13 {
		t.Fatalf("AgeOn = %d %v", age, ok)
	}
	if got := must(st.PupilByExternalID(ctx, s.School.ID, "p-1")); got.ID != p.ID {
		t.Fatalf("PupilByExternalID = %+v", got)
	}
	_, err := st.PupilByExternalID(ctx, s.OtherSchl.ID, "p-1")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.PupilByExternalID(ctx, s.School.ID, "")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.GetPupil(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "p-1", GivenName: "Dup"})
	wantErr(t, err, school.ErrConflict)
	_, err = st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, GivenName: ""})
	wantErr(t, err, school.ErrInvalid)

	// Links must stay inside the pupil's school.
	otherClass := must(st.CreateClass(ctx, school.Class{SchoolID: s.OtherSchl.ID, Name: "9B"}))
	_, err = st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, GivenName: "Eve", ClassIDs: []string{otherClass.ID}})
	wantErr(t, err, school.ErrInvalid)
	if n := len(must(st.ListPupils(ctx, school.PupilFilter{SchoolID: s.School.ID}))); n != 1 {
		t.Fatalf("a failed create left %d pupils", n)
	}

	class2 := must(st.CreateClass(ctx, school.Class{SchoolID: s.School.ID, Name: "Kor"}))
	b := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "p-2", GivenName: "Bo", FamilyName: "Andersen", ClassIDs: []string{class2.ID}}))
	must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.OtherSchl.ID, ExternalID: "p-1", GivenName: "Other"}))

	all := must(st.ListPupils(ctx, school.PupilFilter{SchoolID: s.School.ID}))
	if len(all) != 2 || all[0].ID != b.ID || all[1].ID != p.ID || len(all[1].GuardianIDs) != 1 {
		t.Fatalf("ListPupils = %+v", all)
	}
	inClass := must(st.ListPupils(ctx, school.PupilFilter{SchoolID: s.School.ID, ClassID: s.Class.ID}))
	if len(inClass) != 1 || inClass[0].ID != p.ID || !slices.Equal(inClass[0].ClassIDs, []string{s.Class.ID}) {
		t.Fatalf("ListPupils(class) = %+v", inClass)
	}

	// The profile: pupil, school and classes in id order, in one read.
	both := must(st.UpdatePupil(ctx, p.ID, func(p school.Pupil) (school.Pupil, error) {
		p.ClassIDs = append(p.ClassIDs, class2.ID)
		return p, nil
	}))
	prof := must(st.GetPupilProfile(ctx, p.ID))
	wantIDs := slices.Sorted(slices.Values(both.ClassIDs))
	if prof.Pupil.ID != p.ID || prof.Pupil.Name() != "Ida Hansen" || !prof.Pupil.BirthDate.Equal(p.BirthDate) || prof.Pupil.Status != school.PupilActive ||
		!prof.Pupil.CreatedAt.Equal(p.CreatedAt) || !slices.Equal(prof.Pupil.ClassIDs, wantIDs) || prof.Pupil.GuardianIDs != nil ||
		prof.School.ID != s.School.ID || prof.School.Code != s.School.Code || prof.School.Domain != s.School.Domain || !prof.School.CreatedAt.Equal(s.School.CreatedAt) ||
		len(prof.Classes) != 2 || prof.Classes[0].ID != wantIDs[0] || prof.Classes[1].ID != wantIDs[1] {
		t.Fatalf("GetPupilProfile = %+v", prof)
	}
	for _, c := range prof.Classes {
		want := must(st.GetClass(ctx, s.School.ID, c.ID))
		if c.Name != want.Name || c.ExternalID != want.ExternalID || c.SchoolID != s.School.ID || !c.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("profile class %+v, want %+v", c, want)
		}
	}
	if prof := must(st.GetPupilProfile(ctx, b.ID)); len(prof.Classes) != 1 || prof.Classes[0].Name != "Kor" {
		t.Fatalf("GetPupilProfile(Bo) = %+v", prof)
	}
	noClass := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, GivenName: "Alma"}))
	if prof := must(st.GetPupilProfile(ctx, noClass.ID)); prof.Pupil.ID != noClass.ID || len(prof.Classes) != 0 || prof.School.ID != s.School.ID {
		t.Fatalf("GetPupilProfile(no class) = %+v", prof)
	}
	if err := st.DeletePupil(ctx, noClass.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetPupilProfile(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)

	up := must(st.UpdatePupil(ctx, p.ID, func(p school.Pupil) (school.Pupil, error) {
		p.ClassIDs = []string{class2.ID}
		p.GuardianIDs = nil
		p.Status = school.PupilQuarantined
		p.QuarantinedAt = h.Clock.Now()
		p.SchoolID = s.OtherSchl.ID // ignored: pupils never change school
		return p, nil
	}))
	got := must(st.GetPupil(ctx, p.ID))
	if got.SchoolID != s.School.ID || got.Status != school.PupilQuarantined || !got.QuarantinedAt.Equal(h.Clock.Now()) ||
		!slices.Equal(got.ClassIDs, []string{class2.ID}) || len(got.GuardianIDs) != 0 || !slices.Equal(up.ClassIDs, got.ClassIDs) {
		t.Fatalf("after update = %+v", got)
	}
	q := must(st.ListPupils(ctx, school.PupilFilter{SchoolID: s.School.ID, Status: school.PupilQuarantined}))
	if len(q) != 1 || q[0].ID != p.ID {
		t.Fatalf("ListPupils(quarantined) = %+v", q)
	}
	_, err = st.UpdatePupil(ctx, p.ID, func(p school.Pupil) (school.Pupil, error) { p.Status = "gone"; return p, nil })
	wantErr(t, err, school.ErrInvalid)
	_, err = st.UpdatePupil(ctx, "nope", func(p school.Pupil) (school.Pupil, error) { return p, nil })
	wantErr(t, err, school.ErrNotFound)

	if err := st.DeletePupil(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetPupil(ctx, p.ID)
	wantErr(t, err, school.ErrNotFound)
	wantErr(t, st.DeletePupil(ctx, p.ID), school.ErrNotFound)
	// The guardian outlives the link.
	must(st.GetGuardian(ctx, s.Guardian.ID))
}

func testGuardians(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	if got := must(st.GetGuardian(ctx, s.Guardian.ID)); got != s.Guardian {
		t.Fatalf("GetGuardian = %+v, want %+v", got, s.Guardian)
	}
	if got := must(st.GuardianByExternalID(ctx, s.School.ID, "g-1")); got.ID != s.Guardian.ID {
		t.Fatalf("GuardianByExternalID = %+v", got)
	}
	_, err := st.GuardianByExternalID(ctx, s.OtherSchl.ID, "g-1")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, ExternalID: "g-1"})
	wantErr(t, err, school.ErrConflict)
	for _, bad := range []string{"not-an-address", "a@b.dk\r\nBcc: x@y.dk", "Mor <mor@example.dk>"} {
		_, err = st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, Email: bad})
		wantErr(t, err, school.ErrInvalid)
	}
	of := must(st.GuardiansOf(ctx, s.Pupil.ID))
	if len(of) != 1 || of[0].ID != s.Guardian.ID {
		t.Fatalf("GuardiansOf = %+v", of)
	}
	g2 := must(st.CreateGuardian(ctx, school.Guardian{SchoolID: s.School.ID, Name: "Far Hansen", Email: "far@example.dk"}))
	if list := must(st.ListGuardians(ctx, s.School.ID)); len(list) != 2 || list[0].ID != g2.ID {
		t.Fatalf("ListGuardians = %+v", list)
	}
	if list := must(st.ListGuardians(ctx, s.OtherSchl.ID)); len(list) != 0 {
		t.Fatalf("other school sees guardians %+v", list)
	}
	up := must(st.UpdateGuardian(ctx, g2.ID, func(g school.Guardian) (school.Guardian, error) { g.Email = "far2@example.dk"; return g, nil }))
	if up.Email != "far2@example.dk" || must(st.GetGuardian(ctx, g2.ID)).Email != "far2@example.dk" {
		t.Fatalf("UpdateGuardian = %+v", up)
	}
	_, err = st.UpdateGuardian(ctx, g2.ID, func(g school.Guardian) (school.Guardian, error) { g.Email = "bad"; return g, nil })
	wantErr(t, err, school.ErrInvalid)
	_, err = st.UpdateGuardian(ctx, "nope", func(g school.Guardian) (school.Guardian, error) { return g, nil })
	wantErr(t, err, school.ErrNotFound)
	if err := st.DeleteGuardian(ctx, s.Guardian.ID); err != nil {
		t.Fatal(err)
	}
	if p := must(st.GetPupil(ctx, s.Pupil.ID)); len(p.GuardianIDs) != 0 {
		t.Fatalf("deleted guardian still linked: %+v", p)
	}
	wantErr(t, st.DeleteGuardian(ctx, s.Guardian.ID), school.ErrNotFound)
}

func testStaff(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	op := must(st.CreateStaff(ctx, school.Staff{Username: "root", Name: "Operator", Role: school.RoleOperator}))
	teacher := must(st.CreateStaff(ctx, school.Staff{SchoolID: s.School.ID, Username: "anna", Name: "Anna Jensen", Email: "anna@s1.example.dk",
		Role: school.RoleTeacher, ClassIDs: []string{s.Class.ID}, PasswordHash: "$argon2id$x", TOTPSecret: []byte{1, 2, 3}}))
	_, err := st.CreateStaff(ctx, school.Staff{SchoolID: s.School.ID, Username: "anna", Role: school.RoleTeacher})
	wantErr(t, err, school.ErrConflict)
	for _, bad := range []school.Staff{
		{Username: "x", Role: "king"},
		{Username: "x", Role: school.RoleOperator, SchoolID: s.School.ID},
		{Username: "x", Role: school.RoleTeacher},
		{Username: " ", Role: school.RoleTeacher, SchoolID: s.School.ID},
	} {
		_, err = st.CreateStaff(ctx, bad)
		wantErr(t, err, school.ErrInvalid)
	}
	otherClass := must(st.CreateClass(ctx, school.Class{SchoolID: s.OtherSchl.ID, Name: "9B"}))
	_, err = st.CreateStaff(ctx, school.Staff{SchoolID: s.School.ID, Username: "bo", Role: school.RoleTeacher, ClassIDs: []string{otherClass.ID}})
	wantErr(t, err, school.ErrInvalid)

	got := must(st.GetStaff(ctx, teacher.ID))
	if got.Name != "Anna Jensen" || got.Role != school.RoleTeacher || !slices.Equal(got.ClassIDs, []string{s.Class.ID}) ||
		got.PasswordHash != "$argon2id$x" || !slices.Equal(got.TOTPSecret, []byte{1, 2, 3}) || got.Disabled {
		t.Fatalf("GetStaff = %+v", got)
	}
	if got := must(st.StaffByUsername(ctx, "root")); got.ID != op.ID || got.SchoolID != "" {
		t.Fatalf("StaffByUsername = %+v", got)
	}
	_, err = st.StaffByUsername(ctx, "nobody")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.GetStaff(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)
	if list := must(st.ListStaff(ctx, s.School.ID)); len(list) != 1 || list[0].ID != teacher.ID || len(list[0].ClassIDs) != 1 {
		t.Fatalf("ListStaff(school) = %+v", list)
	}
	if list := must(st.ListStaff(ctx, school.InstanceChain)); len(list) != 1 || list[0].ID != op.ID {
		t.Fatalf("ListStaff(operators) = %+v", list)
	}
	up := must(st.UpdateStaff(ctx, teacher.ID, func(x school.Staff) (school.Staff, error) {
		x.Disabled = true
		x.ClassIDs = nil
		x.Role = school.RoleSchoolAdmin
		x.PasswordExpires = time.UnixMicro(1_800_000_000_000_000).UTC()
		return x, nil
	}))
	got = must(st.GetStaff(ctx, teacher.ID))
	if !got.Disabled || got.Role != school.RoleSchoolAdmin || len(got.ClassIDs) != 0 || up.Role != got.Role || !got.PasswordExpires.Equal(time.UnixMicro(1_800_000_000_000_000)) {
		t.Fatalf("after UpdateStaff = %+v", got)
	}
	_, err = st.UpdateStaff(ctx, "nope", func(x school.Staff) (school.Staff, error) { return x, nil })
	wantErr(t, err, school.ErrNotFound)
}

func testPlatforms(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	got := must(st.GetPlatform(ctx, s.Platform.ID))
	if got.SubjectType != school.SubjectPairwise || got.Name != "MatematikFessor" || string(got.Settings) != "{}" ||
		len(got.Attributes) != 1 || !got.Allows("given_name") || got.Allows("family_name") {
		t.Fatalf("GetPlatform = %+v", got)
	}
	if got := must(st.PlatformByClientID(ctx, "mf")); got.ID != s.Platform.ID {
		t.Fatalf("PlatformByClientID = %+v", got)
	}
	_, err := st.PlatformByClientID(ctx, "nope")
	wantErr(t, err, school.ErrNotFound)
	_, err = st.CreatePlatform(ctx, school.Platform{Name: "Dup", Protocol: school.ProtocolSAML, ClientID: "mf"})
	wantErr(t, err, school.ErrConflict)
	for _, bad := range []school.Platform{
		{Name: "x", Protocol: "ftp", ClientID: "x"},
		{Name: "x", Protocol: school.ProtocolOIDC, ClientID: "x", SubjectType: school.SubjectPublic},
		{Name: "x", Protocol: school.ProtocolOIDC, ClientID: "x", Attributes: []school.AttributeGrant{{Name: "name"}}},
		{Name: "x", Protocol: school.ProtocolOIDC, ClientID: "x", Settings: []byte("{not json")},
	} {
		_, err = st.CreatePlatform(ctx, bad)
		wantErr(t, err, school.ErrInvalid)
	}
	saml := must(st.CreatePlatform(ctx, school.Platform{Name: "Aula", Protocol: school.ProtocolSAML, ClientID: "https://sp.example.dk",
		SubjectType: school.SubjectPublic, SubjectTypeReason: "legacy roster match", Settings: []byte(`{"acs":["https://sp.example.dk/acs"]}`)}))
	if list := must(st.ListPlatforms(ctx)); len(list) != 2 || list[0].ID != saml.ID {
		t.Fatalf("ListPlatforms = %+v", list)
	}
	h.Clock.Advance(time.Minute)
	up := must(st.UpdatePlatform(ctx, saml.ID, func(p school.Platform) (school.Platform, error) {
		p.Attributes = append(p.Attributes, school.AttributeGrant{Name: "groups", JustificationDA: "Class rooms", JustificationEN: "Class rooms"})
		return p, nil
	}))
	got = must(st.GetPlatform(ctx, saml.ID))
	if !got.Allows("groups") || !got.UpdatedAt.Equal(h.Clock.Now()) || string(got.Settings) != `{"acs":["https://sp.example.dk/acs"]}` || !up.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("after UpdatePlatform = %+v", got)
	}
	if err := st.DeletePlatform(ctx, saml.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.DeletePlatform(ctx, saml.ID), school.ErrNotFound)
	_, err = st.UpdatePlatform(ctx, saml.ID, func(p school.Platform) (school.Platform, error) { return p, nil })
	wantErr(t, err, school.ErrNotFound)
}
