package saml

import (
	"net/http"

	"github.com/elevid/elevid/school"
)

// LoginSessions returns the pupils' passkey login as the SAML IdP's
// session source: current is the login's Current, loginURL its LoginURL.
// The session's ID is school.SAMLSessionID of the pupil and the login
// session's Ref, which the access service uses to end the SP sessions of
// one login session.
func LoginSessions(current func(*http.Request) (school.Session, bool), loginURL func(returnTo string) string) SessionSource {
	return samlSessions{current: current, loginURL: loginURL}
}

type samlSessions struct {
	current  func(*http.Request) (school.Session, bool)
	loginURL func(returnTo string) string
}

func (s samlSessions) Current(r *http.Request) (PupilSession, bool) {
	ss, ok := s.current(r)
	if !ok {
		return PupilSession{}, false
	}
	return PupilSession{ID: school.SAMLSessionID(ss.SubjectID, ss.Ref), PupilID: ss.SubjectID, AuthTime: ss.AuthTime, UserVerified: ss.UserVerified}, true
}

func (s samlSessions) LoginURL(returnTo string) string { return s.loginURL(returnTo) }
