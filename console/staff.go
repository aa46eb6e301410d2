package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// StaffData is the data of the console-staff page.
type StaffData struct {
	Frame
	Staff    []school.Staff
	Classes  []school.Class
	Form     StaffForm
	Errors   map[string]string
	Invited  string // username of a just-invited member
	Reset    string // username of a member whose credentials were just reset
	Password string // their one-time password, shown once
}

// StaffForm is what the invite form holds.
type StaffForm struct {
	Username, Name, Email, Role string
	ClassIDs                    []string
}

// HasClass reports whether the form has class id ticked.
func (f StaffForm) HasClass(id string) bool { return slices.Contains(f.ClassIDs, id) }

func (c *Console) staffData(ctx context.Context, p Principal, s school.School) (StaffData, error) {
	data := StaffData{Frame: Frame{Me: p, School: s}, Form: StaffForm{Role: string(school.RoleTeacher)}}
	var err error
	if data.Staff, err = c.opt.Store.ListStaff(ctx, s.ID); err != nil {
		return data, err
	}
	data.Classes, err = c.opt.Store.ListClasses(ctx, s.ID)
	return data, err
}

func (c *Console) staffPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ManageStaff)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, err := c.staffData(r.Context(), p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-staff", data)
}

func (c *Console) staffInvite(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ManageStaff)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, err := c.staffData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	f := StaffForm{Username: normUsername(r.PostFormValue("username")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Email: strings.TrimSpace(r.PostFormValue("email")), Role: r.PostFormValue("role"), ClassIDs: r.PostForm["class"]}
	data.Form = f
	inv := Invite{SchoolID: s.ID, Username: f.Username, Name: f.Name, Email: f.Email, Role: school.Role(f.Role), ClassIDs: f.ClassIDs}
	staff, password, errs, err := c.invite(ctx, r, p, inv)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if len(errs) > 0 {
		data.Errors = map[string]string{}
		for k, v := range errs {
			data.Errors[k] = c.opt.Site.T(web.Lang(r), v)
		}
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-staff", data)
		return
	}
	data, err = c.staffData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data.Invited, data.Password = staff.Username, password
	c.opt.Site.Render(w, r, http.StatusOK, "console-staff", data)
}

// Invite is a new staff member of a school.
type Invite struct {
	SchoolID                string
	Username, Name, Email   string
	Role                    school.Role
	ClassIDs                []string
	Password                string // empty: a random one-time password
	ActorID, ActorRole, Via string
}

// invite validates and creates a staff member with a one-time password;
// field errors come back as text keys by field name.
func (c *Console) invite(ctx context.Context, r *http.Request, p Principal, inv Invite) (school.Staff, string, map[string]string, error) {
	errs := validateInvite(inv)
	if len(errs) > 0 {
		return school.Staff{}, "", errs, nil
	}
	password := NewPassword()
	st := school.Staff{SchoolID: inv.SchoolID, Username: inv.Username, Name: inv.Name, Email: inv.Email, Role: inv.Role,
		ClassIDs: inv.ClassIDs, PasswordHash: HashPassword(password, c.opt.Argon2), PasswordExpires: c.now().Add(OneTimePasswordLifetime)}
	err := c.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		if st, err = q.CreateStaff(ctx, st); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, inv.SchoolID, "staff.invite", st.ID, fmt.Sprintf(`{"role":%q,"classes":%d}`, st.Role, len(st.ClassIDs)))
	})
	switch {
	case errors.Is(err, school.ErrConflict):
		return st, "", map[string]string{"username": "console.staff.taken"}, nil
	case errors.Is(err, school.ErrInvalid):
		return st, "", map[string]string{"class": "console.staff.bad_class"}, nil
	}
	return st, password, nil, err
}

func validateInvite(inv Invite) map[string]string {
	errs := map[string]string{}
	if !usernameOK(inv.Username) {
		errs["username"] = "console.staff.bad_username"
	}
	if inv.Name == "" || len(inv.Name) > 200 || !utf8.ValidString(inv.Name) {
		errs["name"] = "console.staff.bad_name"
	}
	if inv.Email != "" && (school.ValidEmail(inv.Email) != nil || !utf8.ValidString(inv.Email)) {
		errs["email"] = "console.staff.bad_email"
	}
	if inv.Role != school.RoleTeacher && inv.Role != school.RoleSchoolAdmin {
		errs["role"] = "console.staff.bad_role"
	}
	return errs
}

func usernameOK(u string) bool {
	if len(u) < 2 || len(u) > 64 {
		return false
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == '@') {
			return false
		}
	}
	return true
}

// otherStaff reads the staff member a staff-management route names, for
// a principal who may manage the school's staff: someone of another
// school is hidden, and nobody acts on their own account this way. It
// writes the error answer and reports false when the route cannot go on.
func (c *Console) otherStaff(w http.ResponseWriter, r *http.Request, p Principal) (school.Staff, school.School, bool) {
	st, err := c.opt.Store.GetStaff(r.Context(), r.PathValue("staff"))
	if err != nil {
		c.fail(w, r, err)
		return school.Staff{}, school.School{}, false
	}
	if st.SchoolID == "" || st.SchoolID != r.PathValue("school") {
		c.fail(w, r, ErrHidden)
		return school.Staff{}, school.School{}, false
	}
	s, err := c.schoolFor(r, p, ManageStaff)
	if err != nil {
		c.fail(w, r, err)
		return school.Staff{}, school.School{}, false
	}
	if st.ID == p.StaffID {
		c.opt.Site.Error(w, r, http.StatusBadRequest, "console.staff.not_self")
		return school.Staff{}, school.School{}, false
	}
	return st, s, true
}

func (c *Console) staffDisable(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	st, s, ok := c.otherStaff(w, r, p)
	if !ok {
		return
	}
	err := c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if _, err := q.UpdateStaff(ctx, st.ID, func(x school.Staff) (school.Staff, error) { x.Disabled = true; return x, nil }); err != nil {
			return err
		}
		if _, err := q.RevokeSessions(ctx, st.ID, "disabled"); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, s.ID, "staff.disable", st.ID, "")
	})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"/staff", http.StatusSeeOther)
}

// staffReset resets a staff member's credentials (ResetStaff): a new
// one-time password, shown once; passkeys deleted; sessions ended.
func (c *Console) staffReset(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	st, s, ok := c.otherStaff(w, r, p)
	if !ok {
		return
	}
	pw, err := ResetStaff(ctx, c.opt.Store, c.opt.Argon2, st.ID, p.StaffID, p.Role)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, err := c.staffData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data.Reset, data.Password = st.Username, pw
	noStore(w)
	c.opt.Site.Render(w, r, http.StatusOK, "console-staff", data)
}
