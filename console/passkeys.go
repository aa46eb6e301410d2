package console

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

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// mountPasskeys registers the staff passkey routes (JSON but the removal,
// which is a form):
//
//	POST /console/login/passkey/begin       start a discoverable sign-in
//	POST /console/login/passkey/finish      verify it, start the session
//	POST /console/account/passkeys/begin    start registering a passkey
//	POST /console/account/passkeys/finish   store it
//	POST /console/account/passkeys/remove   form: id (base64url)
//	POST /console/reauth/passkey/begin      re-authenticate with a passkey
//	POST /console/reauth/passkey/finish
//
// Staff passkeys live under staff user handles (school.StaffPasskeyStore),
// never the pupils', and their ceremonies are of staff kinds, so neither
// side's passkeys or ceremonies work at the other.
func (c *Console) mountPasskeys(mux *http.ServeMux) {
	mux.HandleFunc("POST /console/login/passkey/begin", c.passkeyLoginBegin)
	mux.HandleFunc("POST /console/login/passkey/finish", c.passkeyLoginFinish)
	mux.HandleFunc("POST /console/account/passkeys/begin", c.staff(c.passkeyRegisterBegin))
	mux.HandleFunc("POST /console/account/passkeys/finish", c.staff(c.passkeyRegisterFinish))
	mux.HandleFunc("POST /console/account/passkeys/remove", c.staff(c.passkeyRemove))
	mux.HandleFunc("POST /console/reauth/passkey/begin", c.staff(c.passkeyReauthBegin))
	mux.HandleFunc("POST /console/reauth/passkey/finish", c.staff(c.passkeyReauthFinish))
}

// PasskeysOn reports whether staff may use passkeys (a relying party is
// configured).
func (c *Console) PasskeysOn() bool { return c.wa != nil }

// passkeysOff answers 404 when passkeys are not configured.
func (c *Console) passkeysOff(w http.ResponseWriter, r *http.Request) bool {
	noStore(w)
	if c.wa == nil {
		c.opt.Site.JSONError(w, r, http.StatusNotFound, "console.passkey.off", nil)
		return true
	}
	return false
}

// staffUser is the staff member as a WebAuthn user.
func (c *Console) staffUser(ctx context.Context, staffID string) (*passkey.User, []school.StaffCredential, error) {
	st, err := c.opt.Store.GetStaff(ctx, staffID)
	if err != nil {
		return nil, nil, err
	}
	h, err := c.opt.Store.StaffHandle(ctx, staffID)
	if err != nil {
		return nil, nil, err
	}
	creds, err := c.opt.Store.ListStaffCredentials(ctx, staffID)
	if err != nil {
		return nil, nil, err
	}
	u := &passkey.User{Handle: h, Name: st.Username, DisplayName: st.Name}
	for _, sc := range creds {
		u.Credentials = append(u.Credentials, passkey.ToWebAuthn(sc.Credential()))
	}
	return u, creds, nil
}

func (c *Console) passkeyRegisterBegin(w http.ResponseWriter, r *http.Request, p Principal) {
	if c.passkeysOff(w, r) {
		return
	}
	ctx := r.Context()
	if fresh, err := c.recentlyAuthenticated(ctx, p); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	} else if !fresh {
		c.opt.Site.JSONError(w, r, http.StatusForbidden, "console.passkey.reauth_needed", nil)
		return
	}
	u, creds, err := c.staffUser(ctx, p.StaffID)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	excl := make([]school.Credential, 0, len(creds))
	for _, sc := range creds {
		excl = append(excl, sc.Credential())
	}
	creation, sd, err := c.wa.BeginRegistration(u,
		webauthn.WithExclusions(passkey.Descriptors(excl)),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	id, err := c.cer.Save(ctx, school.CeremonyStaffRegistration, p.StaffID, []byte(p.SessionRef), sd, c.opt.Passkey.RegistrationTimeout)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, passkey.Begun{Ceremony: id, Options: creation})
}

// cleanLabel trims a typed passkey label to at most 60 characters.
func cleanLabel(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for utf8.RuneCountInString(s) > 60 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func (c *Console) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request, p Principal) {
	if c.passkeysOff(w, r) {
		return
	}
	ctx := r.Context()
	f, err := passkey.ReadFinish(r)
	if err != nil {
		c.log.Warn("console: bad passkey finish request", "err", err)
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return
	}
	cer, sd, err := c.cer.Consume(ctx, f.Ceremony, school.CeremonyStaffRegistration)
	if err == nil && (cer.SubjectID != p.StaffID || string(cer.Ref) != p.SessionRef) {
		err = fmt.Errorf("%w: ceremony of another staff member or session", passkey.ErrCeremony)
	}
	if errors.Is(err, passkey.ErrCeremony) {
		c.log.Warn("console: passkey registration with an unknown, used or foreign ceremony", "staff", p.StaffID, "err", err)
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "console.passkey.ceremony", nil)
		return
	}
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(f.Credential)
	if err != nil {
		c.log.Warn("console: unparsable passkey registration", "staff", p.StaffID, "detail", passkey.Detail(err))
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "console.passkey.failed", nil)
		return
	}
	u, _, err := c.staffUser(ctx, p.StaffID)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	wc, err := c.wa.CreateCredential(u, sd, parsed)
	if err != nil || !wc.Flags.UserVerified {
		detail := "user not verified"
		if err != nil {
			detail = passkey.Detail(err)
		}
		c.log.Warn("console: passkey registration refused", "staff", p.StaffID, "detail", detail)
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "console.passkey.failed", nil)
		return
	}
	label := cleanLabel(f.Label)
	if label == "" {
		label = c.opt.Site.T(web.Lang(r), "console.passkey.default_label")
	}
	sc := school.StaffCredential{ID: wc.ID, StaffID: p.StaffID, PublicKey: wc.PublicKey, AttestationFormat: wc.AttestationFormat,
		AAGUID: wc.Authenticator.AAGUID, SignCount: wc.Authenticator.SignCount,
		BackupEligible: wc.Flags.BackupEligible, BackupState: wc.Flags.BackupState, Label: label}
	for _, t := range wc.Transport {
		sc.Transports = append(sc.Transports, string(t))
	}
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if _, err := q.AddStaffCredential(ctx, sc); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, p.SchoolID, "staff.passkey_add", p.StaffID, fmt.Sprintf(`{"credential":%q,"label":%q}`, credRef(sc.ID), label))
	})
	if errors.Is(err, school.ErrConflict) {
		c.opt.Site.JSONError(w, r, http.StatusConflict, "console.passkey.exists", nil)
		return
	}
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	c.log.Info("console: staff passkey registered", "staff", p.StaffID, "credential", credRef(sc.ID))
	passkey.WriteJSON(w, http.StatusOK, passkey.Result{OK: true, Next: "/console/account?passkey=added"})
}

// credRef is a short, non-secret name of a credential for audit entries
// and logs: the start of its base64url id.
func credRef(id []byte) string {
	s := base64.RawURLEncoding.EncodeToString(id)
	return s[:min(len(s), 16)]
}

func (c *Console) passkeyRemove(w http.ResponseWriter, r *http.Request, p Principal) {
	noStore(w)
	ctx := r.Context()
	id, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("id"))
	if err != nil || len(id) == 0 || len(id) > 1023 {
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if err := q.DeleteStaffCredential(ctx, p.StaffID, id); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, p.SchoolID, "staff.passkey_remove", p.StaffID, fmt.Sprintf(`{"credential":%q}`, credRef(id)))
	})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/account?passkey=removed", http.StatusSeeOther)
}

// loginBody is the body of a begin request.
type loginBody struct {
	Mediation string `json:"mediation"`
}

func (c *Console) passkeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	if c.passkeysOff(w, r) {
		return
	}
	var body loginBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&body); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return
	}
	if blocked, err := c.clientBlocked(r); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	} else if blocked {
		c.opt.Site.JSONError(w, r, http.StatusTooManyRequests, "console.login.limited", nil)
		return
	}
	mediation := protocol.MediationDefault
	if body.Mediation == "conditional" {
		mediation = protocol.MediationConditional
	}
	assertion, sd, err := c.wa.BeginDiscoverableMediatedLogin(mediation, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	id, err := c.cer.Save(r.Context(), school.CeremonyStaffLogin, "", nil, sd, c.opt.Passkey.LoginTimeout)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, passkey.Begun{Ceremony: id, Options: assertion})
}

func (c *Console) clientBlocked(r *http.Request) (bool, error) {
	n, err := c.opt.Store.RateCount(r.Context(), c.clientKey(r), c.opt.ClientWindow)
	return n >= c.opt.MaxClientFailures, err
}

// assertion is a verified passkey assertion of a staff member.
type assertion struct {
	staff  school.Staff
	stored school.StaffCredential
	wc     *webauthn.Credential
}

// errPasskeyRefused is a refused assertion; reason and key say why.
type errPasskeyRefused struct {
	reason string // for the log
	key    string // the text shown
	staff  school.Staff
}

func (e *errPasskeyRefused) Error() string { return "passkey refused: " + e.reason }

// verifyAssertion consumes the ceremony of kind and verifies the
// assertion in f; only staff credentials under staff handles, of enabled
// staff members, with user verification pass. onlyStaff, when set, must
// be the staff member.
func (c *Console) verifyAssertion(ctx context.Context, f passkey.Finish, kind school.CeremonyKind, onlyStaff string) (assertion, error) {
	var a assertion
	cer, sd, err := c.cer.Consume(ctx, f.Ceremony, kind)
	if errors.Is(err, passkey.ErrCeremony) {
		return a, &errPasskeyRefused{reason: err.Error(), key: "console.passkey.ceremony"}
	}
	if err != nil {
		return a, err
	}
	if onlyStaff != "" && cer.SubjectID != onlyStaff {
		return a, &errPasskeyRefused{reason: "ceremony of another staff member", key: "console.passkey.ceremony"}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(f.Credential)
	if err != nil {
		return a, &errPasskeyRefused{reason: "unparsable assertion: " + passkey.Detail(err), key: "console.passkey.failed"}
	}
	refused := &errPasskeyRefused{key: "console.passkey.unknown"}
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		staffID, err := c.opt.Store.StaffByHandle(ctx, userHandle)
		if err != nil {
			refused.reason = "unknown user handle"
			return nil, err
		}
		if a.stored, err = c.opt.Store.GetStaffCredential(ctx, rawID); err != nil {
			refused.reason = "unknown credential"
			return nil, err
		}
		if a.stored.StaffID != staffID || (onlyStaff != "" && staffID != onlyStaff) {
			refused.reason = "credential of another staff member"
			return nil, errors.New(refused.reason)
		}
		if a.staff, err = c.opt.Store.GetStaff(ctx, staffID); err != nil {
			refused.reason = "staff member gone"
			return nil, err
		}
		if a.staff.Disabled {
			refused.reason, refused.key, refused.staff = "staff member disabled", "console.login.wrong", a.staff
			return nil, errors.New(refused.reason)
		}
		return &passkey.User{Handle: userHandle, Name: a.staff.Username, Credentials: []webauthn.Credential{passkey.ToWebAuthn(a.stored.Credential())}}, nil
	}
	_, a.wc, err = c.wa.ValidatePasskeyLogin(handler, sd, parsed)
	if err == nil && !a.wc.Flags.UserVerified {
		err = errors.New("user not verified")
	}
	if err != nil {
		if refused.reason == "" {
			refused.reason, refused.key = "assertion invalid: "+passkey.Detail(err), "console.passkey.failed"
		}
		return a, refused
	}
	return a, nil
}

// recordUse stores the credential's counter, clone warning, backup state
// and last use; a counter that did not increase is flagged and audited.
func (c *Console) recordUse(ctx context.Context, q school.Queries, r *http.Request, a assertion) error {
	now := c.now()
	cloned := a.wc.Authenticator.CloneWarning && !a.stored.CloneWarning
	if _, err := q.UpdateStaffCredential(ctx, a.stored.ID, func(sc school.StaffCredential) (school.StaffCredential, error) {
		sc.SignCount = a.wc.Authenticator.SignCount
		sc.CloneWarning = sc.CloneWarning || a.wc.Authenticator.CloneWarning
		sc.BackupState = a.wc.Flags.BackupState
		sc.LastUsedAt = now
		return sc, nil
	}); err != nil {
		return err
	}
	if !cloned {
		return nil
	}
	c.log.Warn("console: signature counter did not increase: staff passkey flagged as possibly cloned",
		"staff", a.staff.ID, "credential", credRef(a.stored.ID), "stored_count", a.stored.SignCount)
	return c.audit(ctx, q, r, Principal{StaffID: "system"}, a.staff.SchoolID, "staff.passkey_clone_warning", a.staff.ID,
		fmt.Sprintf(`{"credential":%q}`, credRef(a.stored.ID)))
}

// refusal answers a refused assertion: counted against the client,
// audited when it names a staff member, logged.
func (c *Console) refusal(w http.ResponseWriter, r *http.Request, err error, purpose string) {
	var ref *errPasskeyRefused
	if !errors.As(err, &ref) {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	ctx := r.Context()
	if _, err := c.opt.Store.HitRate(ctx, c.clientKey(r), c.opt.ClientWindow); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	c.log.Warn("console: passkey "+purpose+" refused", "reason", ref.reason, "staff", ref.staff.ID)
	if ref.staff.ID != "" {
		if err := c.audit(ctx, nil, r, Principal{StaffID: ref.staff.ID, Role: ref.staff.Role}, ref.staff.SchoolID, "staff.signin_failed", ref.staff.ID,
			fmt.Sprintf(`{"purpose":%q,"method":"passkey","reason":%q}`, purpose, ref.reason)); err != nil {
			c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
			return
		}
	}
	status := http.StatusUnauthorized
	if ref.key == "console.passkey.ceremony" {
		status = http.StatusBadRequest // start again
	}
	c.opt.Site.JSONError(w, r, status, ref.key, nil)
}

// passkeyAMR are the methods of a user-verified passkey assertion: the
// key (hardware, or software when synced) and the user verification
// together count as two factors.
func passkeyAMR(sc school.StaffCredential) []string {
	if sc.BackupEligible {
		return []string{"swk", "user", "mfa"}
	}
	return []string{"hwk", "user", "mfa"}
}

func (c *Console) passkeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	if c.passkeysOff(w, r) {
		return
	}
	ctx := r.Context()
	f, err := passkey.ReadFinish(r)
	if err != nil {
		c.log.Warn("console: bad passkey finish request", "err", err)
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return
	}
	if blocked, err := c.clientBlocked(r); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	} else if blocked {
		c.opt.Site.JSONError(w, r, http.StatusTooManyRequests, "console.login.limited", nil)
		return
	}
	a, err := c.verifyAssertion(ctx, f, school.CeremonyStaffLogin, "")
	if err != nil {
		c.refusal(w, r, err, "signin")
		return
	}
	if err := c.opt.Store.InTx(ctx, func(q school.Queries) error { return c.recordUse(ctx, q, r, a) }); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	if err := c.recordSuccess(ctx, r, a.staff, "signin", "passkey"); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	if err := c.startSessionWith(w, r, a.staff, school.Session{ACR: acrMFA, AMR: passkeyAMR(a.stored), UserVerified: true, CredentialID: a.stored.ID}); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	c.log.Info("console: staff signed in with a passkey", "staff", a.staff.ID, "credential", credRef(a.stored.ID))
	passkey.WriteJSON(w, http.StatusOK, passkey.Result{OK: true, Next: safeReturn(f.ReturnTo)})
}

func (c *Console) passkeyReauthBegin(w http.ResponseWriter, r *http.Request, p Principal) {
	if c.passkeysOff(w, r) {
		return
	}
	ctx := r.Context()
	u, creds, err := c.staffUser(ctx, p.StaffID)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	if len(creds) == 0 {
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "console.passkey.none", nil)
		return
	}
	// Discoverable, but only this staff member's credentials are offered
	// and accepted.
	assertion, sd, err := c.wa.BeginLogin(u, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	id, err := c.cer.Save(ctx, school.CeremonyStaffReauth, p.StaffID, []byte(p.SessionRef), sd, c.opt.Passkey.LoginTimeout)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, passkey.Begun{Ceremony: id, Options: assertion})
}

func (c *Console) passkeyReauthFinish(w http.ResponseWriter, r *http.Request, p Principal) {
	if c.passkeysOff(w, r) {
		return
	}
	ctx := r.Context()
	f, err := passkey.ReadFinish(r)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return
	}
	a, err := c.verifyReauth(ctx, f, p)
	if err != nil {
		c.refusal(w, r, err, "reauth")
		return
	}
	now := c.now()
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if err := c.recordUse(ctx, q, r, a); err != nil {
			return err
		}
		if _, err := q.UpdateStaffAuth(ctx, p.StaffID, func(sa school.StaffAuth) (school.StaffAuth, error) {
			sa.ReauthSession, sa.ReauthAt = p.SessionRef, now
			return sa, nil
		}); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, p.SchoolID, "staff.reauth", p.StaffID, `{"method":"passkey"}`)
	})
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, passkey.Result{OK: true, Next: safeReturn(f.ReturnTo)})
}

// verifyReauth verifies a re-authentication assertion: the ceremony must
// be of p's session and the credential p's.
func (c *Console) verifyReauth(ctx context.Context, f passkey.Finish, p Principal) (assertion, error) {
	var a assertion
	cer, sd, err := c.cer.Consume(ctx, f.Ceremony, school.CeremonyStaffReauth)
	if errors.Is(err, passkey.ErrCeremony) {
		return a, &errPasskeyRefused{reason: err.Error(), key: "console.passkey.ceremony"}
	}
	if err != nil {
		return a, err
	}
	if cer.SubjectID != p.StaffID || string(cer.Ref) != p.SessionRef {
		return a, &errPasskeyRefused{reason: "ceremony of another session", key: "console.passkey.ceremony"}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(f.Credential)
	if err != nil {
		return a, &errPasskeyRefused{reason: "unparsable assertion: " + passkey.Detail(err), key: "console.passkey.failed"}
	}
	u, creds, err := c.staffUser(ctx, p.StaffID)
	if err != nil {
		return a, err
	}
	if a.staff, err = c.opt.Store.GetStaff(ctx, p.StaffID); err != nil {
		return a, err
	}
	a.wc, err = c.wa.ValidateLogin(u, sd, parsed)
	if err == nil && !a.wc.Flags.UserVerified {
		err = errors.New("user not verified")
	}
	if err != nil {
		return a, &errPasskeyRefused{reason: "assertion invalid: " + passkey.Detail(err), key: "console.passkey.failed", staff: a.staff}
	}
	for _, sc := range creds {
		if string(sc.ID) == string(a.wc.ID) {
			a.stored = sc
			return a, nil
		}
	}
	return a, &errPasskeyRefused{reason: "credential not the staff member's", key: "console.passkey.failed", staff: a.staff}
}

// PasskeyView is one of the staff member's passkeys on the account page.
type PasskeyView struct {
	ID           string // base64url, for the removal form
	Label        string
	CreatedAt    time.Time
	LastUsedAt   time.Time
	CloneWarning bool
}

// passkeyViews lists the staff member's passkeys for the account page.
func (c *Console) passkeyViews(ctx context.Context, staffID string) ([]PasskeyView, error) {
	if c.wa == nil {
		return nil, nil
	}
	creds, err := c.opt.Store.ListStaffCredentials(ctx, staffID)
	if err != nil {
		return nil, err
	}
	out := make([]PasskeyView, 0, len(creds))
	for _, sc := range creds {
		out = append(out, PasskeyView{ID: base64.RawURLEncoding.EncodeToString(sc.ID), Label: sc.Label,
			CreatedAt: sc.CreatedAt, LastUsedAt: sc.LastUsedAt, CloneWarning: sc.CloneWarning})
	}
	return out, nil
}
