package console

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

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
// Staff passkeys are credentials of owner kind staff, under staff user
// handles, never the pupils', and their ceremonies are of staff kinds, so neither
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
func (c *Console) PasskeysOn() bool { return c.rp != nil }

// passkeysOff answers 404 when passkeys are not configured.
func (c *Console) passkeysOff(w http.ResponseWriter, r *http.Request) bool {
	noStore(w)
	if c.rp == nil {
		c.opt.Site.JSONError(w, r, http.StatusNotFound, "console.passkey.off", nil)
		return true
	}
	return false
}

// registrationKeys are the messages of a refused passkey registration.
var registrationKeys = passkey.Keys{Ceremony: "console.passkey.ceremony", Refused: "console.passkey.failed"}

// registrant is the staff member as a passkey registrant.
func (c *Console) registrant(ctx context.Context, staffID string) (passkey.Registrant, error) {
	st, err := c.opt.Store.GetStaff(ctx, staffID)
	return passkey.Registrant{Owner: school.StaffOwner(staffID), Name: st.Username, DisplayName: st.Name}, err
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
	reg, err := c.registrant(ctx, p.StaffID)
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	begun, err := c.rp.BeginRegistration(ctx, reg, school.CeremonyStaffRegistration, []byte(p.SessionRef))
	if err != nil {
		c.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, begun)
}

// readFinish reads the body of a passkey finish request; false when it
// answered the request already (passkeys off, a bad body).
func (c *Console) readFinish(w http.ResponseWriter, r *http.Request) (passkey.Finish, bool) {
	if c.passkeysOff(w, r) {
		return passkey.Finish{}, false
	}
	f, err := passkey.ReadFinish(r)
	if err != nil {
		c.log.Warn("console: bad passkey finish request", "err", err)
		c.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return f, false
	}
	return f, true
}

func (c *Console) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request, p Principal) {
	f, ok := c.readFinish(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	label := passkey.Label(f.Label, c.opt.Site.T(web.Lang(r), "console.passkey.default_label"))
	sc, _, err := c.rp.FinishRegistration(ctx, f, school.CeremonyStaffRegistration, func(cer school.Ceremony) (passkey.Registrant, error) {
		if cer.SubjectID != p.StaffID || string(cer.Ref) != p.SessionRef {
			return passkey.Registrant{}, fmt.Errorf("%w: ceremony of another staff member or session", passkey.ErrCeremony)
		}
		return c.registrant(ctx, p.StaffID)
	}, label)
	if err != nil {
		status, key, detail := registrationKeys.Answer(err, http.StatusBadRequest, c.log, "console: passkey registration refused", "staff", p.StaffID)
		c.opt.Site.JSONError(w, r, status, key, detail)
		return
	}
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if _, err := q.AddCredential(ctx, sc); err != nil {
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
		if err := q.DeleteCredential(ctx, school.StaffOwner(p.StaffID), id); err != nil {
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
	if c.rp == nil {
		return nil, nil
	}
	creds, err := c.opt.Store.ListCredentials(ctx, school.StaffOwner(staffID), false)
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
