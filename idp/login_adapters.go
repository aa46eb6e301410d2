package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/elevid/elevid/school"
)

// SAMLSessions returns the passkey login as the SAML IdP's session source
// and revoker. The SAMLPupilSession ID is "pupilID:ref", so single logout
// can end exactly that session.
func (l *Login) SAMLSessions() interface {
	SAMLSessionSource
	SAMLSessionRevoker
} {
	return samlSessions{l}
}

type samlSessions struct{ l *Login }

func (s samlSessions) Current(r *http.Request) (SAMLPupilSession, bool) {
	ss, ok := s.l.Current(r)
	if !ok {
		return SAMLPupilSession{}, false
	}
	return SAMLPupilSession{ID: ss.SubjectID + ":" + ss.Ref, PupilID: ss.SubjectID, AuthTime: ss.AuthTime, UserVerified: ss.UserVerified}, true
}

func (s samlSessions) LoginURL(returnTo string) string { return LoginURL(returnTo) }

func (s samlSessions) RevokeSession(ctx context.Context, sessionID string) error {
	pupilID, ref, ok := strings.Cut(sessionID, ":")
	if !ok {
		return school.ErrNotFound
	}
	err := s.l.opt.Store.RevokeSession(ctx, pupilID, ref, "saml single logout")
	if errors.Is(err, school.ErrNotFound) {
		return nil // already ended
	}
	return err
}
