package login

import (
	"fmt"
	"strings"
	"testing"

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
)

// TestRefusalKey pins which message each typed login refusal gets (it
// replaced a comparison of reason strings), wrapped or not.
func TestRefusalKey(t *testing.T) {
	quarantined := &passkey.InactiveOwnerError{Status: string(school.PupilQuarantined)}
	for _, c := range []struct {
		refused error
		want    string
	}{
		{passkey.ErrUnknownHandle, "login.err.unknown"},
		{passkey.ErrUnknownCredential, "login.err.unknown"},
		{passkey.ErrRevokedCredential, "login.err.unknown"},
		{fmt.Errorf("wrapped: %w", passkey.ErrRevokedCredential), "login.err.unknown"},
		{passkey.ErrForeignCredential, "login.err.failed"},
		{passkey.ErrInvalid, "login.err.failed"},
		{quarantined, "login.err.inactive"},
		{fmt.Errorf("wrapped: %w", quarantined), "login.err.inactive"},
	} {
		if got := refusalKey(c.refused); got != c.want {
			t.Errorf("refusalKey(%v) = %q, want %q", c.refused, got, c.want)
		}
		if !passkey.Refusal(c.refused) {
			t.Errorf("Refusal(%v) = false", c.refused)
		}
	}
	if got := quarantined.Error(); !strings.HasSuffix(got, " "+string(school.PupilQuarantined)) {
		t.Errorf("log reason = %q", got)
	}
	// A store failure is no refusal: the login answers a server error.
	if passkey.Refusal(fmt.Errorf("%w: %w", passkey.ErrStore, school.ErrNotFound)) {
		t.Error("a store failure counts as a refusal")
	}
}
