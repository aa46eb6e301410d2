package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elevid/elevid/school"
)

// The sync run page summarises warnings by kind, with the count and the
// first DNs of each, in Danish and English; a rare kind is not buried
// under a common one.
func TestSyncRunPageWarningsByKind(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	run, err := f.st.GetSyncRun(ctx, f.A.Run)
	f.must(err)
	for i := range 551 {
		run.AddWarning(school.WarnNoEmail, fmt.Sprintf("uid=g%d,ou=guardians,dc=a", i), "no e-mail")
	}
	run.AddWarning(school.WarnNoClass, "uid=p7,ou=pupils,dc=a", "in no class")
	run.AddWarning(school.WarnOrphanGuardian, "uid=g900,ou=guardians,dc=a", "orphan")
	run.Status = school.SyncSucceeded
	_, err = f.st.FinishSyncRun(ctx, run)
	f.must(err)
	ck := f.signIn(f.A.Admin)
	for lang, want := range map[string][]string{
		"da": {"Forælder uden e-mailadresse", "Elev uden klasse", "Forælder, som ingen elev peger på", "og flere: 546"},
		"en": {"Guardian without an e-mail address", "Pupil in no class", "Guardian no pupil points to", "and more: 546"},
	} {
		hr := httptest.NewRequest("GET", "http://localhost:8080/console/schools/"+f.A.School.ID+"/sync/"+run.ID, nil)
		hr.AddCookie(ck)
		hr.AddCookie(&http.Cookie{Name: "lang", Value: lang})
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, hr)
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", lang, rec.Code)
		}
		for _, w := range append(want, "<td>551</td>", "uid=p7,ou=pupils,dc=a", "uid=g900,ou=guardians,dc=a", "uid=g0,ou=guardians,dc=a") {
			if !strings.Contains(body, w) {
				t.Errorf("%s page lacks %q", lang, w)
			}
		}
		if strings.Contains(body, "uid=g5,ou=guardians") {
			t.Errorf("%s page lists more than the first five DNs of a kind", lang)
		}
	}
}
