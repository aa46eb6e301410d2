package guardian

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/elevid/elevid/school"
)

// sealedPrefix marks an outbox body sealed with the encryption keys
// (secrets.encryption_keys). Pending mail holds magic links (consent and
// guardian sign-in): sealed, a copy of the database alone does not give
// them up. Bodies are wiped when the mail is delivered (Store.MailSent);
// the metadata stays.
const sealedPrefix = "sealed:v1:"

// mailContext binds a sealed body to its recipient and part, so that it
// cannot be moved to another row and opened there.
func mailContext(m school.Mail, part string) string {
	return "outbox:" + m.Kind + ":" + m.To + ":" + part
}

// SealMail returns m with its text and HTML bodies sealed under sealer.
func SealMail(sealer *school.Sealer, m school.Mail) school.Mail {
	seal := func(body, part string) string {
		if body == "" {
			return ""
		}
		return sealedPrefix + base64.StdEncoding.EncodeToString(sealer.Seal([]byte(body), mailContext(m, part)))
	}
	m.Text, m.HTML = seal(m.Text, "text"), seal(m.HTML, "html")
	return m
}

// IsSealed reports whether an outbox body is sealed.
func IsSealed(body string) bool { return strings.HasPrefix(body, sealedPrefix) }

// OpenMail returns m with sealed bodies opened: what the sender delivers
// and what the demo mail page (demo mode only) shows. A body without the
// sealed prefix is returned as it is: mail queued before migration 00015
// (readable in the database until delivered, then wiped like every body).
// A sealed body that no key opens is an error.
func OpenMail(sealer *school.Sealer, m school.Mail) (school.Mail, error) {
	open := func(body, part string) (string, error) {
		if !IsSealed(body) {
			return body, nil
		}
		raw, err := base64.StdEncoding.DecodeString(body[len(sealedPrefix):])
		if err != nil {
			return "", fmt.Errorf("guardian: mail %s %s body: %w", m.ID, part, err)
		}
		pt, err := sealer.Open(raw, mailContext(m, part))
		if err != nil {
			return "", fmt.Errorf("guardian: mail %s %s body: %w", m.ID, part, err)
		}
		return string(pt), nil
	}
	var err error
	if m.Text, err = open(m.Text, "text"); err != nil {
		return m, err
	}
	m.HTML, err = open(m.HTML, "html")
	return m, err
}
