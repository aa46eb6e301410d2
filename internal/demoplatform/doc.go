// Package demoplatform is the built-in demo learning platform at
// /demo/platform: an OpenID Connect relying party of ElevID (go-oidc and
// oauth2) that shows what it received, takes back-channel logouts and
// signs out through ElevID's end-session endpoint. It is a client of
// ElevID, not part of the identity provider: it uses idp/oidc only to
// register itself (oidc.RegisterPlatform) and for the names of ElevID's
// endpoints, and must not import idp/saml, guardian or enrolment.
package demoplatform
