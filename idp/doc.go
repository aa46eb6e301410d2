// Package idp is ElevID's identity provider proper: passkey login and
// browser sessions, the OpenID Connect provider, the SAML 2.0 identity
// provider, signing keys and the release log. It reads consent and
// credentials through school.Store only and must not import the
// enrolment or guardian packages.
package idp
