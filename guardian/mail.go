package guardian

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/quotedprintable"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

//go:embed mail/*.tmpl
var mailFS embed.FS

// mailTemplates are parsed once; a broken template fails the package's
// tests and New, never a send.
var (
	mailText = texttemplate.Must(texttemplate.New("").ParseFS(mailFS, "mail/*.txt.tmpl"))
	mailHTML = htmltemplate.Must(htmltemplate.New("").ParseFS(mailFS, "mail/*.html.tmpl"))
)

// Mail kinds in the outbox.
const (
	KindConsentRequest = "consent_request"
	KindGuardianLink   = "guardian_link"
	KindPasskeyReset   = "passkey_reset"
	// KindConsentAddition asks a guardian about attributes a platform
	// gained after the guardian's grant.
	KindConsentAddition = "consent_addition"
)

// mailSubjects are the subjects per kind, Danish then English (each mail
// carries both languages: a guardian's language is not on record).
var mailSubjects = map[string]string{
	KindConsentRequest:  "Samtykke til ElevID · Consent for ElevID",
	KindGuardianLink:    "Dit link til ElevID · Your ElevID link",
	KindPasskeyReset:    "Ny adgangsnøgle i ElevID · New passkey in ElevID",
	KindConsentAddition: "En platform beder om flere oplysninger · A platform asks for more information",
}

// mailData is what the mail templates get.
type mailData struct {
	// Site formats the dates (in the configured time zone).
	Site       *web.Site
	SchoolName string
	GivenName  string
	// PlatformName names the platform of an addition request.
	PlatformName string
	Link         string
	Expires      time.Time
}

// DateDA formats the expiry as a Danish date and time.
func (d mailData) DateDA() string { return d.Site.FormatTime("da", d.Expires) }

// DateEN formats the expiry as an English date and time.
func (d mailData) DateEN() string { return d.Site.FormatTime("en", d.Expires) }

// renderMail renders a mail of kind for to (validated) into an outbox
// record.
func renderMail(kind, schoolID, to string, d mailData) (school.Mail, error) {
	if err := school.ValidEmail(to); err != nil {
		return school.Mail{}, err
	}
	var txt, html bytes.Buffer
	if err := mailText.ExecuteTemplate(&txt, kind+".txt.tmpl", d); err != nil {
		return school.Mail{}, fmt.Errorf("guardian: mail %s: %w", kind, err)
	}
	if err := mailHTML.ExecuteTemplate(&html, kind+".html.tmpl", d); err != nil {
		return school.Mail{}, fmt.Errorf("guardian: mail %s: %w", kind, err)
	}
	subject := mailSubjects[kind]
	if d.SchoolName != "" {
		subject = oneLine(d.SchoolName) + ": " + subject
	}
	return school.Mail{SchoolID: schoolID, Kind: kind, To: to, Subject: subject, Text: txt.String(), HTML: html.String()}, nil
}

// oneLine removes line breaks and other control characters, so that text
// from the directory can never start a new header line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Compose builds the RFC 5322 message of m from the address from: a
// multipart/alternative of quoted-printable text and HTML. Both addresses
// must be bare addresses (school.ValidEmail) and the subject is
// Q-encoded, so no value can inject a header.
func Compose(from string, m school.Mail, now time.Time) ([]byte, error) {
	if err := school.ValidEmail(from); err != nil {
		return nil, fmt.Errorf("guardian: from address: %w", err)
	}
	if err := school.ValidEmail(m.To); err != nil {
		return nil, fmt.Errorf("guardian: recipient: %w", err)
	}
	var b bytes.Buffer
	boundary := "elevid-" + randomHex(12)
	domain := from[strings.LastIndexByte(from, '@')+1:]
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", "ElevID <"+from+">")
	hdr("To", m.To)
	hdr("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+m.ID+"."+randomHex(4)+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	hdr("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	part := func(ctype, body string) error {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, ctype)
		w := quotedprintable.NewWriter(&b)
		if _, err := w.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		b.WriteString("\r\n")
		return nil
	}
	if err := part("text/plain", m.Text); err != nil {
		return nil, err
	}
	if m.HTML != "" {
		if err := part("text/html", m.HTML); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
