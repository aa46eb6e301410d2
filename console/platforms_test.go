package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// fakePlatforms records what the console asks of the consent service.
type fakePlatforms struct {
	mu      sync.Mutex
	calls   []string
	changed []string
}

func (f *fakePlatforms) SetPlatformActivation(ctx context.Context, a enrolment.Actor, schoolID, platformID string, active bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	verb := "deactivate"
	if active {
		verb = "activate"
	}
	f.calls = append(f.calls, a.ID+" "+verb+" "+schoolID+" "+platformID)
	return true, nil
}

func (f *fakePlatforms) PlatformChanged(ctx context.Context, q school.Queries, old, nw school.Platform) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = append(f.changed, strings.Join(school.AttributeNames(old.Attributes), ",")+" → "+strings.Join(school.AttributeNames(nw.Attributes), ","))
	return nil
}

// A school admin switches platforms on and off on the school page (a
// teacher may not, nor another school's admin); the operator's edit of a
// registration hands the old and new attribute sets to the consent
// service, which asks guardians about additions.
func TestSchoolActivatesPlatforms(t *testing.T) {
	fake := &fakePlatforms{}
	f := newFixture(t, func(o *console.Options) { o.Platforms = fake })
	path := "/console/schools/" + f.A.School.ID + "/platforms/" + f.Platform.ID
	admin := f.signIn(f.A.Admin)
	if body := f.do(req{method: "GET", path: "/console/schools/" + f.A.School.ID, cookie: admin}).Body.String(); !strings.Contains(body, `id="school-platform-`+f.Platform.ID+`"`) {
		t.Fatalf("school page lacks the platform list:\n%s", body)
	}
	rec := f.do(req{method: "POST", path: path, cookie: admin, form: url.Values{"action": {"activate"}}})
	if rec.Code != http.StatusSeeOther || len(fake.calls) != 1 || fake.calls[0] != f.A.Admin.ID+" activate "+f.A.School.ID+" "+f.Platform.ID {
		t.Fatalf("activate: %d %v", rec.Code, fake.calls)
	}
	teacher := f.signIn(f.A.Teacher)
	if rec := f.do(req{method: "POST", path: path, cookie: teacher, form: url.Values{"action": {"deactivate"}}}); rec.Code == http.StatusSeeOther || len(fake.calls) != 1 {
		t.Fatalf("a teacher switched a platform: %d %v", rec.Code, fake.calls)
	}
	other := f.signIn(f.B.Admin)
	if rec := f.do(req{method: "POST", path: path, cookie: other, form: url.Values{"action": {"deactivate"}}}); rec.Code != http.StatusNotFound || len(fake.calls) != 1 {
		t.Fatalf("another school's admin: %d %v", rec.Code, fake.calls)
	}
	op := f.signIn(f.Operator)
	form := url.Values{"name": {"Fessor"}, "client_id": {"fessor"}, "protocol": {"oidc"}, "subject_type": {"pairwise"},
		"attr_name": {"givenName", "sn"}, "attr_just_da": {"vises for læreren", "efternavn på afleveringer"},
		"attr_just_en": {"shown to the teacher", "surname on hand-ins"}, "attr_shared": {"pairwise", "pairwise"}}
	if rec := f.do(req{method: "POST", path: "/console/platforms/" + f.Platform.ID, cookie: op, form: form}); rec.Code != http.StatusSeeOther {
		t.Fatalf("platform edit: %d %s", rec.Code, rec.Body.String())
	}
	if len(fake.changed) != 1 || fake.changed[0] != "givenName → givenName,sn" {
		t.Fatalf("PlatformChanged = %v", fake.changed)
	}
	pf, err := f.st.GetPlatform(context.Background(), f.Platform.ID)
	f.must(err)
	if g, _ := pf.Grant("sn"); g.JustificationDA != "efternavn på afleveringer" || g.JustificationEN != "surname on hand-ins" {
		t.Fatalf("stored grant = %+v", g)
	}
	// Both languages are required.
	form.Set("attr_just_en", "")
	form["attr_just_en"] = []string{"shown to the teacher", ""}
	if rec := f.do(req{method: "POST", path: "/console/platforms/" + f.Platform.ID, cookie: op, form: form}); rec.Code != http.StatusBadRequest {
		t.Fatalf("edit without an English justification: %d", rec.Code)
	}
}
