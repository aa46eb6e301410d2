// Package console is the staff side of ElevID: sign-in of operators,
// school administrators and teachers (password hashed with argon2id plus
// TOTP, or recovery codes; or a passkey with user verification, under a
// staff WebAuthn user handle kept apart from the pupils'), their
// short-lived server-side sessions, re-authentication for sensitive
// actions (password and TOTP, or a passkey), the one authorization function
// (Authorize) that decides every console action by role and tenant, and
// the server-rendered console pages: school overview, classes and pupils
// with enrolment and consent status, printable enrolment sheets, passkey
// resets, directory source and sync runs, staff, the audit log, and the
// operator's schools and platforms.
//
// It depends on package school (types and Store), web (rendering),
// enrolment (codes and QR) and school/rostersync (sync runs) through
// small interfaces defined here. Nothing depends on console except
// cmd/elevid, which mounts it.
package console
