// Package samlclient plays a pupil's browser with a software passkey
// (github.com/descope/virtualwebauthn) through SAML logins: from a
// service provider's login URL through ElevID's passkey login and back to
// the SP's assertion consumer service, following redirects and ElevID's
// auto-posted forms with one cookie jar, as a browser does. The real-SP
// checks in .ci (mod_auth_mellon, pysaml2) drive it; it is test support
// and is not part of the server.
//
// It must not be imported by production code.
package samlclient
