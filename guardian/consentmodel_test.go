package guardian_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// coveredNow is what the platform may receive about the pupil now.
func (e *env) coveredNow(pf school.Platform) []string {
	e.t.Helper()
	pf = must[school.Platform](e.t)(e.st.GetPlatform(e.ctx, pf.ID))
	return must[school.ConsentState](e.t)(e.st.ConsentState(e.ctx, e.pupil.ID, pf.ID)).Covered(pf)
}

// deliver sends the outbox and returns the consent link of the last
// delivered mail.
func (e *env) deliver() (string, string) {
	e.t.Helper()
	if sent, _, err := e.sender.RunOnce(e.ctx); err != nil || sent != 1 {
		e.t.Fatalf("RunOnce = %d, %v", sent, err)
	}
	msgs := e.sink.messages()
	text, _ := parseMail(e.t, msgs[len(msgs)-1].Data)
	return linkRE.FindString(text), text
}

// When a platform gains an attribute, the pupil keeps the old set until
// a guardian approves the addition, through a mailed link whose page
// shows just what changed; a "no" to the addition leaves the rest of the
// grant standing; a removed attribute stops at once.
func TestPlatformAdditionWaitsForGuardian(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	c := e.client()
	if status, _ := post(t, c, link, map[string]string{"action": "choose", "p_" + e.pf.ID: "grant", "p_" + e.pf2.ID: "deny"}); status != http.StatusOK {
		t.Fatalf("approve: %d", status)
	}
	if got := e.coveredNow(e.pf); !slices.Equal(got, []string{"given_name"}) {
		t.Fatalf("covered = %v", got)
	}
	add := func(names ...string) {
		t.Helper()
		must[struct{}](t)(struct{}{}, e.st.InTx(e.ctx, func(q school.Queries) error {
			var old school.Platform
			nw, err := q.UpdatePlatform(e.ctx, e.pf.ID, func(p school.Platform) (school.Platform, error) {
				old = p
				for _, n := range names {
					p.Attributes = append(p.Attributes, school.AttributeGrant{Name: n, JustificationDA: "Læreren ser hele navnet " + n, JustificationEN: "The teacher sees the full name " + n})
				}
				return p, nil
			})
			if err != nil {
				return err
			}
			return e.svc.PlatformChanged(e.ctx, q, old, nw)
		}))
	}
	add("family_name")
	if got := e.coveredNow(e.pf); !slices.Equal(got, []string{"given_name"}) {
		t.Fatalf("covered after the platform gained family_name = %v; the guardian was not asked yet", got)
	}
	addLink, text := e.deliver()
	if addLink == "" || !strings.Contains(text, "MatematikFessor") {
		t.Fatalf("addition mail:\n%s", text)
	}
	status, page := get(t, c, addLink)
	if status != http.StatusOK || !strings.Contains(page, "efternavn") || !strings.Contains(page, "Læreren ser hele navnet family_name") ||
		strings.Contains(page, "Ordbogen") || strings.Contains(page, "Læreren ser elevens fornavn ved afleveringer") {
		t.Fatalf("addition page should show just the addition:\n%s", page)
	}
	if status, _ := post(t, c, addLink, map[string]string{"action": "choose", "p_" + e.pf.ID: "grant"}); status != http.StatusOK {
		t.Fatalf("approve addition: %d", status)
	}
	if got := e.coveredNow(e.pf); !slices.Equal(got, []string{"given_name", "family_name"}) {
		t.Fatalf("covered after approval = %v", got)
	}
	// A second addition, refused: the rest stands, and it is not asked again.
	add("name")
	addLink, _ = e.deliver()
	if status, _ := post(t, c, addLink, map[string]string{"action": "deny_all"}); status != http.StatusOK {
		t.Fatalf("refuse addition: %d", status)
	}
	if got := e.coveredNow(e.pf); !slices.Equal(got, []string{"given_name", "family_name"}) {
		t.Fatalf("covered after a refused addition = %v", got)
	}
	cs := must[[]school.Consent](t)(e.st.ListConsents(e.ctx, e.pupil.ID))
	mine := cs[slices.IndexFunc(cs, func(c school.Consent) bool { return c.PlatformID == e.pf.ID })]
	if !mine.Granted() || !slices.Equal(mine.Refused, []string{"name"}) || len(mine.Attributes) != 2 || mine.Attributes[1].JustificationEN == "" {
		t.Fatalf("consent = %+v", mine)
	}
	// Removing an attribute from the registration stops it at once.
	must[school.Platform](t)(e.st.UpdatePlatform(e.ctx, e.pf.ID, func(p school.Platform) (school.Platform, error) {
		p.Attributes = slices.DeleteFunc(p.Attributes, func(a school.AttributeGrant) bool { return a.Name == "family_name" })
		return p, nil
	}))
	if got := e.coveredNow(e.pf); !slices.Equal(got, []string{"given_name"}) {
		t.Fatalf("covered after removal = %v", got)
	}
}

// A school deactivating a platform ends its access like a withdrawal:
// the logout hooks are called, the pupil's tokens for it are revoked,
// nothing is released, and the action is in the school's audit chain.
// Guardians are asked only about activated platforms.
func TestDeactivationEndsAccess(t *testing.T) {
	e := newEnv(t)
	admin := must[school.Staff](t)(e.st.CreateStaff(e.ctx, school.Staff{SchoolID: e.school.ID, Username: "it", Name: "IT", Role: school.RoleSchoolAdmin}))
	actor := enrolment.StaffActor(admin, "192.0.2.9")
	// Ordbogen is switched off before the guardian is asked: the page
	// does not mention it.
	if !must[bool](t)(e.svc.SetPlatformActivation(e.ctx, actor, e.school.ID, e.pf2.ID, false)) {
		t.Fatal("deactivation changed nothing")
	}
	link := e.start()
	c := e.client()
	if _, page := get(t, c, link); strings.Contains(page, "Ordbogen") || !strings.Contains(page, "MatematikFessor") {
		t.Fatalf("consent page asks about a platform the school does not use:\n%s", page)
	}
	post(t, c, link, map[string]string{"action": "grant_all"})
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("grant did not allow release")
	}
	tok := must[school.OIDCToken](t)(e.st.CreateOIDCToken(e.ctx, school.OIDCToken{Kind: school.TokenRefresh, Hash: []byte("rt-hash-deactivate-0001"),
		PlatformID: e.pf.ID, PupilID: e.pupil.ID, Subject: "sub", ExpiresAt: e.clock.Now().Add(48 * 3600e9)}))
	if !must[bool](t)(e.svc.SetPlatformActivation(e.ctx, actor, e.school.ID, e.pf.ID, false)) {
		t.Fatal("deactivation changed nothing")
	}
	if must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("released to a deactivated platform")
	}
	if got := e.logouts(); !slices.Contains(got, "sub/"+e.pf.ID) {
		t.Fatalf("logout notices = %v", got)
	}
	if got := must[school.OIDCToken](t)(e.st.GetOIDCToken(e.ctx, tok.ID)); got.RevokedAt.IsZero() {
		t.Fatal("the platform's refresh token survived the deactivation")
	}
	entries := must[[]school.AuditEntry](t)(e.st.ListAudit(e.ctx, school.AuditFilter{SchoolID: e.school.ID, Limit: 500}))
	if !slices.ContainsFunc(entries, func(a school.AuditEntry) bool {
		return a.Action == "platform.deactivate" && a.SubjectID == e.pf.ID && a.ActorID == admin.ID
	}) {
		t.Fatal("deactivation not audited in the school's chain")
	}
	if err := e.st.VerifyAudit(e.ctx, e.school.ID); err != nil {
		t.Fatal(err)
	}
}

// Starting enrolment again never erases a guardian's decision: a "no"
// stands until the guardian changes it.
func TestRestartKeepsDecisions(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	c := e.client()
	post(t, c, link, map[string]string{"action": "deny_all"})
	if st := must[school.Enrolment](t)(e.st.GetEnrolment(e.ctx, e.pupil.ID)).State; st != school.EnrolmentDenied {
		t.Fatalf("state = %s", st)
	}
	link = e.start()
	cs := must[[]school.Consent](t)(e.st.ListConsents(e.ctx, e.pupil.ID))
	if len(cs) != 2 || cs[0].Decision != school.DecisionDenied || cs[1].Decision != school.DecisionDenied {
		t.Fatalf("decisions after restart = %+v", cs)
	}
	if _, page := get(t, c, link); !strings.Contains(page, "Dit svar nu:") {
		t.Fatalf("the new consent page does not show the standing answer:\n%s", page)
	}
}

// A teacher can reset a lost passkey whenever at least one consent still
// stands: after the guardian withdrew one of two platforms.
func TestResetAfterPartialWithdrawal(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	post(t, e.client(), link, map[string]string{"action": "grant_all"})
	if _, err := e.svc.Withdraw(e.ctx, e.guardian.ID, e.pupil.ID, e.pf2.ID, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) || must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf2.ID)) {
		t.Fatal("partial withdrawal did not apply per platform")
	}
	code, _, err := e.svc.ResetPasskeys(e.ctx, e.actor(), e.pupil.ID, true)
	if err != nil || code == "" {
		t.Fatalf("reset after a partial withdrawal: %v", err)
	}
}

// Only the school's platforms count: a guardian's "no" to the one
// platform the school uses denies the flow, although another platform on
// the instance was never asked about.
func TestNoToTheSchoolsOnlyPlatformDenies(t *testing.T) {
	e := newEnv(t)
	admin := must[school.Staff](t)(e.st.CreateStaff(e.ctx, school.Staff{SchoolID: e.school.ID, Username: "it", Name: "IT", Role: school.RoleSchoolAdmin}))
	must[bool](t)(e.svc.SetPlatformActivation(e.ctx, enrolment.StaffActor(admin, ""), e.school.ID, e.pf2.ID, false))
	link := e.start()
	post(t, e.client(), link, map[string]string{"action": "deny_all"})
	if st := must[school.Enrolment](t)(e.st.GetEnrolment(e.ctx, e.pupil.ID)).State; st != school.EnrolmentDenied {
		t.Fatalf("state = %s, want denied", st)
	}
}
