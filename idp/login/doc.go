// Package login is the pupils' username-less passkey sign-in at /login,
// their browser sessions (a cookie naming a session row in the Store),
// logout, and the pupil's own page /me (passkeys and sessions). It also
// says which same-origin path a login may return to (LoginURL, ReauthURL,
// SafeReturnTo) and what level a login reached (ACRFor and the
// authentication-context helpers both protocols use).
//
// It reads credentials and sessions through school.Store and must not
// import the protocol packages (idp/oidc, idp/saml), nor enrolment or
// guardian: the protocols consume a login through small interfaces of
// their own.
package login
