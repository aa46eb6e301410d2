package passkey_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/internal/webauthntest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// rpFixture is a relying party on a fresh SQLite store with a school, two
// pupils and a teacher.
type rpFixture struct {
	t          *testing.T
	ctx        context.Context
	st         school.Store
	rp         *passkey.RelyingParty
	ida, bo    school.Pupil
	teacher    school.Staff
	virtualRP  virtualwebauthn.RelyingParty
	registered map[string]*device // by owner id
}

// device is a virtual authenticator holding one passkey.
type device struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newRPFixture(t *testing.T) *rpFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &rpFixture{t: t, ctx: ctx, st: st, registered: map[string]*device{},
		virtualRP: virtualwebauthn.RelyingParty{ID: "localhost", Name: "ElevID", Origin: "http://localhost:8080"}}
	sc := must[school.School](t)(st.CreateSchool(ctx, school.School{Code: "skole", Name: "Skole", Domain: "s.example.dk"}))
	f.ida = must[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: sc.ID, GivenName: "Ida"}))
	f.bo = must[school.Pupil](t)(st.CreatePupil(ctx, school.Pupil{SchoolID: sc.ID, GivenName: "Bo"}))
	f.teacher = must[school.Staff](t)(st.CreateStaff(ctx, school.Staff{SchoolID: sc.ID, Username: "tove", Name: "Tove", Role: school.RoleTeacher}))
	f.rp = must[*passkey.RelyingParty](t)(passkey.NewRelyingParty(passkey.Config{RPID: "localhost", Origins: []string{"http://localhost:8080"}}, st, time.Now))
	return f
}

// must returns v, failing t on err.
func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// register runs a registration of r's passkey as kind and stores it.
func (f *rpFixture) register(r passkey.Registrant, kind school.CeremonyKind) *device {
	f.t.Helper()
	begun := must[passkey.Begun](f.t)(f.rp.BeginRegistration(f.ctx, r, kind, []byte("ref")))
	opts := must[*virtualwebauthn.AttestationOptions](f.t)(virtualwebauthn.ParseAttestationOptions(string(must[[]byte](f.t)(json.Marshal(begun.Options)))))
	d := &device{auth: virtualwebauthn.NewAuthenticator(), cred: webauthntest.NewCredential()}
	d.auth.Options.UserHandle = must[[]byte](f.t)(f.st.UserHandle(f.ctx, r.Owner))
	resp := virtualwebauthn.CreateAttestationResponse(f.virtualRP, d.auth, d.cred, *opts)
	c, cer, err := f.rp.FinishRegistration(f.ctx, passkey.Finish{Ceremony: begun.Ceremony, Credential: json.RawMessage(resp)}, kind,
		func(cer school.Ceremony) (passkey.Registrant, error) { return r, nil }, "Laptop")
	if err != nil || c.Owner != r.Owner || c.SchoolID != r.SchoolID || c.Label != "Laptop" || cer.SubjectID != r.Owner.ID || string(cer.Ref) != "ref" {
		f.t.Fatalf("FinishRegistration = %+v, %+v, %v", c, cer, err)
	}
	must[school.Credential](f.t)(f.st.AddCredential(f.ctx, c))
	d.auth.AddCredential(d.cred)
	return d
}

func pupilOf(p school.Pupil) passkey.Registrant {
	return passkey.Registrant{Owner: school.PupilOwner(p.ID), SchoolID: p.SchoolID, Name: p.GivenName}
}

// login runs a stored discoverable login of kind with d.
func (f *rpFixture) login(d *device, kind school.CeremonyKind, l passkey.Login) (passkey.Assertion, error) {
	f.t.Helper()
	begun := must[passkey.Begun](f.t)(f.rp.BeginLogin(f.ctx, passkey.Mediation(""), kind))
	return f.finish(d, begun, kind, l)
}

func (f *rpFixture) finish(d *device, begun passkey.Begun, kind school.CeremonyKind, l passkey.Login) (passkey.Assertion, error) {
	f.t.Helper()
	opts := must[*virtualwebauthn.AssertionOptions](f.t)(virtualwebauthn.ParseAssertionOptions(string(must[[]byte](f.t)(json.Marshal(begun.Options)))))
	resp := virtualwebauthn.CreateAssertionResponse(f.virtualRP, d.auth, d.cred, *opts)
	return f.rp.FinishStoredLogin(f.ctx, passkey.Finish{Ceremony: begun.Ceremony, Credential: json.RawMessage(resp)}, kind, l)
}

var (
	pupilLogin = passkey.Login{Kind: school.OwnerPupil}
	staffLogin = passkey.Login{Kind: school.OwnerStaff}
)

// One relying party serves pupils and staff; each kind's passkeys work
// only for that kind, and every refusal is a typed error.
func TestRelyingPartyLogins(t *testing.T) {
	f := newRPFixture(t)
	ida := f.register(pupilOf(f.ida), school.CeremonyRegistration)
	bo := f.register(pupilOf(f.bo), school.CeremonyRegistration)
	tove := f.register(passkey.Registrant{Owner: school.StaffOwner(f.teacher.ID), Name: "tove"}, school.CeremonyStaffRegistration)

	// Each signs in as their kind.
	ida.cred.Counter = 5
	a, err := f.login(ida, school.CeremonyLogin, pupilLogin)
	if err != nil || a.Credential.Owner != school.PupilOwner(f.ida.ID) || a.Use.SignCount != 5 || a.Cloned || a.Use.At.IsZero() {
		t.Fatalf("pupil login = %+v, %v", a, err)
	}
	if err := f.st.RecordCredentialUse(f.ctx, a.Credential.ID, a.Use); err != nil {
		t.Fatal(err)
	}
	if a, err := f.login(tove, school.CeremonyStaffLogin, staffLogin); err != nil || a.Credential.Owner != school.StaffOwner(f.teacher.ID) {
		t.Fatalf("staff login = %+v, %v", a, err)
	}

	// Neither kind's passkey works for the other.
	if _, err := f.login(tove, school.CeremonyLogin, pupilLogin); !errors.Is(err, passkey.ErrUnknownHandle) {
		t.Fatalf("staff passkey at a pupil login: %v", err)
	}
	if _, err := f.login(ida, school.CeremonyStaffLogin, staffLogin); !errors.Is(err, passkey.ErrUnknownHandle) {
		t.Fatalf("pupil passkey at a staff login: %v", err)
	}

	// Bo's passkey under Ida's handle is another's; an unstored one is
	// unknown.
	stolen := &device{auth: ida.auth, cred: bo.cred}
	if _, err := f.login(stolen, school.CeremonyLogin, pupilLogin); !errors.Is(err, passkey.ErrForeignCredential) {
		t.Fatalf("another pupil's passkey: %v", err)
	}
	unknown := &device{auth: ida.auth, cred: webauthntest.NewCredential()}
	if _, err := f.login(unknown, school.CeremonyLogin, pupilLogin); !errors.Is(err, passkey.ErrUnknownCredential) {
		t.Fatalf("unstored passkey: %v", err)
	}

	// Ceremonies are single use and of one kind.
	begun := must[passkey.Begun](f.t)(f.rp.BeginLogin(f.ctx, passkey.Mediation("conditional"), school.CeremonyLogin))
	ida.cred.Counter = 6
	if _, err := f.finish(ida, begun, school.CeremonyLogin, pupilLogin); err != nil {
		t.Fatal(err)
	}
	if _, err := f.finish(ida, begun, school.CeremonyLogin, pupilLogin); !errors.Is(err, passkey.ErrCeremony) {
		t.Fatalf("replayed ceremony: %v", err)
	}
	begun = must[passkey.Begun](t)(f.rp.BeginLogin(f.ctx, passkey.Mediation(""), school.CeremonyStaffLogin))
	if _, err := f.finish(ida, begun, school.CeremonyLogin, pupilLogin); !errors.Is(err, passkey.ErrCeremony) {
		t.Fatalf("staff ceremony at a pupil login: %v", err)
	}

	// A counter that goes back flags the credential once.
	ida.cred.Counter = 2
	a, err = f.login(ida, school.CeremonyLogin, pupilLogin)
	if err != nil || !a.Cloned || !a.Use.CloneWarning {
		t.Fatalf("counter regression = %+v, %v", a, err)
	}

	// The owner's Allow refuses with its own error; a revoked passkey
	// is refused before it is asked.
	asked := 0
	inactive := passkey.Login{Kind: school.OwnerPupil, Allow: func(context.Context, school.Credential) error {
		asked++
		return &passkey.InactiveOwnerError{Status: string(school.PupilQuarantined)}
	}}
	var ie *passkey.InactiveOwnerError
	if _, err := f.login(bo, school.CeremonyLogin, inactive); !errors.As(err, &ie) || ie.Status != string(school.PupilQuarantined) ||
		!errors.Is(err, passkey.ErrInactiveOwner) || asked != 1 {
		t.Fatalf("inactive owner: %v (asked %d)", err, asked)
	}
	if _, err := f.st.UpdateCredential(f.ctx, school.OwnerPupil, a.Credential.ID, func(c school.Credential) (school.Credential, error) {
		c.RevokedAt = time.Now()
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.login(ida, school.CeremonyLogin, inactive); !errors.Is(err, passkey.ErrRevokedCredential) || asked != 1 {
		t.Fatalf("revoked passkey: %v (asked %d)", err, asked)
	}

	// A response that does not parse.
	begun = must[passkey.Begun](t)(f.rp.BeginLogin(f.ctx, passkey.Mediation(""), school.CeremonyLogin))
	if _, err := f.rp.FinishStoredLogin(f.ctx, passkey.Finish{Ceremony: begun.Ceremony, Credential: json.RawMessage(`{"id":"x"}`)}, school.CeremonyLogin, pupilLogin); !errors.Is(err, passkey.ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

// A login begun for one owner (re-authentication) accepts only that
// owner's passkeys, and only with its ceremony's owner and reference.
func TestRelyingPartyOwnerLogin(t *testing.T) {
	f := newRPFixture(t)
	me := school.StaffOwner(f.teacher.ID)
	if _, err := f.rp.BeginOwnerLogin(f.ctx, me, school.CeremonyStaffReauth, []byte("session")); !errors.Is(err, passkey.ErrNoCredentials) {
		t.Fatalf("owner login without passkeys: %v", err)
	}
	tove := f.register(passkey.Registrant{Owner: me, Name: "tove"}, school.CeremonyStaffRegistration)
	reauth := passkey.Login{Kind: school.OwnerStaff, Owner: me.ID, Ref: []byte("session")}

	begun := must[passkey.Begun](t)(f.rp.BeginOwnerLogin(f.ctx, me, school.CeremonyStaffReauth, []byte("session")))
	if a, err := f.finish(tove, begun, school.CeremonyStaffReauth, reauth); err != nil || a.Credential.Owner != me {
		t.Fatalf("owner login = %+v, %v", a, err)
	}
	// Another session's ceremony.
	begun = must[passkey.Begun](t)(f.rp.BeginOwnerLogin(f.ctx, me, school.CeremonyStaffReauth, []byte("other session")))
	if _, err := f.finish(tove, begun, school.CeremonyStaffReauth, reauth); !errors.Is(err, passkey.ErrCeremony) {
		t.Fatalf("ceremony of another session: %v", err)
	}
	// A pupil's passkey is refused even under the owner's handle.
	pupil := f.register(pupilOf(f.ida), school.CeremonyRegistration)
	begun = must[passkey.Begun](t)(f.rp.BeginOwnerLogin(f.ctx, me, school.CeremonyStaffReauth, []byte("session")))
	if _, err := f.finish(&device{auth: tove.auth, cred: pupil.cred}, begun, school.CeremonyStaffReauth, reauth); err == nil || !passkey.Refusal(err) {
		t.Fatalf("pupil's passkey at the owner's login: %v", err)
	}
}
