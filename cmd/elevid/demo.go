package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/elevid/elevid/guardian"
	"github.com/elevid/elevid/internal/demoplatform"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// demoPupils are the made-up pupils of the demo school.
var demoPupils = []struct {
	ext, given, family, birth, guardian, email string
}{
	{"demo-p1", "Ida", "Hansen", "2012-05-17", "Mette Hansen", "mette.hansen@example.dk"},
	{"demo-p2", "Noah", "Nielsen", "2011-11-02", "Lars Nielsen", "lars.nielsen@example.dk"},
	{"demo-p3", "Freja", "Jensen", "2012-08-23", "Sofie Jensen", "sofie.jensen@example.dk"},
	{"demo-p4", "Oscar", "Pedersen", "2013-01-30", "Anders Pedersen", "anders.pedersen@example.dk"},
}

// seedDemo creates (once) a demo school with a class, pupils, guardians
// and a teacher. Running it again changes nothing.
func seedDemo(ctx context.Context, a *app, out io.Writer) error {
	if s, err := a.store.SchoolByCode(ctx, "demo"); err == nil {
		fmt.Fprintf(out, "Demo school %q is already set up.\n", s.Name)
		return demoExtra(ctx, a, out, s)
	} else if !errors.Is(err, school.ErrNotFound) {
		return err
	}
	var s school.School
	err := a.store.InTx(ctx, func(q school.Queries) error {
		var err error
		s, err = q.CreateSchool(ctx, school.School{Code: "demo", Name: "Demoskolen", Domain: "demo.elevid.example"})
		if err != nil {
			return err
		}
		class, err := q.CreateClass(ctx, school.Class{SchoolID: s.ID, ExternalID: "demo-7a", Name: "7A"})
		if err != nil {
			return err
		}
		for _, p := range demoPupils {
			g, err := q.CreateGuardian(ctx, school.Guardian{SchoolID: s.ID, ExternalID: p.ext + "-g", Name: p.guardian, Email: p.email})
			if err != nil {
				return err
			}
			birth, err := time.Parse(time.DateOnly, p.birth)
			if err != nil {
				return err
			}
			if _, err := q.CreatePupil(ctx, school.Pupil{SchoolID: s.ID, ExternalID: p.ext, GivenName: p.given, FamilyName: p.family,
				BirthDate: birth, ClassIDs: []string{class.ID}, GuardianIDs: []string{g.ID}}); err != nil {
				return err
			}
		}
		if _, err := q.CreateStaff(ctx, school.Staff{SchoolID: s.ID, Username: "laerer", Name: "Anna Jensen", Email: "anna.jensen@example.dk",
			Role: school.RoleTeacher, ClassIDs: []string{class.ID}}); err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: s.ID, ActorID: "system", ActorRole: "system", Action: "demo.seed", SubjectID: s.ID})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Demo school %q created with class 7A, %d pupils and teacher \"laerer\".\n", s.Name, len(demoPupils))
	return demoExtra(ctx, a, out, s)
}

// demoExtra seeds what the capability packages add to the demo (the demo
// platform, the teacher's sign-in); it is idempotent too.
func demoExtra(ctx context.Context, a *app, out io.Writer, s school.School) error {
	platform, err := demoplatform.Register(ctx, a.store, a.cfg.Issuer, a.pairwise)
	if err != nil {
		return fmt.Errorf("demo platform: %w", err)
	}
	if err := demoConsole(ctx, a, out, s, platform); err != nil {
		return err
	}
	fmt.Fprintf(out, `Demo platform (an OIDC relying party):  %s/demo/platform
Mail the demo would send (no SMTP set): %s/demo/mail
`, a.cfg.Issuer, a.cfg.Issuer)
	return nil
}

// demoMail lists the mail in the outbox, newest first and in full, so
// that a newcomer without an SMTP server can open the consent links the
// guardians would get. It is mounted only in demo mode (which an https
// instance refuses).
func demoMail(a *app, site *web.Site) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mails, err := a.store.ListMail(r.Context(), school.MailFilter{Limit: 50, Bodies: true})
		if err != nil {
			site.ServerError(w, r, err)
			return
		}
		views := make([]demoMailView, len(mails))
		for i, m := range mails {
			// Pending bodies are sealed (issue 15): open them for the page.
			if m, err = guardian.OpenMail(a.sealer, m); err != nil {
				site.ServerError(w, r, err)
				return
			}
			views[i] = demoMailView{Mail: m, Body: linkify(m.Text)}
		}
		site.Render(w, r, http.StatusOK, "demo-mail", views)
	}
}

// demoMailHTML shows the HTML body of one mail of the outbox as the
// guardian's mail program would (without its styles: the page's CSP
// allows none inline).
func demoMailHTML(a *app, site *web.Site) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mails, err := a.store.ListMail(r.Context(), school.MailFilter{Limit: 50, Bodies: true})
		if err != nil {
			site.ServerError(w, r, err)
			return
		}
		for _, m := range mails {
			if m.ID == r.PathValue("id") && m.HTML != "" {
				if m, err = guardian.OpenMail(a.sealer, m); err != nil {
					site.ServerError(w, r, err)
					return
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, m.HTML)
				return
			}
		}
		site.NotFound(w, r)
	}
}

// demoMailView is one mail on the demo's outbox page: Body is its text
// with the links made clickable.
type demoMailView struct {
	school.Mail
	Body template.HTML
}

var linkPattern = regexp.MustCompile(`https?://[^\s<>"]+`)

// linkify escapes text and turns every http(s) URL in it into a link.
func linkify(text string) template.HTML {
	var b strings.Builder
	last := 0
	for _, m := range linkPattern.FindAllStringIndex(text, -1) {
		b.WriteString(template.HTMLEscapeString(text[last:m[0]]))
		u := strings.TrimRight(text[m[0]:m[1]], ".,;:)")
		esc := template.HTMLEscapeString(u)
		b.WriteString(`<a href="` + esc + `">` + esc + `</a>`)
		last = m[0] + len(u)
	}
	b.WriteString(template.HTMLEscapeString(text[last:]))
	return template.HTML(b.String())
}
