package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

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
	if c.clientBlocked(w, r) {
		return
	}
	begun, err := c.rp.BeginLogin(r.Context(), passkey.Mediation(body.Mediation), school.CeremonyStaffLogin)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, begun)
}

// clientBlocked answers a client that failed too often lately (429) or
// the store's failure, and reports whether it did.
func (c *Console) clientBlocked(w http.ResponseWriter, r *http.Request) bool {
	n, err := c.opt.Store.RateCount(r.Context(), c.clientKey(r), c.opt.ClientWindow)
	switch {
	case err != nil:
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
	case n >= c.opt.MaxClientFailures:
		c.opt.Site.JSONError(w, r, http.StatusTooManyRequests, "console.login.limited", nil)
	default:
		return false
	}
	return true
}

// recordUse stores the credential's counter, clone warning, backup state
// and last use; a counter that did not increase is flagged and audited.
func (c *Console) recordUse(ctx context.Context, q school.Queries, r *http.Request, staff school.Staff, a passkey.Assertion) error {
	if err := q.RecordCredentialUse(ctx, a.Credential.ID, a.Use); err != nil {
		return err
	}
	if !a.Cloned {
		return nil
	}
	c.log.Warn("console: signature counter did not increase: staff passkey flagged as possibly cloned",
		"staff", staff.ID, "credential", credRef(a.Credential.ID), "stored_count", a.Credential.SignCount)
	return c.audit(ctx, q, r, Principal{StaffID: "system"}, staff.SchoolID, "staff.passkey_clone_warning", staff.ID,
		fmt.Sprintf(`{"credential":%q}`, credRef(a.Credential.ID)))
}

// refusalKey is the text key of the message for a refused passkey
// sign-in (purpose "signin") or re-authentication.
func refusalKey(err error, purpose string) string {
	var inactive *passkey.InactiveOwnerError
	switch {
	case errors.Is(err, passkey.ErrCeremony):
		return "console.passkey.ceremony"
	case errors.As(err, &inactive):
		return "console.login.wrong"
	case purpose == "signin" && (errors.Is(err, passkey.ErrUnknownHandle) || errors.Is(err, passkey.ErrUnknownCredential) || errors.Is(err, passkey.ErrForeignCredential)):
		return "console.passkey.unknown"
	}
	return "console.passkey.failed"
}

// refusal answers a refused assertion: counted against the client,
// audited when it names a staff member (staff, else zero), logged. A
// server error is answered as one.
func (c *Console) refusal(w http.ResponseWriter, r *http.Request, err error, purpose string, staff school.Staff) {
	if !passkey.Refusal(err) {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	ctx := r.Context()
	if _, err := c.opt.Store.HitRate(ctx, c.clientKey(r), c.opt.ClientWindow); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	c.log.Warn("console: passkey "+purpose+" refused", "reason", err.Error(), "staff", staff.ID)
	if staff.ID != "" {
		if err := c.audit(ctx, nil, r, Principal{StaffID: staff.ID, Role: staff.Role}, staff.SchoolID, "staff.signin_failed", staff.ID,
			fmt.Sprintf(`{"purpose":%q,"method":"passkey","reason":%q}`, purpose, err.Error())); err != nil {
			c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
			return
		}
	}
	key := refusalKey(err, purpose)
	status := http.StatusUnauthorized
	if key == "console.passkey.ceremony" {
		status = http.StatusBadRequest // start again
	}
	c.opt.Site.JSONError(w, r, status, key, nil)
}

func (c *Console) passkeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	f, ok := c.readFinish(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if c.clientBlocked(w, r) {
		return
	}
	// Only staff credentials under staff handles, of enabled staff
	// members, pass.
	var staff school.Staff
	a, err := c.rp.FinishStoredLogin(ctx, f, school.CeremonyStaffLogin, passkey.Login{Kind: school.OwnerStaff,
		Allow: func(ctx context.Context, sc school.Credential) error {
			var err error
			staff, err = c.opt.Store.GetStaff(ctx, sc.Owner.ID)
			switch {
			case errors.Is(err, school.ErrNotFound):
				return fmt.Errorf("%w: staff member gone", passkey.ErrUnknownHandle)
			case err != nil:
				return fmt.Errorf("%w: %w", passkey.ErrStore, err)
			case staff.Disabled:
				return &passkey.InactiveOwnerError{Status: "disabled"}
			}
			return nil
		}})
	if err != nil {
		// Only a disabled staff member's refusal is audited: the others
		// name nobody for sure.
		var inactive *passkey.InactiveOwnerError
		if !errors.As(err, &inactive) {
			staff = school.Staff{}
		}
		c.refusal(w, r, err, "signin", staff)
		return
	}
	if err := c.opt.Store.InTx(ctx, func(q school.Queries) error { return c.recordUse(ctx, q, r, staff, a) }); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	if err := c.recordSuccess(ctx, r, staff, "signin", "passkey"); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	if err := c.startSessionWith(w, r, staff, school.Session{ACR: acrMFA, AMR: a.AMR(), UserVerified: true, CredentialID: a.Credential.ID}); err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	c.log.Info("console: staff signed in with a passkey", "staff", staff.ID, "credential", credRef(a.Credential.ID))
	passkey.WriteJSON(w, http.StatusOK, passkey.Result{OK: true, Next: safeReturn(f.ReturnTo)})
}

func (c *Console) passkeyReauthBegin(w http.ResponseWriter, r *http.Request, p Principal) {
	if c.passkeysOff(w, r) {
		return
	}
	// Discoverable, but only this staff member's credentials are offered
	// and accepted.
	begun, err := c.rp.BeginOwnerLogin(r.Context(), school.StaffOwner(p.StaffID), school.CeremonyStaffReauth, []byte(p.SessionRef))
	if errors.Is(err, passkey.ErrNoCredentials) {
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "console.passkey.none", nil)
		return
	}
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, begun)
}

func (c *Console) passkeyReauthFinish(w http.ResponseWriter, r *http.Request, p Principal) {
	f, ok := c.readFinish(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	// The ceremony must be of p's session and the credential p's.
	staff := school.Staff{ID: p.StaffID, Role: p.Role, SchoolID: p.SchoolID}
	a, err := c.rp.FinishStoredLogin(ctx, f, school.CeremonyStaffReauth, passkey.Login{Kind: school.OwnerStaff, Owner: p.StaffID, Ref: []byte(p.SessionRef)})
	if err != nil {
		if errors.Is(err, passkey.ErrCeremony) || errors.Is(err, passkey.ErrMalformed) {
			staff = school.Staff{} // not audited: nothing was checked against the staff member
		}
		c.refusal(w, r, err, "reauth", staff)
		return
	}
	now := c.now()
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if err := c.recordUse(ctx, q, r, staff, a); err != nil {
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
