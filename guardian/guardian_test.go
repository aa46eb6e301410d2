package guardian_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/school"
)

func TestConsentByMailEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	if _, _, err := e.flows.IssueCode(ctx, e.actor(), e.pupil.ID); !errors.Is(err, school.ErrInvalid) {
		t.Fatalf("code before consent: %v", err)
	}
	link := e.start()
	msg := e.sink.messages()[0]
	if msg.To != "mor@example.dk" || msg.From != "elevid@demo.elevid.dk" {
		t.Fatalf("envelope %s → %s", msg.From, msg.To)
	}
	text, _ := parseMail(t, msg.Data)
	if !strings.Contains(text, "Demo Skole") || !strings.Contains(text, "Ida") || !strings.Contains(text, "Dear parent") {
		t.Fatalf("mail text lacks school, child or English part:\n%s", text)
	}
	// The outbox keeps no magic link once delivered.
	if l := must[[]school.Mail](t)(e.st.ListMail(ctx, school.MailFilter{Status: school.MailSent})); len(l) != 1 {
		t.Fatalf("sent mail = %d", len(l))
	}
	if _, _, err := e.flows.IssueCode(ctx, e.actor(), e.pupil.ID); err == nil {
		t.Fatal("code issued while awaiting consent")
	}

	c := e.client()
	status, body := get(t, c, link)
	if status != http.StatusOK {
		t.Fatalf("consent page %d", status)
	}
	// Attributes in plain words, the justification in the page's
	// language (Danish by default), never the technical names.
	for _, want := range []string{"Demo Skole", "Ida", "MatematikFessor", "fornavn", "Læreren ser elevens fornavn ved afleveringer", "Ordbogen"} {
		if !strings.Contains(body, want) {
			t.Fatalf("consent page lacks %q", want)
		}
	}
	for _, jargon := range []string{"given_name", "The teacher sees"} {
		if strings.Contains(body, jargon) {
			t.Fatalf("Danish consent page shows %q", jargon)
		}
	}
	// Opening the page changes nothing (mail scanners open links).
	if get(t, c, link); must[school.Enrolment](t)(e.st.GetEnrolment(ctx, e.pupil.ID)).State != school.EnrolmentAwaitingConsent {
		t.Fatal("GET changed the flow")
	}
	// Approve MatematikFessor only.
	status, body = post(t, c, link, map[string]string{"action": "choose", "p_" + e.pf.ID: "grant", "p_" + e.pf2.ID: "deny"})
	if status != http.StatusOK || !strings.Contains(body, `id="done-summary"`) {
		t.Fatalf("approve: %d\n%s", status, body)
	}
	if st := must[school.Enrolment](t)(e.st.GetEnrolment(ctx, e.pupil.ID)).State; st != school.EnrolmentConsented {
		t.Fatalf("state after approval = %s", st)
	}
	if !must[bool](t)(e.st.ReleaseAllowed(ctx, e.pupil.ID, e.pf.ID)) || must[bool](t)(e.st.ReleaseAllowed(ctx, e.pupil.ID, e.pf2.ID)) {
		t.Fatal("releases do not follow the per-platform decisions")
	}
	code, _, err := e.flows.IssueCode(ctx, e.actor(), e.pupil.ID)
	if err != nil || code == "" {
		t.Fatalf("code after consent: %v", err)
	}
	if st := must[school.Enrolment](t)(e.flows.Get(ctx, e.pupil.ID)).State; st != school.EnrolmentCodeIssued {
		t.Fatalf("state after code = %s", st)
	}
	// The link is single-use.
	if status, body = post(t, c, link, map[string]string{"action": "grant_all"}); status != http.StatusGone || !strings.Contains(body, "link-problem") {
		t.Fatalf("reuse: %d", status)
	}
	if must[bool](t)(e.st.ReleaseAllowed(ctx, e.pupil.ID, e.pf2.ID)) {
		t.Fatal("a used link changed a decision")
	}

	// The pupil signs in and MatematikFessor receives claims.
	sess := must[school.Session](t)(e.st.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: e.pupil.ID, SchoolID: e.school.ID, ExpiresAt: e.clock.Now().Add(time.Hour)}))
	must[school.OIDCToken](t)(e.st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenRefresh, Hash: []byte("rt-hash-0123456789"), PlatformID: e.pf.ID, PupilID: e.pupil.ID, Subject: "sub-ida", SessionRef: sess.Ref, ExpiresAt: e.clock.Now().Add(24 * time.Hour)}))
	must[school.Release](t)(e.st.AddRelease(ctx, school.Release{PupilID: e.pupil.ID, PlatformID: e.pf.ID, PlatformName: e.pf.Name, Protocol: school.ProtocolOIDC, Via: "id_token", Claims: []string{"sub", "given_name"}}))

	// The guardian's page (the consent left a session): consents and the release log.
	status, body = get(t, c, e.srv.URL+"/guardian")
	if status != http.StatusOK || !strings.Contains(body, "child-"+e.pupil.ID) || !strings.Contains(body, `class="release"`) ||
		!strings.Contains(body, "et id, som kun denne platform får, fornavn") || !strings.Contains(body, "Får nu: fornavn") || strings.Contains(body, "given_name") {
		t.Fatalf("guardian page %d:\n%s", status, body)
	}
	// Withdraw asks first, naming the platform and what stops; nothing
	// changes until the guardian confirms.
	status, body = post(t, c, e.srv.URL+"/guardian/withdraw", map[string]string{"pupil": e.pupil.ID, "platform": e.pf.ID})
	if status != http.StatusOK || !strings.Contains(body, `id="withdraw-confirm"`) || !strings.Contains(body, e.pf.Name) ||
		!strings.Contains(body, `name="confirm" value="yes"`) || !strings.Contains(body, "logget ud af "+e.pf.Name) {
		t.Fatalf("withdraw confirmation: %d\n%s", status, body)
	}
	if _, err := e.st.TouchSession(ctx, sess.ID); err != nil {
		t.Fatal("the question alone withdrew the consent")
	}
	// Confirmed: sessions and refresh tokens end, the platform is told.
	status, _ = post(t, c, e.srv.URL+"/guardian/withdraw", map[string]string{"pupil": e.pupil.ID, "platform": e.pf.ID, "confirm": "yes"})
	if status != http.StatusOK {
		t.Fatalf("withdraw: %d", status)
	}
	if _, err := e.st.TouchSession(ctx, sess.ID); err == nil {
		t.Fatal("pupil session survived the withdrawal")
	}
	if toks := must[[]school.OIDCToken](t)(e.st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: e.pupil.ID})); len(toks) != 0 {
		t.Fatalf("%d tokens survived the withdrawal", len(toks))
	}
	if got := e.logouts(); len(got) != 1 || got[0] != "sub-ida/"+e.pf.ID {
		t.Fatalf("platform logouts = %v", got)
	}
	if must[bool](t)(e.st.ReleaseAllowed(ctx, e.pupil.ID, e.pf.ID)) || must[bool](t)(e.st.EnrolmentAllowed(ctx, e.pupil.ID)) {
		t.Fatal("release or enrolment still allowed after withdrawal")
	}
	if st := must[school.Enrolment](t)(e.st.GetEnrolment(ctx, e.pupil.ID)).State; st != school.EnrolmentWithdrawn {
		t.Fatalf("state after withdrawal = %s", st)
	}
	_, body = get(t, c, e.srv.URL+"/guardian?msg=withdrawn")
	if !strings.Contains(body, "guardian-message") {
		t.Fatal("no withdrawal notice")
	}
	// Every transition is in the audit log, without personal data.
	entries := must[[]school.AuditEntry](t)(e.st.ListAudit(ctx, school.AuditFilter{SchoolID: e.school.ID, Limit: 100}))
	var actions []string
	for _, a := range entries {
		actions = append(actions, a.Action)
		if strings.Contains(a.Detail, "Ida") || strings.Contains(a.Detail, "mor@") {
			t.Fatalf("personal data in audit detail %q", a.Detail)
		}
	}
	for _, want := range []string{"enrolment.requested", "consent.request", "enrolment.awaiting_consent", "consent.decide", "enrolment.consented", "enrolment.code_issued", "consent.withdraw", "enrolment.withdrawn"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Fatalf("audit lacks %s: %v", want, actions)
		}
	}
	if err := e.st.VerifyAudit(ctx, e.school.ID); err != nil {
		t.Fatal(err)
	}
}

func TestBadLinks(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	c := e.client()
	base := e.srv.URL + "/consent/"
	for name, u := range map[string]string{
		"forged":     base + strings.Repeat("A", 43),
		"malformed":  base + "not-a-token",
		"other kind": strings.Replace(link, "/consent/", "/guardian/login/", 1),
	} {
		status, body := get(t, c, u)
		if status != http.StatusNotFound || !strings.Contains(body, "link-problem") {
			t.Errorf("%s: GET %d", name, status)
		}
		if status, _ := post(t, c, u, map[string]string{"action": "grant_all"}); status != http.StatusNotFound {
			t.Errorf("%s: POST %d", name, status)
		}
	}
	// Expired: a clear page, nothing changed.
	e.clock.Advance(8 * 24 * time.Hour)
	status, body := get(t, c, link)
	if status != http.StatusGone || !strings.Contains(body, "link-problem") {
		t.Fatalf("expired GET %d", status)
	}
	if status, _ := post(t, c, link, map[string]string{"action": "grant_all"}); status != http.StatusGone {
		t.Fatalf("expired POST %d", status)
	}
	if n := len(must[[]school.Consent](t)(e.st.ListConsents(e.ctx, e.pupil.ID))); n != 0 {
		t.Fatalf("%d consents recorded through bad links", n)
	}
	if st := must[school.Enrolment](t)(e.flows.Get(e.ctx, e.pupil.ID)).State; st != school.EnrolmentExpired {
		t.Fatalf("state = %s, want expired", st)
	}
	// An expired flow starts afresh.
	e.start()
}

func TestConcurrentApprovalCountsOnce(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	const n = 8
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() {
			c := e.client()
			resp, err := c.PostForm(link, map[string][]string{"action": {"grant_all"}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	ok, gone := 0, 0
	for s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusGone:
			gone++
		default:
			t.Errorf("status %d", s)
		}
	}
	if ok != 1 || gone != n-1 {
		t.Fatalf("%d approvals and %d refusals, want 1 and %d", ok, gone, n-1)
	}
	decides := 0
	for _, a := range must[[]school.AuditEntry](t)(e.st.ListAudit(e.ctx, school.AuditFilter{SchoolID: e.school.ID})) {
		if a.Action == "consent.decide" {
			decides++
		}
	}
	if decides != 1 {
		t.Fatalf("%d decisions recorded", decides)
	}
}

func TestGuardianNotLinkedCannotSeeOrAct(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	e.grantAll()
	// A stranger with a guardian record (another child) signs in by link.
	stranger := must[school.Guardian](t)(e.st.CreateGuardian(ctx, school.Guardian{SchoolID: e.school.ID, Name: "Fremmed", Email: "fremmed@example.dk"}))
	must[school.Pupil](t)(e.st.CreatePupil(ctx, school.Pupil{SchoolID: e.school.ID, GivenName: "Bo", Status: school.PupilActive, GuardianIDs: []string{stranger.ID}}))
	sc := e.client()
	if status, _ := post(t, sc, e.srv.URL+"/guardian/link", map[string]string{"email": "FREMMED@example.dk"}); status != http.StatusOK {
		t.Fatal(status)
	}
	// An unknown address gets the same answer and no mail.
	if status, body := post(t, e.client(), e.srv.URL+"/guardian/link", map[string]string{"email": "nobody@example.dk"}); status != http.StatusOK || !strings.Contains(body, "guardian-message") {
		t.Fatal(status)
	}
	if sent, _, _ := e.sender.RunOnce(ctx); sent != 1 {
		t.Fatalf("sent %d guardian links, want 1", sent)
	}
	msgs := e.sink.messages()
	text, _ := parseMail(t, msgs[len(msgs)-1].Data)
	login := linkRE.FindString(text)
	if msgs[len(msgs)-1].To != "fremmed@example.dk" || !strings.Contains(login, "/guardian/login/") {
		t.Fatalf("guardian link mail to %s: %q", msgs[len(msgs)-1].To, login)
	}
	if status, _ := get(t, sc, login); status != http.StatusOK {
		t.Fatal(status)
	}
	if status, _ := post(t, sc, login, nil); status != http.StatusOK {
		t.Fatal(status)
	}
	_, body := get(t, sc, e.srv.URL+"/guardian")
	if !strings.Contains(body, "Bo") || strings.Contains(body, e.pupil.ID) || strings.Contains(body, "Ida") {
		t.Fatalf("stranger's page shows the wrong children:\n%s", body)
	}
	if _, body := post(t, sc, e.srv.URL+"/guardian/withdraw", map[string]string{"pupil": e.pupil.ID, "platform": "all"}); strings.Contains(body, "Ida") {
		t.Fatal("a stranger was asked to confirm withdrawing for Ida")
	}
	post(t, sc, e.srv.URL+"/guardian/withdraw", map[string]string{"pupil": e.pupil.ID, "platform": "all", "confirm": "yes"})
	if !must[bool](t)(e.st.ReleaseAllowed(ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("a guardian not linked to the pupil withdrew consent")
	}
	// Without a session, nothing.
	if status, _ := post(t, e.client(), e.srv.URL+"/guardian/withdraw", map[string]string{"pupil": e.pupil.ID, "platform": "all"}); status != http.StatusForbidden {
		t.Fatalf("withdraw without session: %d", status)
	}
	// A guardian unlinked after the request was sent cannot use the link.
	must[school.Pupil](t)(e.st.UpdatePupil(ctx, e.pupil.ID, func(p school.Pupil) (school.Pupil, error) {
		p.GuardianIDs = nil
		return p, nil
	}))
	_, err := e.svc.Withdraw(ctx, e.guardian.ID, e.pupil.ID, "", "")
	if !errors.Is(err, school.ErrNotFound) {
		t.Fatalf("withdraw by unlinked guardian: %v", err)
	}
}

func TestSMTPDownThenBackDeliversOnce(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	// Take the sink down: its port refuses connections.
	addr := e.sink.addr
	_ = e.sink.srv.Close()
	must[[]enrolment.StartResult](t)(e.flows.Start(ctx, e.actor(), []string{e.pupil.ID}))
	for i := range 3 {
		sent, failed, err := e.sender.RunOnce(ctx)
		if err != nil || sent != 0 || failed != min(i+1, 1) && i == 0 {
			t.Fatalf("round %d while down: %d sent, %d failed, %v", i, sent, failed, err)
		}
	}
	pending := must[[]school.Mail](t)(e.st.ListMail(ctx, school.MailFilter{Status: school.MailPending}))
	if len(pending) != 1 || pending[0].Attempts != 1 || pending[0].LastError == "" {
		t.Fatalf("pending after failure = %+v", pending)
	}
	// Back up on the same address; once the backoff passed, it is sent once.
	up := startSink(t, addr)
	e.sender = guardian.NewSender(guardian.SenderOptions{Store: e.st, Sealer: testSealer, SMTP: smtpFor(t, addr), Now: e.clock.Now, Logger: quiet})
	if sent, _, _ := e.sender.RunOnce(ctx); sent != 0 {
		t.Fatal("sent before the backoff passed")
	}
	e.clock.Advance(2 * time.Minute)
	var wg sync.WaitGroup
	for range 3 { // several nodes at once
		wg.Go(func() {
			other := guardian.NewSender(guardian.SenderOptions{Store: e.st, Sealer: testSealer, SMTP: smtpFor(t, addr), Now: e.clock.Now, Logger: quiet})
			if _, _, err := other.RunOnce(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, _, err := e.sender.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(up.messages()); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
	if sent := must[[]school.Mail](t)(e.st.ListMail(ctx, school.MailFilter{Status: school.MailSent})); len(sent) != 1 || sent[0].Attempts != 2 {
		t.Fatalf("sent = %+v", sent)
	}
}

func smtpFor(t *testing.T, addr string) guardian.SMTP {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return guardian.SMTP{Host: host, Port: atoi(port), TLS: "none", From: "elevid@demo.elevid.dk", Timeout: 5 * time.Second}
}

func TestNoHeaderInjection(t *testing.T) {
	now := time.Now()
	m := school.Mail{ID: "x", To: "mor@example.dk", Subject: "Skole\r\nBcc: spy@evil.example", Text: "hej\nBcc: spy@evil.example"}
	msg, err := guardian.Compose("elevid@demo.elevid.dk", m, now)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(msg), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "bcc:") {
			t.Fatalf("injected header in:\n%s", head)
		}
	}
	for _, bad := range []string{"mor@example.dk\r\nBcc: spy@evil.example", "Mor <mor@example.dk>", "mor@example.dk, spy@evil.example"} {
		m.To = bad
		if _, err := guardian.Compose("elevid@demo.elevid.dk", m, now); err == nil {
			t.Errorf("Compose accepted recipient %q", bad)
		}
	}
	// A school name with a line break reaches the subject as one line.
	e := newEnv(t)
	must[school.School](t)(e.st.UpdateSchool(e.ctx, e.school.ID, func(s school.School) (school.School, error) {
		s.Name = "Demo\r\nBcc: spy@evil.example"
		return s, nil
	}))
	e.start()
	data := string(e.sink.messages()[0].Data)
	head, _, _ = strings.Cut(data, "\r\n\r\n")
	if strings.Contains(strings.ToLower(head), "\r\nbcc:") {
		t.Fatalf("school name injected a header:\n%s", head)
	}
	if _, err := e.st.CreateGuardian(e.ctx, school.Guardian{SchoolID: e.school.ID, Email: "a@b.dk\r\nBcc: c@d.dk"}); !errors.Is(err, school.ErrInvalid) {
		t.Fatalf("guardian with injected address: %v", err)
	}
}

func TestPasskeyResetNotifiesGuardians(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	link := e.start()
	post(t, e.client(), link, map[string]string{"action": "grant_all"})
	must[school.Credential](t)(e.st.AddCredential(ctx, school.Credential{ID: []byte("cred-1"), Owner: school.PupilOwner(e.pupil.ID), SchoolID: e.school.ID, PublicKey: []byte("k")}))
	if st := must[school.Enrolment](t)(e.flows.Get(ctx, e.pupil.ID)).State; st != school.EnrolmentConsented {
		t.Fatalf("state %s", st)
	}
	if _, _, err := e.svc.ResetPasskeys(ctx, e.actor(), e.pupil.ID, false); !errors.Is(err, guardian.ErrNotVerified) {
		t.Fatalf("reset without in-person check: %v", err)
	}
	outsider := e.actor()
	outsider.ClassIDs = nil
	if _, _, err := e.svc.ResetPasskeys(ctx, outsider, e.pupil.ID, true); !errors.Is(err, enrolment.ErrForbidden) {
		t.Fatalf("reset by a teacher of another class: %v", err)
	}
	if creds := must[[]school.Credential](t)(e.st.ListCredentials(ctx, school.PupilOwner(e.pupil.ID), false)); len(creds) != 1 {
		t.Fatal("a refused reset revoked passkeys")
	}
	// The lost device holds a refresh token of the platform.
	sess := must[school.Session](t)(e.st.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: e.pupil.ID, SchoolID: e.school.ID, ExpiresAt: e.clock.Now().Add(time.Hour)}))
	must[school.OIDCToken](t)(e.st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenRefresh, Hash: []byte("rt-lost-device-0123"), PlatformID: e.pf.ID,
		PupilID: e.pupil.ID, Subject: "sub-ida", SessionRef: sess.Ref, ExpiresAt: e.clock.Now().Add(30 * 24 * time.Hour)}))
	code, exp, err := e.svc.ResetPasskeys(ctx, e.actor(), e.pupil.ID, true)
	if err != nil || code == "" || !exp.After(e.clock.Now()) {
		t.Fatalf("reset: %q %v %v", code, exp, err)
	}
	if creds := must[[]school.Credential](t)(e.st.ListCredentials(ctx, school.PupilOwner(e.pupil.ID), false)); len(creds) != 0 {
		t.Fatal("passkeys survived the reset")
	}
	if toks := must[[]school.OIDCToken](t)(e.st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: e.pupil.ID})); len(toks) != 0 {
		t.Fatalf("%d platform tokens survived the passkey reset", len(toks))
	}
	if got := e.logouts(); len(got) != 1 || got[0] != "sub-ida/"+e.pf.ID {
		t.Fatalf("logout notices after the reset = %v", got)
	}
	if sent, _, _ := e.sender.RunOnce(ctx); sent != 1 {
		t.Fatalf("reset notices sent: %d", sent)
	}
	text, _ := parseMail(t, e.sink.messages()[1].Data)
	if !strings.Contains(text, "ny tilmeldingskode") || strings.Contains(text, code) {
		t.Fatalf("reset notice:\n%s", text)
	}
	if st := must[school.Enrolment](t)(e.flows.Get(ctx, e.pupil.ID)).State; st != school.EnrolmentCodeIssued {
		t.Fatalf("state after reset %s", st)
	}
}

func TestConsentNothingPreChosen(t *testing.T) {
	e := newEnv(t)
	link := e.start()
	c := e.client()
	_, page := get(t, c, link)
	if strings.Contains(page, "checked") {
		t.Fatal("the consent page pre-chooses an answer")
	}
	no, yes := strings.Index(page, `id="deny-all"`), strings.Index(page, `id="grant-all"`)
	if no < 0 || yes < 0 || no > yes || !strings.Contains(page, `class="outline" formnovalidate>`) {
		t.Fatal("'No to all' should come first, outlined, and 'Yes to all' be the primary button")
	}
	// "Save my choices" without an answer for a platform saves nothing.
	status, body := post(t, c, link, map[string]string{"action": "choose"})
	if status != http.StatusBadRequest || !strings.Contains(body, "Vælg ja eller nej ved hver platform") {
		t.Fatalf("choose without answers: %d\n%s", status, body)
	}
	if must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("an unanswered platform was granted")
	}
	answers := map[string]string{"action": "choose"}
	for _, m := range regexp.MustCompile(`name="(p_[^"]+)"`).FindAllStringSubmatch(page, -1) {
		answers[m[1]] = "deny"
	}
	answers["p_"+e.pf.ID] = "grant"
	if status, _ := post(t, c, link, answers); status != http.StatusOK {
		t.Fatalf("choose with answers: %d", status)
	}
	if !must[bool](t)(e.st.ReleaseAllowed(e.ctx, e.pupil.ID, e.pf.ID)) {
		t.Fatal("the chosen yes was not saved")
	}
}

// TestDeactivationAndAttributeRemovalEndAccess: a school deactivating a
// platform, and a platform losing an attribute, end the platform's
// access to the school's pupils through the access service in the same
// transaction: its tokens and SAML sessions end and a logout notice is
// queued; the pupils stay signed in to ElevID.
func TestDeactivationAndAttributeRemovalEndAccess(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	sess := must[school.Session](t)(e.st.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: e.pupil.ID, SchoolID: e.school.ID, ExpiresAt: e.clock.Now().Add(time.Hour)}))
	token := func(hash string) {
		must[school.OIDCToken](t)(e.st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenRefresh, Hash: []byte(hash), PlatformID: e.pf.ID,
			PupilID: e.pupil.ID, Subject: "sub-ida", SessionRef: sess.Ref, ExpiresAt: e.clock.Now().Add(24 * time.Hour)}))
	}
	token("rt-before-deactivation-0123")
	must[school.SAMLParticipant](t)(e.st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: school.SAMLSessionID(e.pupil.ID, sess.Ref),
		PupilID: e.pupil.ID, PlatformID: e.pf2.ID, NameID: "name-ida", NameIDFormat: "persistent", SessionIndex: "idx", ExpiresAt: e.clock.Now().Add(time.Hour)}))

	admin := enrolment.Actor{ID: "admin", Role: school.RoleSchoolAdmin, SchoolID: e.school.ID}
	if changed, err := e.svc.SetPlatformActivation(ctx, admin, e.school.ID, e.pf.ID, false); err != nil || !changed {
		t.Fatalf("deactivate: %v %v", changed, err)
	}
	if toks := must[[]school.OIDCToken](t)(e.st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: e.pupil.ID})); len(toks) != 0 {
		t.Fatalf("%d tokens survive the deactivation", len(toks))
	}
	if got := e.logouts(); len(got) != 1 || got[0] != "sub-ida/"+e.pf.ID {
		t.Fatalf("notices after the deactivation = %v", got)
	}
	if _, err := e.st.TouchSession(ctx, sess.ID); err != nil {
		t.Fatalf("the deactivation signed the pupil out of ElevID: %v", err)
	}

	// The SAML platform loses an attribute: its session with the pupil ends.
	old := must[school.Platform](t)(e.st.GetPlatform(ctx, e.pf2.ID))
	old.Attributes = []school.AttributeGrant{{Name: "givenName", JustificationDA: "ordbogen hilser", JustificationEN: "the dictionary greets"}}
	nw := old
	nw.Attributes = nil
	if err := e.st.InTx(ctx, func(q school.Queries) error { return e.svc.PlatformChanged(ctx, q, old, nw) }); err != nil {
		t.Fatal(err)
	}
	got := e.logouts()
	if len(got) != 2 || !slices.Contains(got, "name-ida/"+e.pf2.ID) {
		t.Fatalf("notices after the attribute removal = %v", got)
	}
}

// TestGuardianSession: a guardian's session is a guardian session of the
// one session store behind a signed cookie: a new sign-in in the same
// browser ends the previous session, signing out ends it (and clears the
// cookie), a replayed cookie of an ended session is no sign-in, and the
// pupil's sessions never include it.
func TestGuardianSession(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	c := e.grantAll()
	base, _ := url.Parse(e.srv.URL)
	cookie := func() *http.Cookie {
		for _, ck := range c.Jar.Cookies(base) {
			if ck.Name == "elevid_guardian" {
				return ck
			}
		}
		return nil
	}
	first := cookie()
	if first == nil || len(first.Value) < 100 {
		t.Fatalf("guardian cookie after consent = %+v, want a signed value", first)
	}
	sessions := func(subject string) []school.Session {
		return must[[]school.Session](t)(e.st.ListSessions(ctx, subject))
	}
	if l := sessions(e.guardian.ID); len(l) != 1 || l[0].Kind != school.SessionGuardian || l[0].SchoolID != e.school.ID {
		t.Fatalf("guardian sessions after consent = %+v", l)
	}
	if l := sessions(e.pupil.ID); len(l) != 0 {
		t.Fatalf("pupil sessions = %+v", l)
	}
	if _, body := get(t, c, e.srv.URL+"/guardian"); !strings.Contains(body, "Ida") {
		t.Fatal("signed-in guardian page does not show the child")
	}

	// Signing in again by a guardian-page link in the same browser ends
	// the first session.
	if status, _ := post(t, c, e.srv.URL+"/guardian/link", map[string]string{"email": "mor@example.dk"}); status != http.StatusOK {
		t.Fatal(status)
	}
	if sent, _, _ := e.sender.RunOnce(ctx); sent < 1 {
		t.Fatalf("sent %d mails", sent)
	}
	msgs := e.sink.messages()
	text, _ := parseMail(t, msgs[len(msgs)-1].Data)
	login := linkRE.FindString(text)
	if !strings.Contains(login, "/guardian/login/") {
		t.Fatalf("guardian link %q", login)
	}
	if status, _ := post(t, c, login, nil); status != http.StatusOK {
		t.Fatal(status)
	}
	second := cookie()
	if second == nil || second.Value == first.Value {
		t.Fatal("no new cookie after signing in again")
	}
	if l := sessions(e.guardian.ID); len(l) != 1 {
		t.Fatalf("guardian sessions after signing in again = %d, want 1", len(l))
	}
	replay := func(ck *http.Cookie) string {
		req, _ := http.NewRequest("GET", e.srv.URL+"/guardian", nil)
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if strings.Contains(replay(first), "Ida") {
		t.Fatal("the first session's cookie still signs in")
	}

	// Signing out ends the session and clears the cookie.
	if status, _ := post(t, c, e.srv.URL+"/guardian/logout", nil); status != http.StatusOK {
		t.Fatal(status)
	}
	if ck := cookie(); ck != nil {
		t.Fatalf("cookie after sign-out = %+v", ck)
	}
	if l := sessions(e.guardian.ID); len(l) != 0 {
		t.Fatalf("guardian sessions after sign-out = %+v", l)
	}
	if strings.Contains(replay(second), "Ida") {
		t.Fatal("a signed-out session's cookie still signs in")
	}
}
