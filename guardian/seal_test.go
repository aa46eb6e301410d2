package guardian_test

import (
	"context"
	"strings"
	"testing"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/school"
)

// TestOutboxBodiesSealed (issue 15, item 3): while a consent mail waits
// in the outbox, the database holds no magic link (the bodies are sealed
// with the encryption keys); the delivered mail has the link; once sent
// the bodies are gone and the metadata stays. The demo mail page can open
// a pending mail (GetMail + OpenMail).
func TestOutboxBodiesSealed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	must[[]enrolment.StartResult](t)(e.flows.Start(ctx, e.actor(), []string{e.pupil.ID}))
	var id, text, html string
	if err := e.st.DB().QueryRowContext(ctx, `SELECT id, body_text, body_html FROM outbox WHERE status = 'pending'`).Scan(&id, &text, &html); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{text, html} {
		if strings.Contains(body, "/consent/") || strings.Contains(body, "Ida") || !guardian.IsSealed(body) {
			t.Fatalf("a pending body is readable in the database:\n%.300s", body)
		}
	}
	m := must[school.Mail](t)(e.st.GetMail(ctx, id))
	opened := must[school.Mail](t)(guardian.OpenMail(testSealer, m))
	link := linkRE.FindString(opened.Text)
	if link == "" || !strings.Contains(opened.HTML, link) {
		t.Fatalf("opened mail has no consent link:\n%s", opened.Text)
	}
	// Another key opens nothing.
	other, _ := school.NewSealer([]byte("another-key-another-key-0123456789"))
	if _, err := guardian.OpenMail(other, m); err == nil {
		t.Fatal("a wrong key opened the mail")
	}
	// A body moved to another recipient's row does not open there.
	moved := m
	moved.To = "evil@example.dk"
	if _, err := guardian.OpenMail(testSealer, moved); err == nil {
		t.Fatal("a sealed body opened for another recipient")
	}

	if sent, failed, err := e.sender.RunOnce(ctx); err != nil || sent != 1 || failed != 0 {
		t.Fatalf("RunOnce = %d, %d, %v", sent, failed, err)
	}
	delivered, _ := parseMail(t, e.sink.messages()[0].Data)
	if linkRE.FindString(delivered) != link {
		t.Fatalf("delivered mail lacks the link %s", link)
	}
	var to, subject, status string
	if err := e.st.DB().QueryRowContext(ctx, `SELECT recipient, subject, status, body_text, body_html FROM outbox WHERE id = ?`, id).Scan(&to, &subject, &status, &text, &html); err != nil {
		t.Fatal(err)
	}
	if text != "" || html != "" || to != "mor@example.dk" || subject == "" || status != school.MailSent {
		t.Fatalf("after delivery: to %q subject %q status %q, bodies %d+%d bytes", to, subject, status, len(text), len(html))
	}
}

// TestLegacyPlainMailStillDelivered: mail queued before migration 00015
// (plain bodies) is delivered as it is and then wiped.
func TestLegacyPlainMailStillDelivered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := must[school.Mail](t)(e.st.EnqueueMail(ctx, school.Mail{SchoolID: e.pupil.SchoolID, Kind: "guardian_link", To: "mor@example.dk",
		Subject: "Link", Text: "Open https://x.example/guardian/login/legacy-token", HTML: "<p>legacy</p>"}))
	if sent, _, err := e.sender.RunOnce(ctx); err != nil || sent != 1 {
		t.Fatalf("RunOnce = %d, %v", sent, err)
	}
	delivered, _ := parseMail(t, e.sink.messages()[0].Data)
	if !strings.Contains(delivered, "legacy-token") {
		t.Fatalf("legacy mail: %s", delivered)
	}
	if got := must[school.Mail](t)(e.st.GetMail(ctx, m.ID)); got.Text != "" {
		t.Fatal("legacy body kept after delivery")
	}
}
