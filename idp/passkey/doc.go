// Package passkey is ElevID's one WebAuthn ceremony helper, shared by
// pupil enrolment (package enrolment), pupil login (package idp/login) and the
// staff console's passkeys (package console): the go-webauthn
// configuration ElevID requires (discoverable credentials, user
// verification, attestation "none", enforced timeouts), RelyingParty,
// which runs registration and login for a passkey owner of either kind
// (school.Owner) and returns typed errors, the adapter from stored
// credentials to the library's types, single-use server-side ceremony
// state, and the small JSON protocol spoken with web/static/passkey.js.
//
// It depends only on package school and go-webauthn; it must not import
// idp/login, enrolment, console or guardian.
package passkey
