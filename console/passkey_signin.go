package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
)

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
	stored school.Credential
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
		staffID, err := c.opt.Store.OwnerByHandle(ctx, school.OwnerStaff, userHandle)
		if err != nil {
			refused.reason = "unknown user handle"
			return nil, err
		}
		if a.stored, err = c.opt.Store.GetCredential(ctx, school.OwnerStaff, rawID); err != nil {
			refused.reason = "unknown credential"
			return nil, err
		}
		if a.stored.Owner.ID != staffID || (onlyStaff != "" && staffID != onlyStaff) {
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
		return &passkey.User{Handle: userHandle, Name: a.staff.Username, Credentials: []webauthn.Credential{passkey.ToWebAuthn(a.stored)}}, nil
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
	if err := q.RecordCredentialUse(ctx, a.stored.ID, school.CredentialUse{SignCount: a.wc.Authenticator.SignCount,
		CloneWarning: a.wc.Authenticator.CloneWarning, BackupState: a.wc.Flags.BackupState, At: now}); err != nil {
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
func passkeyAMR(sc school.Credential) []string {
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
