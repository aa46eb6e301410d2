package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// SchoolsData is the data of the console-schools page.
type SchoolsData struct {
	Frame
	Schools []school.School
	Form    school.School
	Errors  map[string]string
}

func (c *Console) schoolsPage(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := Authorize(p, ManageSchools, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	list, err := c.opt.Store.ListSchools(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-schools", SchoolsData{Frame: Frame{Me: p}, Schools: list})
}

func (c *Console) schoolCreate(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	if err := Authorize(p, ManageSchools, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	lang := web.Lang(r)
	f := school.School{Code: strings.ToLower(strings.TrimSpace(r.PostFormValue("code"))), Name: strings.TrimSpace(r.PostFormValue("name")),
		Domain: strings.ToLower(strings.TrimSpace(r.PostFormValue("domain")))}
	errs := map[string]string{}
	if (school.School{Code: f.Code, Name: "x", Domain: "x.dk"}).Validate() != nil {
		errs["code"] = c.opt.Site.T(lang, "console.schools.bad_code")
	}
	if f.Name == "" || len(f.Name) > 200 {
		errs["name"] = c.opt.Site.T(lang, "console.schools.bad_name")
	}
	if (school.School{Code: "xx", Name: "x", Domain: f.Domain}).Validate() != nil {
		errs["domain"] = c.opt.Site.T(lang, "console.schools.bad_domain")
	}
	var created school.School
	if len(errs) == 0 {
		err := c.opt.Store.InTx(ctx, func(q school.Queries) error {
			var err error
			if created, err = q.CreateSchool(ctx, f); err != nil {
				return err
			}
			return c.audit(ctx, q, r, p, school.InstanceChain, "school.create", created.ID, fmt.Sprintf(`{"code":%q}`, created.Code))
		})
		if errors.Is(err, school.ErrConflict) {
			errs["code"] = c.opt.Site.T(lang, "console.schools.taken")
		} else if err != nil {
			c.fail(w, r, err)
			return
		}
	}
	if len(errs) > 0 {
		list, err := c.opt.Store.ListSchools(ctx)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-schools", SchoolsData{Frame: Frame{Me: p}, Schools: list, Form: f, Errors: errs})
		return
	}
	http.Redirect(w, r, "/console/schools/"+created.ID, http.StatusSeeOther)
}

// PlatformsData is the data of the console-platforms page.
type PlatformsData struct {
	Frame
	Platforms []school.Platform
}

func (c *Console) platformsPage(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := Authorize(p, ManagePlatforms, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	list, err := c.opt.Store.ListPlatforms(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-platforms", PlatformsData{Frame: Frame{Me: p}, Platforms: list})
}

// PlatformData is the data of the console-platform page (new or edit).
type PlatformData struct {
	Frame
	Platform school.Platform
	New      bool
	Rows     []school.AttributeGrant // the attribute rows, with blank ones to fill
	Errors   map[string]string
	Problem  string
	Saved    bool
}

// KnownAttributes are the attribute names the console offers.
var KnownAttributes = []string{"displayName", "givenName", "sn", "eduPersonPrincipalName", "eduPersonScopedAffiliation", "pairwise-id", "schacHomeOrganization", "schoolCode", "class", "role"}

func withBlankRows(as []school.AttributeGrant) []school.AttributeGrant {
	out := append([]school.AttributeGrant{}, as...)
	for range 3 {
		out = append(out, school.AttributeGrant{})
	}
	return out
}

func (c *Console) platformPage(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := Authorize(p, ManagePlatforms, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	id := r.PathValue("platform")
	data := PlatformData{Frame: Frame{Me: p}, New: id == "new", Saved: r.URL.Query().Get("saved") == "1"}
	if data.New {
		data.Platform = school.Platform{Protocol: school.ProtocolOIDC, SubjectType: school.SubjectPairwise}
	} else {
		pl, err := c.opt.Store.GetPlatform(r.Context(), id)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Platform = pl
	}
	data.Rows = withBlankRows(data.Platform.Attributes)
	c.opt.Site.Render(w, r, http.StatusOK, "console-platform", data)
}

func (c *Console) platformSave(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	if err := Authorize(p, ManagePlatforms, Target{}); err != nil {
		c.fail(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	lang := web.Lang(r)
	id := r.PathValue("platform")
	isNew := id == "" || id == "new"
	var old school.Platform
	if !isNew {
		var err error
		if old, err = c.opt.Store.GetPlatform(ctx, id); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	f := old
	f.Name = strings.TrimSpace(r.PostFormValue("name"))
	f.ClientID = strings.TrimSpace(r.PostFormValue("client_id"))
	f.Protocol = school.Protocol(r.PostFormValue("protocol"))
	f.SubjectType = school.SubjectType(r.PostFormValue("subject_type"))
	f.SubjectTypeReason = strings.TrimSpace(r.PostFormValue("subject_reason"))
	f.Attributes = nil
	errs := map[string]string{}
	names, justDA, justEN, shared := r.PostForm["attr_name"], r.PostForm["attr_just_da"], r.PostForm["attr_just_en"], r.PostForm["attr_shared"]
	field := func(list []string, i int) string {
		if i < len(list) {
			return strings.TrimSpace(list[i])
		}
		return ""
	}
	var rows []school.AttributeGrant
	for i, n := range names {
		g := school.AttributeGrant{Name: strings.TrimSpace(n), JustificationDA: field(justDA, i), JustificationEN: field(justEN, i), Shared: field(shared, i) == "shared"}
		rows = append(rows, g)
		if g.Name == "" && g.JustificationDA == "" && g.JustificationEN == "" {
			continue
		}
		if g.Name == "" || g.JustificationDA == "" || g.JustificationEN == "" {
			errs[fmt.Sprintf("attr%d", i)] = c.opt.Site.T(lang, "console.platform.attr_needs_both")
		} else if g.Shared && !release.SharedCapable(g.Name) {
			errs[fmt.Sprintf("attr%d", i)] = c.opt.Site.T(lang, "console.platform.not_shareable")
		}
		f.Attributes = append(f.Attributes, g)
	}
	if f.Name == "" {
		errs["name"] = c.opt.Site.T(lang, "console.platform.required")
	}
	if f.ClientID == "" {
		errs["client_id"] = c.opt.Site.T(lang, "console.platform.required")
	}
	if f.Protocol != school.ProtocolOIDC && f.Protocol != school.ProtocolSAML {
		errs["protocol"] = c.opt.Site.T(lang, "console.platform.bad_protocol")
	}
	if f.SubjectType != school.SubjectPairwise && f.SubjectType != school.SubjectPublic {
		errs["subject_type"] = c.opt.Site.T(lang, "console.platform.bad_subject")
	} else if f.SubjectType == school.SubjectPublic && f.SubjectTypeReason == "" {
		errs["subject_reason"] = c.opt.Site.T(lang, "console.platform.reason_required")
	}
	data := PlatformData{Frame: Frame{Me: p}, Platform: f, New: isNew, Rows: rows, Errors: errs}
	if len(errs) > 0 {
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-platform", data)
		return
	}
	var saved school.Platform
	err := c.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		action := "platform.update"
		if isNew {
			action = "platform.create"
			saved, err = q.CreatePlatform(ctx, f)
		} else {
			var before school.Platform
			saved, err = q.UpdatePlatform(ctx, id, func(pl school.Platform) (school.Platform, error) {
				before = pl
				pl.Name, pl.ClientID, pl.Protocol, pl.SubjectType, pl.SubjectTypeReason, pl.Attributes = f.Name, f.ClientID, f.Protocol, f.SubjectType, f.SubjectTypeReason, f.Attributes
				return pl, nil
			})
			if err == nil && c.opt.Platforms != nil {
				// Guardians are asked about added attributes; until they
				// answer, their grants cover the old set.
				err = c.opt.Platforms.PlatformChanged(ctx, q, before, saved)
			}
		}
		if err != nil {
			return err
		}
		attrs := make([]string, len(saved.Attributes))
		for i, a := range saved.Attributes {
			attrs[i] = a.Name
		}
		return c.audit(ctx, q, r, p, school.InstanceChain, action, saved.ID, fmt.Sprintf(`{"attributes":%q,"subject_type":%q}`, strings.Join(attrs, ","), saved.SubjectType))
	})
	switch {
	case errors.Is(err, school.ErrConflict):
		data.Errors["client_id"] = c.opt.Site.T(lang, "console.platform.taken")
	case errors.Is(err, school.ErrInvalid):
		data.Problem = strings.TrimPrefix(err.Error(), school.ErrInvalid.Error()+": ")
	case err != nil:
		c.fail(w, r, err)
		return
	}
	if len(data.Errors) > 0 || data.Problem != "" {
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-platform", data)
		return
	}
	http.Redirect(w, r, "/console/platforms/"+saved.ID+"?saved=1", http.StatusSeeOther)
}
