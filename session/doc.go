// Package session is the one browser-session mechanism of ElevID for
// pupils, staff and guardians: the random session id travels in a signed
// and encrypted cookie (securecookie, with the instance's session keys,
// newest pair first so that keys can rotate), the session's state stays
// in the store (school.SessionStore, which keeps only the id's SHA-256).
// A Manager serves one kind of session with that kind's cookie name,
// SameSite mode, lifetime and idle timeout; it starts a session (ending
// the browser's previous one of that kind), reads the current one, and
// ends it.
//
// It depends on package school (types and the session store) only; it
// must not depend on idp, console, guardian or any other handler package,
// which all depend on it.
package session
