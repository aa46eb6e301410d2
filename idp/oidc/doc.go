// Package oidc is ElevID's OpenID Connect provider for learning platforms:
// discovery, authorization (handing the pupil to the passkey login and
// back), tokens, userinfo, introspection, revocation, RP-initiated logout
// and the back-channel logout sender that works through the shared logout
// queue. It also holds what an OIDC platform registration is (Settings,
// PlatformSpec, RegisterPlatform), the ID token signing keys (Keys) and
// the claims each scope asks for; the admin command's flags and output
// live in cmd/elevid.
//
// What a platform receives comes from package release (one decision for
// both protocols); sessions come from the login through the small
// Sessions interface. It must not import idp/saml, guardian or enrolment,
// nor package testing.
package oidc
