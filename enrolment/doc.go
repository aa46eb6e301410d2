// Package enrolment turns a roster pupil into a pupil with a passkey:
// teachers issue single-use, expiring enrolment codes (printed as text
// and QR), and the pupil registers a discoverable, user-verified passkey
// at /enrol with one of them.
//
// It depends on package school (through the Store), on idp/passkey for
// the shared WebAuthn configuration and on web for pages. Package idp must
// never import enrolment; enrolment may use idp's exported helpers.
package enrolment
