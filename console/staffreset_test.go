package console_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/school"
)

// TestStaffResetDeletesPasskeys: a school admin resets a teacher's
// sign-in in the console; the teacher's passkeys are deleted (none of
// them signs in any more), their sessions end, TOTP is set up again and
// the old password stops working. console.ResetStaff is also what
// `elevid admin staff reset` runs.
func TestStaffResetDeletesPasskeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	victim := f.A.Victim
	if _, err := f.st.AddCredential(ctx, school.Credential{ID: []byte("lost-laptop-key"), Owner: school.StaffOwner(victim.ID), PublicKey: []byte("k"), Label: "laptop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AddCredential(ctx, school.Credential{ID: []byte("phone-key"), Owner: school.StaffOwner(victim.ID), PublicKey: []byte("k"), Label: "phone"}); err != nil {
		t.Fatal(err)
	}
	victimCookie := f.signIn(victim)
	admin := f.signIn(f.A.Admin)

	rec := f.do(req{method: http.MethodPost, path: "/console/schools/" + f.A.School.ID + "/staff/" + victim.ID + "/reset", cookie: admin})
	if rec.Code != http.StatusOK {
		t.Fatalf("reset: %d %s", rec.Code, rec.Body.String())
	}
	m := regexp.MustCompile(`id="one-time-password">([^<]+)<`).FindStringSubmatch(rec.Body.String())
	if m == nil || !strings.Contains(rec.Body.String(), victim.Username) {
		t.Fatalf("no one-time password shown:\n%s", rec.Body.String())
	}
	if creds, err := f.st.ListCredentials(ctx, school.StaffOwner(victim.ID), false); err != nil || len(creds) != 0 {
		t.Fatalf("staff passkeys after the reset: %d, %v", len(creds), err)
	}
	if sessions, _ := f.st.ListSessions(ctx, victim.ID); len(sessions) != 0 {
		t.Fatalf("%d sessions survive the reset", len(sessions))
	}
	if rec := f.do(req{method: http.MethodGet, path: "/console/schools/" + f.A.School.ID, cookie: victimCookie}); rec.Code == http.StatusOK {
		t.Fatal("the old console session still works")
	}
	st, err := f.st.GetStaff(ctx, victim.ID)
	if err != nil || len(st.TOTPSecret) != 0 || !console.VerifyPassword(st.PasswordHash, m[1]) || console.VerifyPassword(st.PasswordHash, victim.Password) {
		t.Fatalf("after the reset: TOTP %d bytes, err %v", len(st.TOTPSecret), err)
	}
	audit, _ := f.st.ListAudit(ctx, school.AuditFilter{SchoolID: f.A.School.ID, SubjectID: victim.ID})
	found := false
	for _, e := range audit {
		found = found || (e.Action == "staff.reset" && strings.Contains(e.Detail, `"passkeys_deleted":2`))
	}
	if !found {
		t.Fatalf("no audit entry of the reset: %+v", audit)
	}
	// A teacher may not reset anyone; nobody resets themselves here.
	if rec := f.do(req{method: http.MethodPost, path: "/console/schools/" + f.A.School.ID + "/staff/" + f.A.Admin.ID + "/reset", cookie: admin}); rec.Code != http.StatusBadRequest {
		t.Fatalf("self reset: %d", rec.Code)
	}
}
