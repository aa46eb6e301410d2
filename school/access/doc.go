// Package access ends a pupil's access to learning platforms. It is the
// one place every event that ends or narrows access goes through: consent
// withdrawn, a platform deactivated for a school, quarantine, erasure,
// passkey reset, logout and session expiry.
//
// A Service is built once at start-up (cmd/elevid) and handed to the
// packages that need it. End runs inside the caller's transaction: it
// revokes the ElevID sessions and the OIDC tokens (access and refresh) in
// scope, forgets the SAML service providers' sessions, and queues a
// logout notice in the durable queue (school.LogoutNotice) for every
// platform that held a session in scope, over OIDC or SAML, so that the
// notices commit with the change that ends the access or not at all.
// Delivery (delivery.go) is the one queue loop both protocols run: any
// node's worker claims due notices under a lease, sends each through the
// protocol's Send (OIDC back-channel logout, SAML SOAP logout, in package
// idp), and records delivery, a retry, or that the platform cannot take
// it; it is woken through Subscribe after the commit.
//
// The package imports only package school, so that guardian, enrolment,
// console, transparency, school/rostersync and idp can all use it.
package access
