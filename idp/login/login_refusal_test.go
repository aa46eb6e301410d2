package login

import (
	"fmt"
	"testing"

	"github.com/elevid/elevid/school"
)

// TestRefusalKey pins which message each typed login refusal gets (it
// replaced a comparison of reason strings), wrapped or not.
func TestRefusalKey(t *testing.T) {
	for _, c := range []struct {
		refused error
		want    string
	}{
		{errUnknownHandle, "login.err.unknown"},
		{errUnknownCredential, "login.err.unknown"},
		{errRevokedCredential, "login.err.unknown"},
		{fmt.Errorf("wrapped: %w", errRevokedCredential), "login.err.unknown"},
		{errForeignCredential, "login.err.failed"},
		{errAssertionInvalid, "login.err.failed"},
		{inactivePupilError{school.PupilQuarantined}, "login.err.inactive"},
	} {
		if got := refusalKey(c.refused); got != c.want {
			t.Errorf("refusalKey(%v) = %q, want %q", c.refused, got, c.want)
		}
	}
	if got := (inactivePupilError{school.PupilQuarantined}).Error(); got != "pupil "+string(school.PupilQuarantined) {
		t.Errorf("log reason = %q", got)
	}
}
