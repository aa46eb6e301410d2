package school

import "errors"

// Sentinel errors returned (wrapped with %w) by every Store implementation.
var (
	// ErrNotFound means the requested record does not exist (or is not
	// visible in the given school).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a uniqueness rule was violated, e.g. a second school
	// with the same code or a pupil with the same external id.
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the record failed validation before it was written.
	ErrInvalid = errors.New("invalid")
	// ErrExpired means a single-use secret or flow is past its expiry.
	ErrExpired = errors.New("expired")
	// ErrUsed means a single-use secret or flow was already consumed.
	ErrUsed = errors.New("already used")
	// ErrLocked means a named lock is held by someone else.
	ErrLocked = errors.New("locked")
)
