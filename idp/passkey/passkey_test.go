package passkey_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
)

func TestLabel(t *testing.T) {
	long := strings.Repeat("æ", 70)
	for _, c := range []struct{ in, want string }{
		{"  Skolens   iPad ", "Skolens iPad"},
		{"Min\ntelefon", "Min telefon"},
		{"bell\x07", "bell"},
		{"", "default"},
		{" \t ", "default"},
		{long, strings.Repeat("æ", 60)},
	} {
		if got := passkey.Label(c.in, "default"); got != c.want {
			t.Errorf("Label(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Each typed refusal is answered with the caller's keys and logged as a
// refusal; anything else is a server error, not logged as a refusal.
func TestKeysAnswer(t *testing.T) {
	keys := passkey.Keys{Ceremony: "again", Refused: "failed"}
	for _, c := range []struct {
		err        error
		status     int
		key        string
		serverSide bool
	}{
		{fmt.Errorf("%w: expired", passkey.ErrCeremony), http.StatusBadRequest, "again", false},
		{passkey.ErrMalformed, http.StatusUnauthorized, "failed", false},
		{fmt.Errorf("%w: bad signature", passkey.ErrInvalid), http.StatusUnauthorized, "failed", false},
		{passkey.ErrUnknownHandle, http.StatusUnauthorized, "failed", false},
		{passkey.ErrUnknownCredential, http.StatusUnauthorized, "failed", false},
		{passkey.ErrForeignCredential, http.StatusUnauthorized, "failed", false},
		{passkey.ErrRevokedCredential, http.StatusUnauthorized, "failed", false},
		{passkey.ErrNoCredentials, http.StatusUnauthorized, "failed", false},
		{fmt.Errorf("wrapped: %w", &passkey.InactiveOwnerError{Status: "disabled"}), http.StatusUnauthorized, "failed", false},
		{fmt.Errorf("%w: %w", passkey.ErrStore, school.ErrNotFound), http.StatusInternalServerError, "error.internal", true},
		{errors.New("boom"), http.StatusInternalServerError, "error.internal", true},
	} {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		status, key, detail := keys.Answer(c.err, http.StatusUnauthorized, log, "refused", "owner", "o1")
		if status != c.status || key != c.key || (detail != nil) != c.serverSide || passkey.Refusal(c.err) == c.serverSide {
			t.Errorf("Answer(%v) = %d %q %v", c.err, status, key, detail)
		}
		if logged := strings.Contains(logs.String(), "msg=refused owner=o1 err="); logged == c.serverSide {
			t.Errorf("Answer(%v) logged %q", c.err, logs.String())
		}
	}
}
