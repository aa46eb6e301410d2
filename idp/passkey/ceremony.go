package passkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/elevid/elevid/school"
)

// Why a ceremony failed. RelyingParty returns these (wrapped with detail
// for the log); callers pick their message with errors.Is and errors.As,
// never by comparing strings.
var (
	// ErrUnknownHandle: no owner of the ceremony's kind has the user
	// handle (a handle of the other kind included).
	ErrUnknownHandle = errors.New("passkey: unknown user handle")
	// ErrUnknownCredential: the owner has no credential with that id.
	ErrUnknownCredential = errors.New("passkey: unknown credential")
	// ErrForeignCredential: the credential belongs to another owner.
	ErrForeignCredential = errors.New("passkey: credential of another owner")
	// ErrRevokedCredential: the credential was removed or reset.
	ErrRevokedCredential = errors.New("passkey: revoked credential")
	// ErrInactiveOwner: the owner may not sign in; an
	// *InactiveOwnerError (which wraps it) says why.
	ErrInactiveOwner = errors.New("passkey: inactive owner")
	// ErrNoCredentials: the owner has no passkey to sign in with.
	ErrNoCredentials = errors.New("passkey: no credentials")
	// ErrMalformed: the browser's response does not parse.
	ErrMalformed = errors.New("passkey: response malformed")
	// ErrInvalid: the browser's response does not verify (signature,
	// challenge, origin, user verification …).
	ErrInvalid = errors.New("passkey: response invalid")
	// ErrStore: the store failed; a server error, not a refusal.
	ErrStore = errors.New("passkey: store failed")
)

// InactiveOwnerError refuses a sign-in of an owner who may not sign in: a
// quarantined or removed pupil, a disabled staff member.
type InactiveOwnerError struct{ Status string }

func (e *InactiveOwnerError) Error() string { return "passkey: owner " + e.Status }

// Unwrap makes an InactiveOwnerError an ErrInactiveOwner.
func (e *InactiveOwnerError) Unwrap() error { return ErrInactiveOwner }

// Refusal reports whether err refuses the ceremony (the browser's or the
// owner's doing: an unknown, foreign or revoked passkey, a bad or stale
// ceremony or response, an inactive owner), as opposed to a server error.
func Refusal(err error) bool {
	for _, e := range []error{ErrCeremony, ErrUnknownHandle, ErrUnknownCredential, ErrForeignCredential,
		ErrRevokedCredential, ErrInactiveOwner, ErrNoCredentials, ErrMalformed, ErrInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Keys are a handler's text keys for the refusals of a ceremony.
type Keys struct {
	Ceremony string // the ceremony is unknown, used, expired or another's: start again
	Refused  string // any other refusal
}

// Answer says how a handler answers err, an error of a ceremony whose
// refusals it answers with status: 400 with k.Ceremony for ErrCeremony,
// status with k.Refused for another refusal (logged to log at Warn as msg
// with args and the error), and 500 with "error.internal" and err as the
// detail to log for a server error.
func (k Keys) Answer(err error, status int, log *slog.Logger, msg string, args ...any) (int, string, error) {
	if !Refusal(err) {
		return http.StatusInternalServerError, "error.internal", err
	}
	log.Warn(msg, append(args, "err", err)...)
	if errors.Is(err, ErrCeremony) {
		return http.StatusBadRequest, k.Ceremony, nil
	}
	return status, k.Refused, nil
}

func storeError(err error) error { return fmt.Errorf("%w: %w", ErrStore, err) }

func invalid(what string, err error) error {
	if err != nil {
		what += ": " + Detail(err)
	}
	return fmt.Errorf("%w: %s", ErrInvalid, what)
}

func malformed(err error) error { return fmt.Errorf("%w: %s", ErrMalformed, Detail(err)) }

// Store is what the ceremonies read: user handles, credentials and stored
// ceremony state. A school.Store is one.
type Store interface {
	school.CeremonyStore
	UserHandle(ctx context.Context, o school.Owner) ([]byte, error)
	OwnerByHandle(ctx context.Context, kind school.OwnerKind, handle []byte) (string, error)
	GetCredential(ctx context.Context, kind school.OwnerKind, id []byte) (school.Credential, error)
	ListCredentials(ctx context.Context, o school.Owner, includeRevoked bool) ([]school.Credential, error)
}

// RelyingParty runs ElevID's WebAuthn ceremonies for passkey owners of
// either kind: registration (pupil enrolment, a staff member's new
// passkey) and login (pupil login, staff sign-in and re-authentication).
// It builds the WebAuthn user from the store, keeps or takes the
// ceremony's session data, runs go-webauthn, checks the counter and
// converts credentials; callers store the result in their own
// transaction and map its typed errors to their messages. It is safe for
// concurrent use.
type RelyingParty struct {
	wa  *webauthn.WebAuthn
	cfg Config
	st  Store
	cer ceremonies
}

// NewRelyingParty returns the relying party of c, reading and keeping its
// state in st, with now as its clock.
func NewRelyingParty(c Config, st Store, now func() time.Time) (*RelyingParty, error) {
	c.defaults()
	wa, err := New(c)
	if err != nil {
		return nil, err
	}
	return &RelyingParty{wa: wa, cfg: c, st: st, cer: ceremonies{Store: st, Now: now}}, nil
}

// Config returns the relying party's configuration, defaults filled in.
func (rp *RelyingParty) Config() Config { return rp.cfg }

// Registrant is an owner registering a passkey, with the names their own
// authenticator shows.
type Registrant struct {
	Owner             school.Owner
	SchoolID          string // the pupil's school; empty for staff
	Name, DisplayName string
}

// user returns o as a WebAuthn user with their active credentials.
func (rp *RelyingParty) user(ctx context.Context, o school.Owner, name, display string) (*User, []school.Credential, error) {
	h, err := rp.st.UserHandle(ctx, o)
	if err != nil {
		return nil, nil, storeError(err)
	}
	creds, err := rp.st.ListCredentials(ctx, o, false)
	if err != nil {
		return nil, nil, storeError(err)
	}
	u := &User{Handle: h, Name: name, DisplayName: display}
	for _, c := range creds {
		u.Credentials = append(u.Credentials, ToWebAuthn(c))
	}
	return u, creds, nil
}

// BeginRegistration starts registering a passkey for r (their existing
// passkeys excluded) and stores the ceremony as kind, bound to ref (e.g.
// the enrolment code's hash or the staff session), for the registration
// timeout. ErrStore when the store fails.
func (rp *RelyingParty) BeginRegistration(ctx context.Context, r Registrant, kind school.CeremonyKind, ref []byte) (Begun, error) {
	u, creds, err := rp.user(ctx, r.Owner, r.Name, r.DisplayName)
	if err != nil {
		return Begun{}, err
	}
	creation, sd, err := rp.wa.BeginRegistration(u,
		webauthn.WithExclusions(Descriptors(creds)),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		return Begun{}, err
	}
	return rp.save(ctx, kind, r.Owner.ID, ref, sd, rp.cfg.RegistrationTimeout, creation)
}

func (rp *RelyingParty) save(ctx context.Context, kind school.CeremonyKind, subject string, ref []byte, sd *webauthn.SessionData, ttl time.Duration, options any) (Begun, error) {
	id, err := rp.cer.Save(ctx, kind, subject, ref, sd, ttl)
	if err != nil {
		return Begun{}, storeError(err)
	}
	return Begun{Ceremony: id, Options: options}, nil
}

// consume takes the stored ceremony id of kind out of the store: ErrCeremony
// when it is unknown, used, expired or of another kind, ErrStore when the
// store fails.
func (rp *RelyingParty) consume(ctx context.Context, id string, kind school.CeremonyKind) (school.Ceremony, webauthn.SessionData, error) {
	cer, sd, err := rp.cer.Consume(ctx, id, kind)
	if err != nil && !errors.Is(err, ErrCeremony) {
		err = storeError(err)
	}
	return cer, sd, err
}

// FinishRegistration consumes the stored registration ceremony f.Ceremony
// of kind (it is gone whatever happens next), asks registrant who
// registers in it (an error refuses: wrap ErrCeremony for a ceremony of
// another owner or session), verifies the response, user verification
// included, and returns the new credential, labelled label, for the
// caller to store, with the ceremony. Errors: ErrCeremony, ErrInvalid,
// ErrStore, or registrant's.
func (rp *RelyingParty) FinishRegistration(ctx context.Context, f Finish, kind school.CeremonyKind, registrant func(school.Ceremony) (Registrant, error), label string) (school.Credential, school.Ceremony, error) {
	cer, sd, err := rp.consume(ctx, f.Ceremony, kind)
	if err != nil {
		return school.Credential{}, cer, err
	}
	r, err := registrant(cer)
	if err != nil {
		return school.Credential{}, cer, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(f.Credential)
	if err != nil {
		return school.Credential{}, cer, malformed(err)
	}
	u, _, err := rp.user(ctx, r.Owner, r.Name, r.DisplayName)
	if err != nil {
		return school.Credential{}, cer, err
	}
	wc, err := rp.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		return school.Credential{}, cer, invalid("registration", err)
	}
	if !wc.Flags.UserVerified {
		return school.Credential{}, cer, invalid("user not verified", nil)
	}
	return FromWebAuthn(wc, r.Owner, r.SchoolID, label), cer, nil
}

// Mediation is the mediation a login's begin request asks for:
// "conditional" (autofill) or the default (a modal prompt).
func Mediation(s string) protocol.CredentialMediationRequirement {
	if s == "conditional" {
		return protocol.MediationConditional
	}
	return protocol.MediationDefault
}

// BeginDiscoverable starts a discoverable login with user verification
// required and returns its options and session data, for the caller to
// keep (BeginLogin stores it; the pupil login seals it).
func (rp *RelyingParty) BeginDiscoverable(mediation protocol.CredentialMediationRequirement) (*protocol.CredentialAssertion, *webauthn.SessionData, error) {
	return rp.wa.BeginDiscoverableMediatedLogin(mediation, webauthn.WithUserVerification(protocol.VerificationRequired))
}

// BeginLogin starts a discoverable login and stores its ceremony as kind
// for the login timeout.
func (rp *RelyingParty) BeginLogin(ctx context.Context, mediation protocol.CredentialMediationRequirement, kind school.CeremonyKind) (Begun, error) {
	assertion, sd, err := rp.BeginDiscoverable(mediation)
	if err != nil {
		return Begun{}, err
	}
	return rp.save(ctx, kind, "", nil, sd, rp.cfg.LoginTimeout, assertion)
}

// BeginOwnerLogin starts a login with only o's passkeys (a
// re-authentication) and stores its ceremony as kind, bound to o and ref.
// ErrNoCredentials when o has none.
func (rp *RelyingParty) BeginOwnerLogin(ctx context.Context, o school.Owner, kind school.CeremonyKind, ref []byte) (Begun, error) {
	u, creds, err := rp.user(ctx, o, o.ID, "")
	if err != nil {
		return Begun{}, err
	}
	if len(creds) == 0 {
		return Begun{}, ErrNoCredentials
	}
	assertion, sd, err := rp.wa.BeginLogin(u, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return Begun{}, err
	}
	return rp.save(ctx, kind, o.ID, ref, sd, rp.cfg.LoginTimeout, assertion)
}

// Login says whose passkeys a login accepts and how to find them.
type Login struct {
	Kind school.OwnerKind
	// Owner, when set, is the one owner whose passkeys the login accepts:
	// a login begun with BeginOwnerLogin for that owner.
	Owner string
	// Ref, for a stored ceremony, is what it must be bound to.
	Ref []byte
	// Lookup, when set, finds the credential credentialID of the owner of
	// userHandle in one read (the pupil login's PasskeyLogin); on
	// school.ErrNotFound the relying party finds out why. When nil, it
	// reads the handle's owner and the credential itself.
	Lookup func(ctx context.Context, userHandle, credentialID []byte) (school.Credential, error)
	// Allow, when set, says whether the owner of an active credential may
	// sign in: an error (an *InactiveOwnerError, say) refuses, and is
	// returned as it is.
	Allow func(ctx context.Context, c school.Credential) error
}

// Assertion is a verified login.
type Assertion struct {
	// Credential is the credential used, as stored before this login.
	Credential school.Credential
	// Use is what the login learnt about it, to record with
	// RecordCredentialUse.
	Use school.CredentialUse
	// Cloned reports that the counter did not increase for the first
	// time: the credential is now flagged as possibly copied.
	Cloned bool
}

// AMR are the authentication methods of a user-verified passkey login
// (RFC 8176): the key (hardware, or software when synced) and the user
// verification, together two factors.
func (a Assertion) AMR() []string {
	if a.Credential.BackupEligible {
		return []string{"swk", "user", "mfa"}
	}
	return []string{"hwk", "user", "mfa"}
}

// FinishStoredLogin consumes the stored login ceremony f.Ceremony of kind
// (gone whatever happens next), checks it was begun for l.Owner and l.Ref
// (ErrCeremony otherwise), and verifies the assertion as FinishLogin.
func (rp *RelyingParty) FinishStoredLogin(ctx context.Context, f Finish, kind school.CeremonyKind, l Login) (Assertion, error) {
	cer, sd, err := rp.consume(ctx, f.Ceremony, kind)
	if err != nil {
		return Assertion{}, err
	}
	if cer.SubjectID != l.Owner || !bytes.Equal(cer.Ref, l.Ref) {
		return Assertion{}, fmt.Errorf("%w: ceremony of another owner or session", ErrCeremony)
	}
	return rp.FinishLogin(ctx, sd, f.Credential, l)
}

// FinishLogin verifies the assertion response against the ceremony's
// session data sd, which the caller took out of its keeping (stored or
// sealed, single use), and returns what the caller records. Only an active
// credential of l.Kind (of l.Owner, when set) whose owner l.Allow admits,
// with user verification, passes. Errors: ErrUnknownHandle,
// ErrUnknownCredential, ErrForeignCredential, ErrRevokedCredential,
// ErrMalformed, ErrInvalid, ErrStore, or l's.
func (rp *RelyingParty) FinishLogin(ctx context.Context, sd webauthn.SessionData, response []byte, l Login) (Assertion, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Assertion{}, malformed(err)
	}
	var (
		a       Assertion
		wc      *webauthn.Credential
		refused error
	)
	if l.Owner != "" {
		a.Credential, wc, err = rp.validateOwnerLogin(ctx, sd, parsed, l)
		refused = err
	} else {
		handler := func(rawID, userHandle []byte) (webauthn.User, error) {
			a.Credential, refused = rp.resolve(ctx, l, userHandle, rawID)
			if refused != nil {
				return nil, refused
			}
			return &User{Handle: userHandle, Name: a.Credential.Owner.ID, Credentials: []webauthn.Credential{ToWebAuthn(a.Credential)}}, nil
		}
		_, wc, err = rp.wa.ValidatePasskeyLogin(handler, sd, parsed)
	}
	switch {
	case refused != nil:
		return a, refused
	case err != nil:
		return a, invalid("assertion", err)
	case !wc.Flags.UserVerified:
		return a, invalid("user not verified", nil)
	}
	a.Use = school.CredentialUse{SignCount: wc.Authenticator.SignCount, CloneWarning: wc.Authenticator.CloneWarning,
		BackupState: wc.Flags.BackupState, At: rp.cer.Now()}
	a.Cloned = wc.Authenticator.CloneWarning && !a.Credential.CloneWarning
	return a, nil
}

// validateOwnerLogin verifies a login begun for the one owner l.Owner; a
// refusal is returned as the error, a failed verification as invalid.
func (rp *RelyingParty) validateOwnerLogin(ctx context.Context, sd webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData, l Login) (school.Credential, *webauthn.Credential, error) {
	o := school.Owner{Kind: l.Kind, ID: l.Owner}
	u, creds, err := rp.user(ctx, o, o.ID, "")
	if err != nil {
		return school.Credential{}, nil, err
	}
	wc, err := rp.wa.ValidateLogin(u, sd, parsed)
	if err != nil {
		return school.Credential{}, nil, invalid("assertion", err)
	}
	for _, c := range creds {
		if bytes.Equal(c.ID, wc.ID) {
			return c, wc, rp.admit(ctx, l, c)
		}
	}
	return school.Credential{}, nil, fmt.Errorf("%w: not the owner's", ErrForeignCredential)
}

// resolve finds the active credential rawID of the owner of userHandle,
// of l.Kind, and says why not when there is none.
func (rp *RelyingParty) resolve(ctx context.Context, l Login, userHandle, rawID []byte) (school.Credential, error) {
	if l.Lookup != nil {
		c, err := l.Lookup(ctx, userHandle, rawID)
		switch {
		case err == nil:
			return c, rp.admit(ctx, l, c)
		case !errors.Is(err, school.ErrNotFound):
			return c, storeError(err)
		}
	}
	ownerID, err := rp.st.OwnerByHandle(ctx, l.Kind, userHandle)
	switch {
	case errors.Is(err, school.ErrNotFound):
		return school.Credential{}, ErrUnknownHandle
	case err != nil:
		return school.Credential{}, storeError(err)
	}
	c, err := rp.st.GetCredential(ctx, l.Kind, rawID)
	switch {
	case errors.Is(err, school.ErrNotFound):
		return c, ErrUnknownCredential
	case err != nil:
		return c, storeError(err)
	case c.Owner.ID != ownerID:
		return c, ErrForeignCredential
	case l.Lookup != nil:
		return c, fmt.Errorf("%w: gone between the reads", ErrUnknownCredential)
	}
	return c, rp.admit(ctx, l, c)
}

// admit refuses a revoked credential and an owner l.Allow refuses.
func (rp *RelyingParty) admit(ctx context.Context, l Login, c school.Credential) error {
	if !c.Active() {
		return ErrRevokedCredential
	}
	if l.Allow != nil {
		return l.Allow(ctx, c)
	}
	return nil
}
