package idp

import (
	"net/http"

	"github.com/elevid/elevid/school"
)

// SAMLSessions returns the passkey login as the SAML IdP's session source
// (Current and LoginURL). The session's ID is school.SAMLSessionID of the
// pupil and the login session's Ref, which the access service uses to end
// the SP sessions of one login session.
func (l *Login) SAMLSessions() SAMLSessionSource {
	return samlSessions{l}
}

type samlSessions struct{ l *Login }

func (s samlSessions) Current(r *http.Request) (SAMLPupilSession, bool) {
	ss, ok := s.l.Current(r)
	if !ok {
		return SAMLPupilSession{}, false
	}
	return SAMLPupilSession{ID: school.SAMLSessionID(ss.SubjectID, ss.Ref), PupilID: ss.SubjectID, AuthTime: ss.AuthTime, UserVerified: ss.UserVerified}, true
}

func (s samlSessions) LoginURL(returnTo string) string { return LoginURL(returnTo) }
