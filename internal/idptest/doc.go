// Package idptest is test support for the identity provider's packages,
// imported only by tests (it imports package testing): an OIDCEnv (a
// store, the passkey login, the OpenID provider and the demo platform on
// an httptest server, one pupil with a passkey in a virtual
// authenticator, and relying parties built on go-oidc), a SAMLHarness (the
// SAML IdP with crewjam service providers), a Browser, and the consent
// model the property tests check releases against. Production code must
// not import it.
package idptest
