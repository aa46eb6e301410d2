package passkey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/elevid/elevid/school"
)

// Config is the relying-party configuration of an instance.
type Config struct {
	// RPID is the WebAuthn relying-party id: the registrable domain of the
	// issuer, e.g. "elevid.example.dk" ("localhost" in development; an IP
	// address is not allowed).
	RPID string
	// RPName is shown by authenticators, e.g. "ElevID".
	RPName string
	// Origins are the exact origins pages are served from, e.g.
	// "https://elevid.example.dk".
	Origins []string
	// RegistrationTimeout and LoginTimeout bound a ceremony; both are
	// enforced server-side. Five minutes when zero.
	RegistrationTimeout time.Duration
	LoginTimeout        time.Duration
}

const defaultTimeout = 5 * time.Minute

func (c *Config) defaults() {
	if c.RPName == "" {
		c.RPName = "ElevID"
	}
	if c.RegistrationTimeout <= 0 {
		c.RegistrationTimeout = defaultTimeout
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = defaultTimeout
	}
}

// New returns the go-webauthn instance for c: resident keys and user
// verification required, attestation "none", timeouts enforced.
func New(c Config) (*webauthn.WebAuthn, error) {
	c.defaults()
	if c.RPID == "" || len(c.Origins) == 0 {
		return nil, errors.New("passkey: the RP ID and at least one origin are required")
	}
	rk := true
	w, err := webauthn.New(&webauthn.Config{
		RPID:                  c.RPID,
		RPDisplayName:         c.RPName,
		RPOrigins:             c.Origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: &rk,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: c.LoginTimeout, TimeoutUVD: c.LoginTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: c.RegistrationTimeout, TimeoutUVD: c.RegistrationTimeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return w, nil
}

// User adapts a pupil to webauthn.User. Handle is the pupil's random user
// handle; Name and DisplayName are only shown by the pupil's own
// authenticator.
type User struct {
	Handle      []byte
	Name        string
	DisplayName string
	Credentials []webauthn.Credential
}

// WebAuthnID implements webauthn.User.
func (u *User) WebAuthnID() []byte { return u.Handle }

// WebAuthnName implements webauthn.User.
func (u *User) WebAuthnName() string { return u.Name }

// WebAuthnDisplayName implements webauthn.User.
func (u *User) WebAuthnDisplayName() string { return u.DisplayName }

// WebAuthnCredentials implements webauthn.User.
func (u *User) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

// ToWebAuthn converts a stored credential to the library's type.
func ToWebAuthn(c school.Credential) webauthn.Credential {
	out := webauthn.Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationType:   "none",
		AttestationFormat: c.AttestationFormat,
		Flags: webauthn.CredentialFlags{
			UserPresent: true, UserVerified: true,
			BackupEligible: c.BackupEligible, BackupState: c.BackupState,
		},
		Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount, CloneWarning: c.CloneWarning},
	}
	for _, t := range c.Transports {
		out.Transport = append(out.Transport, protocol.AuthenticatorTransport(t))
	}
	return out
}

// FromWebAuthn converts a newly registered credential of owner (of the
// school schoolID; empty for staff).
func FromWebAuthn(c *webauthn.Credential, owner school.Owner, schoolID, label string) school.Credential {
	out := school.Credential{
		ID: c.ID, Owner: owner, SchoolID: schoolID, PublicKey: c.PublicKey,
		AttestationFormat: c.AttestationFormat, AAGUID: c.Authenticator.AAGUID, SignCount: c.Authenticator.SignCount,
		BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState, Label: label,
	}
	for _, t := range c.Transport {
		out.Transports = append(out.Transports, string(t))
	}
	return out
}

// Label returns a cleaned passkey label as typed by its owner: trimmed,
// one line, no control characters, at most 60 characters; def when empty.
func Label(s, def string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return -1
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > 60 {
		s = string([]rune(s)[:60])
	}
	if s == "" {
		return def
	}
	return s
}

// Descriptors returns the descriptors of creds, for exclusion lists.
func Descriptors(creds []school.Credential) []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(creds))
	for _, c := range creds {
		wc := ToWebAuthn(c)
		out = append(out, wc.Descriptor())
	}
	return out
}

// ceremonies keeps WebAuthn session data server-side, single-use, with
// expiry, in a school.CeremonyStore.
type ceremonies struct {
	Store school.CeremonyStore
	Now   func() time.Time
}

// Save stores sd for a ceremony of kind and returns the ceremony id to
// hand to the browser. It expires after ttl by the store's clock.
func (c ceremonies) Save(ctx context.Context, kind school.CeremonyKind, subjectID string, ref []byte, sd *webauthn.SessionData, ttl time.Duration) (string, error) {
	data, err := json.Marshal(sd)
	if err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(school.NewSecret(24))
	err = c.Store.SaveCeremony(ctx, school.Ceremony{
		ID: id, Kind: kind, SubjectID: subjectID, Ref: ref, Data: data, ExpiresAt: c.Now().Add(ttl),
	})
	return id, err
}

// ErrCeremony means the ceremony is unknown, used, expired or of another
// kind: the browser must start again.
var ErrCeremony = errors.New("passkey: no such ceremony")

// Consume takes the ceremony id out of the store (it cannot be used
// again, whatever happens next) and returns it with its session data.
func (c ceremonies) Consume(ctx context.Context, id string, kind school.CeremonyKind) (school.Ceremony, webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if id == "" || len(id) > 100 {
		return school.Ceremony{}, sd, ErrCeremony
	}
	cer, err := c.Store.ConsumeCeremony(ctx, id)
	switch {
	case errors.Is(err, school.ErrNotFound), errors.Is(err, school.ErrExpired), errors.Is(err, school.ErrUsed):
		return cer, sd, fmt.Errorf("%w: %v", ErrCeremony, err)
	case err != nil:
		return cer, sd, err
	case cer.Kind != kind:
		return cer, sd, fmt.Errorf("%w: a %s ceremony used for %s", ErrCeremony, cer.Kind, kind)
	}
	if err := json.Unmarshal(cer.Data, &sd); err != nil {
		return cer, sd, fmt.Errorf("passkey: stored ceremony: %w", err)
	}
	return cer, sd, nil
}

// Begun is the JSON answer to a ceremony's begin request: the ceremony id
// and the options for navigator.credentials.create/get.
type Begun struct {
	Ceremony string `json:"ceremony"`
	Options  any    `json:"options"`
}

// Finish is the JSON body of a ceremony's finish request.
type Finish struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
	Label      string          `json:"label,omitempty"`
	ReturnTo   string          `json:"return_to,omitempty"`
}

// Result is the JSON answer to a finish request: where to go next, or a
// translated, safe error message.
type Result struct {
	OK    bool   `json:"ok"`
	Next  string `json:"next,omitempty"`
	Error string `json:"error,omitempty"`
}

// ReadFinish decodes a finish request body of at most 64 KiB.
func ReadFinish(r *http.Request) (Finish, error) {
	var f Finish
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("passkey: finish body: %w", err)
	}
	if len(f.Credential) == 0 {
		return f, errors.New("passkey: finish body has no credential")
	}
	return f, nil
}

// WriteJSON writes v as JSON with status, uncached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Detail returns the developer detail of a go-webauthn error, for logs.
func Detail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %s %s", pe.Type, pe.Details, pe.DevInfo)
	}
	return err.Error()
}
