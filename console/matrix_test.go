package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/elevid/elevid/school"
)

// route is one console endpoint, with the ids of tenant tn filled in.
type route struct {
	name   string
	method string
	path   func(f *fixture, tn tenant) string
	form   func(f *fixture, tn tenant) url.Values
}

func sp(format string) func(*fixture, tenant) string {
	return func(f *fixture, tn tenant) string {
		r := strings.NewReplacer("{S}", tn.School.ID, "{C}", tn.Class.ID, "{P}", tn.Pupil.ID, "{SH}", tn.Sheet, "{RUN}", tn.Run,
			"{ST}", tn.Victim.ID, "{PL}", f.Platform.ID)
		return r.Replace(format)
	}
}

func formOf(kv ...string) func(*fixture, tenant) url.Values {
	return func(*fixture, tenant) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
}

// schoolRoutes are the routes that name a school: every one of them is
// in the tenant isolation matrix.
var schoolRoutes = []route{
	{"school", "GET", sp("/console/schools/{S}"), nil},
	{"class", "GET", sp("/console/schools/{S}/classes/{C}"), nil},
	{"enrol", "POST", sp("/console/schools/{S}/classes/{C}/enrol"), formOf()},
	{"sheet", "GET", sp("/console/schools/{S}/sheets/{SH}"), nil},
	{"pupil", "GET", sp("/console/schools/{S}/pupils/{P}"), nil},
	{"reset", "POST", sp("/console/schools/{S}/pupils/{P}/reset"), formOf("purpose", "checked_in_person", "confirm", "yes")},
	{"export", "GET", sp("/console/schools/{S}/pupils/{P}/export"), nil},
	{"directory", "GET", sp("/console/schools/{S}/directory"), nil},
	{"directory-save", "POST", sp("/console/schools/{S}/directory"), formOf("url", "ldap://127.0.0.1:1", "insecure", "on", "preset", "openldap", "pupil_base", "ou=p,dc=x",
		"page_size", "500", "max_delete_percent", "10", "max_deletions", "500", "interval_hours", "0")},
	{"directory-test", "POST", sp("/console/schools/{S}/directory/test"), formOf()},
	{"sync", "GET", sp("/console/schools/{S}/sync"), nil},
	{"sync-run", "POST", sp("/console/schools/{S}/sync"), formOf("mode", "dry")},
	{"sync-force", "POST", sp("/console/schools/{S}/sync"), formOf("mode", "force")},
	{"sync-run-page", "GET", sp("/console/schools/{S}/sync/{RUN}"), nil},
	{"staff", "GET", sp("/console/schools/{S}/staff"), nil},
	{"staff-invite", "POST", sp("/console/schools/{S}/staff"), formOf("username", "new-person", "name", "New Person", "role", "teacher")},
	{"staff-disable", "POST", sp("/console/schools/{S}/staff/{ST}/disable"), formOf()},
	{"staff-reset", "POST", sp("/console/schools/{S}/staff/{ST}/reset"), formOf()},
	{"audit", "GET", sp("/console/schools/{S}/audit"), nil},
}

// instanceRoutes are the operator's routes.
var instanceRoutes = []route{
	{"schools", "GET", sp("/console/schools"), nil},
	{"school-create", "POST", sp("/console/schools"), formOf("code", "gamma", "name", "Gamma", "domain", "gamma.example.dk")},
	{"platforms", "GET", sp("/console/platforms"), nil},
	{"platform", "GET", sp("/console/platforms/{PL}"), nil},
	{"platform-new", "GET", sp("/console/platforms/new"), nil},
	{"platform-save", "POST", sp("/console/platforms/{PL}"), formOf("name", "Fessor", "client_id", "fessor", "protocol", "oidc", "subject_type", "pairwise",
		"attr_name", "givenName", "attr_just_da", "vises for læreren", "attr_just_en", "shown to the teacher", "attr_shared", "pairwise")},
	{"instance-audit", "GET", sp("/console/instance/audit"), nil},
}

func (f *fixture) call(rt route, tn tenant, ck *http.Cookie) (int, string) {
	var form url.Values
	if rt.form != nil {
		form = rt.form(f, tn)
	}
	rec := f.do(req{method: rt.method, path: rt.path(f, tn), form: form, cookie: ck})
	return rec.Code, rec.Body.String()
}

// TestRoleMatrix runs every role against every route of its own school
// (and the instance routes) and checks the exact status.
func TestRoleMatrix(t *testing.T) {
	f := newFixture(t)
	want := map[string][3]int{ // teacher, school admin, operator
		"school":         {200, 200, 200},
		"class":          {200, 200, 200},
		"enrol":          {303, 303, 303},
		"sheet":          {200, 404, 404}, // only the teacher who printed it sees the codes
		"pupil":          {200, 200, 200},
		"reset":          {303, 303, 303},
		"export":         {403, 200, 200}, // a subject access request is the school admin's
		"directory":      {403, 200, 200},
		"directory-save": {403, 403, 403}, // allowed roles still need a fresh re-authentication
		"directory-test": {403, 200, 200},
		"sync":           {403, 200, 200},
		"sync-run":       {403, 200, 200},
		"sync-force":     {403, 303, 303}, // to re-authentication
		"sync-run-page":  {403, 200, 200},
		"staff":          {403, 200, 200},
		"staff-invite":   {403, 200, 400}, // the operator's invite finds the username taken
		"staff-disable":  {403, 303, 303},
		"staff-reset":    {403, 200, 200},
		"audit":          {403, 200, 200},
		"schools":        {403, 403, 200},
		"school-create":  {403, 403, 303},
		"platforms":      {403, 403, 200},
		"platform":       {403, 403, 200},
		"platform-new":   {403, 403, 200},
		"platform-save":  {403, 403, 303},
		"instance-audit": {403, 403, 200},
	}
	who := []member{f.A.Teacher, f.A.Admin, f.Operator}
	for i, m := range who {
		ck := f.signIn(m)
		for _, rt := range append(append([]route{}, schoolRoutes...), instanceRoutes...) {
			code, body := f.call(rt, f.A, ck)
			if code != want[rt.name][i] {
				t.Errorf("%s %s → %d, want %d\n%.300s", m.Role, rt.name, code, want[rt.name][i], body)
			}
		}
	}
	// A teacher's other class and its pupils are hidden (404), not forbidden.
	ck := f.signIn(f.A.Teacher)
	for _, p := range []string{"/console/schools/" + f.A.School.ID + "/classes/" + f.A.Other.ID, "/console/schools/" + f.A.School.ID + "/pupils/" + f.A.OtherPupil.ID} {
		if rec := f.do(req{method: "GET", path: p, cookie: ck}); rec.Code != 404 || strings.Contains(rec.Body.String(), f.A.OtherPupil.GivenName) {
			t.Errorf("teacher → %s: %d", p, rec.Code)
		}
	}
	// Without a session every route sends the browser to sign in.
	for _, rt := range append(append([]route{}, schoolRoutes...), instanceRoutes...) {
		code, _ := f.call(rt, f.A, nil)
		if code != http.StatusSeeOther {
			t.Errorf("anonymous %s → %d", rt.name, code)
		}
	}
}

// TestTenantIsolation runs staff of school A against every route with
// school B's ids (and with A's school id but B's record ids): always 403
// or 404, never B's data, and nothing of B changes.
func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before, err := f.st.ListAudit(ctx, school.AuditFilter{SchoolID: f.B.School.ID})
	f.must(err)
	secrets := []string{f.B.School.Name, f.B.Pupil.GivenName, f.B.Class.Name, "SECRET-beta", f.B.Victim.Username}
	// mixed keeps A's school id but uses B's record ids.
	mixed := f.B
	mixed.School = f.A.School
	for _, m := range []member{f.A.Teacher, f.A.Admin} {
		ck := f.signIn(m)
		for _, tn := range []tenant{f.B, mixed} {
			for _, rt := range schoolRoutes {
				if tn.School.ID == f.A.School.ID && !hasAny(rt.path(f, tn), f.B.Class.ID, f.B.Pupil.ID, f.B.Sheet, f.B.Run, f.B.Victim.ID) {
					continue // A's own school-level routes: covered by the role matrix
				}
				code, body := f.call(rt, tn, ck)
				if code != 403 && code != 404 {
					t.Errorf("%s of A, %s with B's ids (school %s) → %d", m.Role, rt.name, tn.School.Code, code)
				}
				for _, s := range secrets {
					if strings.Contains(body, s) {
						t.Errorf("%s of A, %s with B's ids → body shows %q", m.Role, rt.name, s)
					}
				}
			}
		}
	}
	after, err := f.st.ListAudit(ctx, school.AuditFilter{SchoolID: f.B.School.ID})
	f.must(err)
	if len(after) != len(before) {
		t.Fatalf("B's audit log grew from %d to %d entries", len(before), len(after))
	}
	if v, err := f.st.GetStaff(ctx, f.B.Victim.ID); err != nil || v.Disabled {
		t.Fatalf("B's staff member disabled: %v", err)
	}
	if _, err := f.st.GetDirectorySource(ctx, f.B.School.ID); err == nil {
		t.Fatal("a directory source was stored for B")
	}
	if pending, err := f.st.PendingEnrolmentCode(ctx, f.B.Pupil.ID); err != nil || pending {
		t.Fatalf("a code was issued for B's pupil: %v", err)
	}
	if s, err := f.st.StaffByUsername(ctx, "new-person"); err == nil && s.SchoolID == f.B.School.ID {
		t.Fatal("a staff member was invited into B")
	}
}

func hasAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
