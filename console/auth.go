package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// Session levels (the session's ACR): a password alone only allows
// enrolling TOTP; everything else needs both factors.
const (
	acrPassword = "pwd"
	acrMFA      = "mfa"
)

type handler func(w http.ResponseWriter, r *http.Request, p Principal)

// Frame is the part of every console page's data that the navigation
// needs: who is signed in and, on school pages, which school.
type Frame struct {
	Me     Principal
	School school.School
}

// IsOperator reports whether the signed-in staff member is an operator.
func (f Frame) IsOperator() bool { return f.Me.Role == school.RoleOperator }

// IsAdmin reports whether the signed-in staff member may manage the
// school shown (operator or school admin).
func (f Frame) IsAdmin() bool {
	return f.Me.Role == school.RoleOperator || f.Me.Role == school.RoleSchoolAdmin
}

// session wraps h: it needs an active staff session of an enabled staff
// member, with both factors unless allowPartial.
func (c *Console) session(h handler, mfa bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		s, err := c.sessions.Current(w, r)
		if err != nil {
			if !errors.Is(err, school.ErrNotFound) && !errors.Is(err, school.ErrExpired) {
				c.fail(w, r, err)
				return
			}
			c.toLogin(w, r)
			return
		}
		st, err := c.opt.Store.GetStaff(r.Context(), s.SubjectID)
		if err != nil || st.Disabled {
			if err != nil && !errors.Is(err, school.ErrNotFound) {
				c.fail(w, r, err)
				return
			}
			_ = c.opt.Store.RevokeSession(r.Context(), s.SubjectID, s.Ref, "staff disabled")
			c.toLogin(w, r)
			return
		}
		if mfa && s.ACR != acrMFA {
			http.Redirect(w, r, "/console/totp", http.StatusSeeOther)
			return
		}
		// A one-time password must be changed before anything else.
		if mfa && !st.PasswordExpires.IsZero() && r.URL.Path != "/console/account" && r.URL.Path != "/console/account/password" {
			http.Redirect(w, r, "/console/account", http.StatusSeeOther)
			return
		}
		h(w, r, Principal{StaffID: st.ID, Username: st.Username, Name: st.Name, Role: st.Role,
			SchoolID: st.SchoolID, ClassIDs: st.ClassIDs, SessionRef: s.Ref, AuthTime: s.AuthTime})
	}
}

// staff wraps h to need a full (two-factor) staff session.
func (c *Console) staff(h handler) http.HandlerFunc { return c.session(h, true) }

func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	ret := ""
	if r.Method == http.MethodGet {
		ret = r.URL.RequestURI()
	}
	http.Redirect(w, r, "/console/login?return="+url.QueryEscape(safeReturn(ret)), http.StatusSeeOther)
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

// LoginData is the data of the console-login page.
type LoginData struct {
	Username string
	Return   string
	Error    string
	// Passkeys offers signing in with a passkey.
	Passkeys bool
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if s, err := c.sessions.Current(w, r); err == nil && s.ACR == acrMFA {
		http.Redirect(w, r, safeReturn(r.URL.Query().Get("return")), http.StatusSeeOther)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-login", LoginData{Return: safeReturn(r.URL.Query().Get("return")), Passkeys: c.PasskeysOn()})
}

// outcome is the result of checking a sign-in attempt.
type outcome int

const (
	outcomeOK          outcome = iota
	outcomeWrong               // wrong username, password or code
	outcomeLimited             // too many attempts (account locked or client blocked)
	outcomeNeedsTOTP           // password right, no TOTP enrolled yet
	outcomeExpired             // a one-time password, right but expired
	outcomeUnavailable         // the account cannot sign in with a password
)

func (c *Console) clientKey(r *http.Request) string { return "staff-signin-ip:" + c.opt.ClientIP(r) }

// pairKey counts the failures of one client on one username.
func (c *Console) pairKey(r *http.Request, username string) string {
	return "staff-signin-pair:" + c.opt.ClientIP(r) + "|" + username
}

// waitText is the "try again in …" sentence of a refused sign-in.
func (c *Console) waitText(r *http.Request, wait time.Duration) string {
	lang := web.Lang(r)
	secs := int((wait + time.Second - 1) / time.Second)
	switch {
	case secs <= 1:
		return c.opt.Site.T(lang, "console.login.wait_1s")
	case secs < 120:
		return c.opt.Site.T(lang, "console.login.wait_s", secs)
	}
	return c.opt.Site.T(lang, "console.login.wait_min", (secs+59)/60)
}

// check verifies password and TOTP (or recovery) code for username under
// the per-client rate limits and the per-account backoff, records the
// failure or success, and returns the staff member on
// outcomeOK/outcomeNeedsTOTP.
// A TOTP code is single-use: its step is recorded in the same
// transaction that accepts it.
//
// The limits: a client (address) with MaxClientFailures failures on any
// usernames, or MaxPairFailures on this one, within ClientWindow waits
// for the window; the account itself backs off exponentially (LockBase
// doubling up to LockMax) after MaxFailures consecutive failures from
// anywhere. Attempts during a wait are neither checked nor counted, so
// nobody can lengthen it: the right password and code work once it is
// over. wait is how long the caller must wait on outcomeLimited.
func (c *Console) check(ctx context.Context, r *http.Request, username, password, code, purpose string) (school.Staff, outcome, time.Duration, error) {
	st := c.opt.Store
	now := c.now()
	for _, k := range []struct {
		key string
		max int
	}{{c.clientKey(r), c.opt.MaxClientFailures}, {c.pairKey(r, username), c.opt.MaxPairFailures}} {
		if n, err := st.RateCount(ctx, k.key, c.opt.ClientWindow); err != nil {
			return school.Staff{}, 0, 0, err
		} else if n >= k.max {
			c.log.Warn("console: sign-in blocked for client", "attempts", n)
			return school.Staff{}, outcomeLimited, c.opt.ClientWindow, nil
		}
	}
	staff, out, err := c.checkAccount(ctx, r, username, password, code, purpose, now)
	var wait time.Duration
	if out == outcomeLimited {
		if a, aerr := st.GetStaffAuth(ctx, staff.ID); aerr == nil && staff.ID != "" {
			wait = a.LockedUntil.Sub(now)
		} else {
			wait = c.opt.ClientWindow
		}
	}
	return staff, out, wait, err
}

func (c *Console) checkAccount(ctx context.Context, r *http.Request, username, password, code, purpose string, now time.Time) (school.Staff, outcome, error) {
	st := c.opt.Store
	staff, err := st.StaffByUsername(ctx, username)
	known := err == nil
	if err != nil && !errors.Is(err, school.ErrNotFound) {
		return staff, 0, err
	}
	userKey := "staff-signin-user:" + username
	if known {
		a, err := st.GetStaffAuth(ctx, staff.ID)
		if err != nil {
			return staff, 0, err
		}
		if now.Before(a.LockedUntil) {
			return staff, outcomeLimited, nil
		}
	} else if n, err := st.RateCount(ctx, userKey, c.opt.ClientWindow); err != nil {
		return staff, 0, err
	} else if n >= c.opt.MaxFailures {
		return staff, outcomeLimited, nil
	}
	hash := c.dummyHash
	if known && staff.PasswordHash != "" {
		hash = staff.PasswordHash
	}
	pwOK := VerifyPassword(hash, password) && known && staff.PasswordHash != "" && !staff.Disabled
	if pwOK && !staff.PasswordExpires.IsZero() && !now.Before(staff.PasswordExpires) {
		return staff, outcomeExpired, nil
	}
	if pwOK && len(staff.TOTPSecret) == 0 {
		if purpose == "reauth" {
			return staff, outcomeWrong, nil
		}
		return staff, outcomeNeedsTOTP, c.recordSuccess(ctx, r, staff, purpose, "pwd")
	}
	if pwOK {
		ok, method, err := c.useSecondFactor(ctx, staff, code)
		if err != nil {
			return staff, 0, err
		}
		if ok {
			return staff, outcomeOK, c.recordSuccess(ctx, r, staff, purpose, method)
		}
	}
	// A failure: count it against the client and the account.
	for _, k := range []string{c.clientKey(r), c.pairKey(r, username)} {
		if _, err := st.HitRate(ctx, k, c.opt.ClientWindow); err != nil {
			return staff, 0, err
		}
	}
	if !known {
		if _, err := st.HitRate(ctx, userKey, c.opt.ClientWindow); err != nil {
			return staff, 0, err
		}
		c.log.Info("console: sign-in with an unknown username")
		return staff, outcomeWrong, nil
	}
	var failures int
	var locked time.Time
	_, err = st.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
		a.Failures++
		if a.Failures >= c.opt.MaxFailures {
			d := c.opt.LockBase << min(a.Failures-c.opt.MaxFailures, 20)
			a.LockedUntil = now.Add(min(d, c.opt.LockMax))
		}
		failures, locked = a.Failures, a.LockedUntil
		return a, nil
	})
	if err != nil {
		return staff, 0, err
	}
	detail := fmt.Sprintf(`{"purpose":%q,"failures":%d`, purpose, failures)
	if !locked.IsZero() {
		detail += fmt.Sprintf(`,"locked_until":%q`, locked.UTC().Format(time.RFC3339))
	}
	if err := c.audit(ctx, nil, r, Principal{StaffID: staff.ID, Role: staff.Role}, staff.SchoolID, "staff.signin_failed", staff.ID, detail+"}"); err != nil {
		return staff, 0, err
	}
	c.log.Info("console: sign-in failed", "staff", staff.ID, "failures", failures, "locked", !locked.IsZero())
	if staff.Disabled || staff.PasswordHash == "" {
		return staff, outcomeWrong, nil
	}
	return staff, outcomeWrong, nil
}

// useSecondFactor accepts a TOTP code of a step later than the last used
// one, or an unused recovery code, and consumes it atomically.
func (c *Console) useSecondFactor(ctx context.Context, staff school.Staff, code string) (bool, string, error) {
	secret, err := c.opt.Sealer.Open(staff.TOTPSecret, sealTOTPContext(staff.ID))
	if err != nil {
		return false, "", fmt.Errorf("console: open TOTP secret of %s: %w", staff.ID, err)
	}
	errNo := errors.New("no match")
	method := "otp"
	_, err = c.opt.Store.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
		if step, ok := matchTOTP(string(secret), code, c.now(), a.TOTPLastStep); ok {
			a.TOTPLastStep = step
			return a, nil
		}
		if looksLikeRecovery(code) {
			if i := recoveryMatch(c.opt.Sealer, a.RecoveryHashes, code); i >= 0 {
				a.RecoveryHashes = slices.Delete(slices.Clone(a.RecoveryHashes), i, i+1)
				method = "recovery"
				return a, nil
			}
		}
		return a, errNo
	})
	if errors.Is(err, errNo) {
		return false, "", nil
	}
	return err == nil, method, err
}

func (c *Console) recordSuccess(ctx context.Context, r *http.Request, staff school.Staff, purpose, method string) error {
	_, err := c.opt.Store.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
		a.Failures, a.LockedUntil = 0, time.Time{}
		return a, nil
	})
	if err != nil {
		return err
	}
	return c.audit(ctx, nil, r, Principal{StaffID: staff.ID, Role: staff.Role}, staff.SchoolID, "staff."+purpose, staff.ID, fmt.Sprintf(`{"method":%q}`, method))
}

// changeLimited reports whether a password change must wait: the
// client's failures or the account's lockout (as at sign-in).
func (c *Console) changeLimited(ctx context.Context, r *http.Request, staffID string) (bool, error) {
	if n, err := c.opt.Store.RateCount(ctx, c.clientKey(r), c.opt.ClientWindow); err != nil || n >= c.opt.MaxClientFailures {
		return err == nil, err
	}
	a, err := c.opt.Store.GetStaffAuth(ctx, staffID)
	if err != nil {
		return false, err
	}
	return c.now().Before(a.LockedUntil), nil
}

// countFailure counts a wrong password of a known staff member (not at
// sign-in) against the client and the account, with the sign-in backoff.
func (c *Console) countFailure(ctx context.Context, r *http.Request, staff school.Staff, purpose string) error {
	if _, err := c.opt.Store.HitRate(ctx, c.clientKey(r), c.opt.ClientWindow); err != nil {
		return err
	}
	now := c.now()
	var failures int
	_, err := c.opt.Store.UpdateStaffAuth(ctx, staff.ID, func(a school.StaffAuth) (school.StaffAuth, error) {
		a.Failures++
		if a.Failures >= c.opt.MaxFailures {
			d := c.opt.LockBase << min(a.Failures-c.opt.MaxFailures, 20)
			a.LockedUntil = now.Add(min(d, c.opt.LockMax))
		}
		failures = a.Failures
		return a, nil
	})
	if err != nil {
		return err
	}
	return c.audit(ctx, nil, r, Principal{StaffID: staff.ID, Role: staff.Role}, staff.SchoolID, "staff.signin_failed", staff.ID,
		fmt.Sprintf(`{"purpose":%q,"failures":%d}`, purpose, failures))
}

// normUsername is the canonical form of a typed username.
func normUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	ctx := r.Context()
	username := normUsername(r.PostFormValue("username"))
	data := LoginData{Username: username, Return: safeReturn(r.PostFormValue("return")), Passkeys: c.PasskeysOn()}
	lang := web.Lang(r)
	if username == "" || len(username) > 100 || len(r.PostFormValue("password")) > 1000 {
		data.Error = c.opt.Site.T(lang, "console.login.wrong")
		c.opt.Site.Render(w, r, http.StatusUnauthorized, "console-login", data)
		return
	}
	staff, out, wait, err := c.check(ctx, r, username, r.PostFormValue("password"), r.PostFormValue("code"), "signin")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	switch out {
	case outcomeLimited:
		w.Header().Set("Retry-After", fmt.Sprint(int((wait+time.Second-1)/time.Second)))
		data.Error = c.opt.Site.T(lang, "console.login.too_many") + " " + c.waitText(r, wait)
		c.opt.Site.Render(w, r, http.StatusTooManyRequests, "console-login", data)
		return
	case outcomeWrong, outcomeUnavailable:
		data.Error = c.opt.Site.T(lang, "console.login.wrong")
		c.opt.Site.Render(w, r, http.StatusUnauthorized, "console-login", data)
		return
	case outcomeExpired:
		data.Error = c.opt.Site.T(lang, "console.login.onetime_expired")
		c.opt.Site.Render(w, r, http.StatusUnauthorized, "console-login", data)
		return
	}
	acr, amr := acrMFA, []string{"pwd", "otp", "mfa"}
	next := data.Return
	if out == outcomeNeedsTOTP {
		acr, amr, next = acrPassword, []string{"pwd"}, "/console/totp"
	}
	if err := c.startSession(w, r, staff, acr, amr); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// startSession ends the browser's current staff session, if any (no
// session fixation across sign-ins), and starts a new one.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, staff school.Staff, acr string, amr []string) error {
	return c.startSessionWith(w, r, staff, school.Session{ACR: acr, AMR: amr})
}

// startSessionWith is startSession for a session like tmpl (its ACR, AMR,
// user verification and credential).
func (c *Console) startSessionWith(w http.ResponseWriter, r *http.Request, staff school.Staff, tmpl school.Session) error {
	s, err := c.opt.Store.CreateSession(r.Context(), c.sessions.New(school.Session{
		SubjectID: staff.ID, SchoolID: staff.SchoolID,
		AMR: tmpl.AMR, ACR: tmpl.ACR, UserVerified: tmpl.UserVerified, CredentialID: tmpl.CredentialID,
		UserAgent: truncate(r.UserAgent(), 200),
	}))
	if err != nil {
		return err
	}
	return c.sessions.Start(w, r, s)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if _, err := c.sessions.End(w, r, "logout"); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}
