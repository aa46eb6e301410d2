// Package saml is ElevID's SAML 2.0 identity provider: metadata, single
// sign-on (SP- and IdP-initiated), refusals that go back to the platform,
// single logout (front channel, and SOAP back-channel through the shared
// logout queue), signed and encrypted responses, and its signing keys. It
// also holds what a SAML platform registration is (Settings, PlatformSpec,
// RegisterPlatform, the metadata checks); the admin command's flags and
// output live in cmd/elevid.
//
// What a platform receives comes from package release (one decision for
// both protocols). It consumes the pupil's login through the small
// SessionSource interface (LoginSessions adapts the passkey login) and
// must not import idp/oidc, guardian or enrolment, nor package testing.
package saml
