// Package crossproto has no code: its tests drive the passkey login, the
// OpenID provider and the SAML IdP together on one store (through
// internal/idptest) and check what holds across both protocols, such as
// that no sign-in over either releases what consent does not cover.
package crossproto
