// Package passkey is the WebAuthn plumbing shared by pupil enrolment
// (package enrolment) and login (package idp): the go-webauthn
// configuration ElevID requires (discoverable credentials, user
// verification, attestation "none", enforced timeouts), the adapter from
// stored pupils and credentials to the library's types, single-use
// server-side ceremony state, and the small JSON protocol spoken with
// web/static/passkey.js.
//
// It depends only on package school and go-webauthn; it must not import
// idp, enrolment or guardian.
package passkey
