package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// TOTPData is the data of the console-totp page.
type TOTPData struct {
	Frame
	QR            template.URL // data: URI of the QR PNG
	Secret        string       // base32, for typing into an app
	Error         string
	RecoveryCodes []string // shown once, after confirmation
}

func (c *Console) totpPage(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	staff, err := c.opt.Store.GetStaff(ctx, p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if len(staff.TOTPSecret) > 0 {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
		return
	}
	data, err := c.pendingTOTP(ctx, staff)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data.Me = p
	c.opt.Site.Render(w, r, http.StatusOK, "console-totp", data)
}

// pendingTOTP returns the staff member's pending TOTP enrolment, making
// one when there is none.
func (c *Console) pendingTOTP(ctx context.Context, staff school.Staff) (TOTPData, error) {
	var secret string
	_, err := c.opt.Store.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
		if len(a.PendingTOTP) > 0 {
			if s, err := c.opt.Sealer.Open(a.PendingTOTP, sealTOTPContext(staff.ID)); err == nil {
				secret = string(s)
				return a, nil
			}
		}
		k, err := NewTOTPKey(staff.Username)
		if err != nil {
			return a, err
		}
		secret = k.Secret()
		a.PendingTOTP = c.opt.Sealer.Seal([]byte(secret), sealTOTPContext(staff.ID))
		return a, nil
	})
	if err != nil {
		return TOTPData{}, err
	}
	k, err := TOTPKeyFromSecret(staff.Username, secret)
	if err != nil {
		return TOTPData{}, err
	}
	qr, err := QRDataURI(k, 240)
	return TOTPData{QR: template.URL(qr), Secret: secret}, err
}

func (c *Console) totpConfirm(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	staff, err := c.opt.Store.GetStaff(ctx, p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if len(staff.TOTPSecret) > 0 {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
		return
	}
	if n, err := c.opt.Store.RateCount(ctx, c.clientKey(r), c.opt.ClientWindow); err != nil {
		c.fail(w, r, err)
		return
	} else if n >= c.opt.MaxClientFailures {
		c.opt.Site.Error(w, r, http.StatusTooManyRequests, "error.rate_limited")
		return
	}
	codes, hashes := newRecoveryCodes(c.opt.Sealer)
	errWrong := errors.New("wrong code")
	var sealed []byte
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		_, err := q.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
			secret, err := c.opt.Sealer.Open(a.PendingTOTP, sealTOTPContext(staff.ID))
			if err != nil {
				return a, errWrong
			}
			step, ok := matchTOTP(string(secret), r.PostFormValue("code"), c.now(), 0)
			if !ok {
				return a, errWrong
			}
			sealed = a.PendingTOTP
			a.PendingTOTP, a.TOTPLastStep, a.RecoveryHashes = nil, step, hashes
			return a, nil
		})
		if err != nil {
			return err
		}
		if _, err := q.UpdateStaff(ctx, staff.ID, func(s school.Staff) (school.Staff, error) {
			s.TOTPSecret = sealed
			return s, nil
		}); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, staff.SchoolID, "staff.totp_enrol", staff.ID, "")
	})
	if errors.Is(err, errWrong) {
		_, _ = c.opt.Store.HitRate(ctx, c.clientKey(r), c.opt.ClientWindow)
		data, err := c.pendingTOTP(ctx, staff)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Me, data.Error = p, c.opt.Site.T(web.Lang(r), "console.totp.wrong")
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-totp", data)
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	staff.TOTPSecret = sealed
	if err := c.startSession(w, r, staff, acrMFA, []string{"pwd", "otp", "mfa"}); err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-totp", TOTPData{Frame: Frame{Me: p}, RecoveryCodes: codes})
}

// ReauthData is the data of the console-reauth page.
type ReauthData struct {
	Frame
	Return string
	Error  string
	// Passkeys offers re-authenticating with a passkey.
	Passkeys bool
}

func (c *Console) reauthPage(w http.ResponseWriter, r *http.Request, p Principal) {
	c.opt.Site.Render(w, r, http.StatusOK, "console-reauth", ReauthData{Frame: Frame{Me: p}, Return: safeReturn(r.URL.Query().Get("return")), Passkeys: c.PasskeysOn()})
}

func (c *Console) reauth(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	data := ReauthData{Frame: Frame{Me: p}, Return: safeReturn(r.PostFormValue("return")), Passkeys: c.PasskeysOn()}
	_, out, _, err := c.check(ctx, r, p.Username, r.PostFormValue("password"), r.PostFormValue("code"), "reauth")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	switch out {
	case outcomeOK:
	case outcomeLimited:
		data.Error = c.opt.Site.T(web.Lang(r), "console.login.limited")
		c.opt.Site.Render(w, r, http.StatusTooManyRequests, "console-reauth", data)
		return
	default:
		data.Error = c.opt.Site.T(web.Lang(r), "console.login.wrong")
		c.opt.Site.Render(w, r, http.StatusUnauthorized, "console-reauth", data)
		return
	}
	now := c.now()
	if _, err := c.opt.Store.UpdateStaffAuth(ctx, p.StaffID, func(a school.StaffAuth) (school.StaffAuth, error) {
		a.ReauthSession, a.ReauthAt = p.SessionRef, now
		return a, nil
	}); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, data.Return, http.StatusSeeOther)
}

// recentlyReauthenticated reports whether p's session re-authenticated
// within the re-authentication window.
func (c *Console) recentlyReauthenticated(ctx context.Context, p Principal) (bool, error) {
	a, err := c.opt.Store.GetStaffAuth(ctx, p.StaffID)
	if err != nil {
		return false, err
	}
	return a.ReauthSession == p.SessionRef && !a.ReauthAt.IsZero() && c.now().Sub(a.ReauthAt) < c.opt.ReauthWindow, nil
}

// recentlyAuthenticated reports whether p signed in, or re-authenticated,
// within the re-authentication window: adding a lasting credential such as
// a passkey needs that, so a stolen live session cannot make itself
// permanent.
func (c *Console) recentlyAuthenticated(ctx context.Context, p Principal) (bool, error) {
	if !p.AuthTime.IsZero() && c.now().Sub(p.AuthTime) < c.opt.ReauthWindow {
		return true, nil
	}
	return c.recentlyReauthenticated(ctx, p)
}

// needReauth sends the browser to re-authenticate and come back to
// returnTo; the form must be submitted again afterwards.
func (c *Console) needReauth(w http.ResponseWriter, r *http.Request, returnTo string) {
	http.Redirect(w, r, "/console/reauth?return="+url.QueryEscape(safeReturn(returnTo)), http.StatusSeeOther)
}

// AccountData is the data of the console-account page.
type AccountData struct {
	Frame
	Errors   map[string]string
	Saved    bool
	Recovery int
	// MustChange: the password is a one-time password to change now.
	MustChange bool
	// PasskeysOn says whether passkeys are offered; Passkeys are the
	// staff member's, and PasskeyNotice "added" or "removed" after a change.
	PasskeysOn    bool
	Passkeys      []PasskeyView
	PasskeyNotice string
	// NeedReauth: adding a passkey needs a recent sign-in or
	// re-authentication.
	NeedReauth bool
}

func (c *Console) accountPage(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := c.opt.Store.GetStaffAuth(r.Context(), p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	keys, err := c.passkeyViews(r.Context(), p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	notice := r.URL.Query().Get("passkey")
	if notice != "added" && notice != "removed" {
		notice = ""
	}
	fresh, err := c.recentlyAuthenticated(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	st, err := c.opt.Store.GetStaff(r.Context(), p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-account", AccountData{Frame: Frame{Me: p}, Saved: r.URL.Query().Get("saved") == "1",
		MustChange: !st.PasswordExpires.IsZero(), Recovery: len(a.RecoveryHashes), PasskeysOn: c.PasskeysOn(), Passkeys: keys, PasskeyNotice: notice, NeedReauth: !fresh})
}

func (c *Console) changePassword(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	lang := web.Lang(r)
	errs := map[string]string{}
	nw := r.PostFormValue("new")
	if len([]rune(nw)) < MinPasswordLength {
		errs["new"] = c.opt.Site.T(lang, "console.account.too_short", MinPasswordLength)
	} else if len(nw) > 200 {
		errs["new"] = c.opt.Site.T(lang, "console.account.too_long")
	} else if nw != r.PostFormValue("repeat") {
		errs["repeat"] = c.opt.Site.T(lang, "console.account.mismatch")
	}
	staff, err := c.opt.Store.GetStaff(ctx, p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// Guessing the current password is limited like sign-in: the client's
	// failures and the account's backoff (shared with sign-in).
	status := http.StatusBadRequest
	limited, err := c.changeLimited(ctx, r, p.StaffID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if limited {
		status = http.StatusTooManyRequests
		errs = map[string]string{"current": c.opt.Site.T(lang, "console.account.limited")}
	} else if len(errs) == 0 && !VerifyPassword(staff.PasswordHash, r.PostFormValue("current")) {
		if err := c.countFailure(ctx, r, staff, "password_change"); err != nil {
			c.fail(w, r, err)
			return
		}
		errs["current"] = c.opt.Site.T(lang, "console.account.wrong_current")
	}
	if len(errs) > 0 {
		keys, err := c.passkeyViews(ctx, p.StaffID)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		c.opt.Site.Render(w, r, status, "console-account", AccountData{Frame: Frame{Me: p}, Errors: errs, MustChange: !staff.PasswordExpires.IsZero(), PasskeysOn: c.PasskeysOn(), Passkeys: keys})
		return
	}
	hash := HashPassword(nw, c.opt.Argon2)
	ended := 0
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		ended = 0
		if _, err := q.UpdateStaff(ctx, p.StaffID, func(s school.Staff) (school.Staff, error) {
			s.PasswordHash, s.PasswordExpires = hash, time.Time{}
			return s, nil
		}); err != nil {
			return err
		}
		if _, err := q.UpdateStaffAuth(ctx, p.StaffID, func(a school.StaffAuth) (school.StaffAuth, error) {
			a.Failures, a.LockedUntil = 0, time.Time{}
			return a, nil
		}); err != nil {
			return err
		}
		// A new password ends every other session of this staff member
		// (a stolen session does not outlive the change).
		sessions, err := q.ListSessions(ctx, p.StaffID)
		if err != nil {
			return err
		}
		for _, s := range sessions {
			if s.Ref == p.SessionRef || !s.RevokedAt.IsZero() {
				continue
			}
			if err := q.RevokeSession(ctx, p.StaffID, s.Ref, "password changed"); err != nil {
				return err
			}
			ended++
		}
		return c.audit(ctx, q, r, p, p.SchoolID, "staff.password_change", p.StaffID, fmt.Sprintf(`{"sessions_ended":%d}`, ended))
	})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/account?saved=1", http.StatusSeeOther)
}
