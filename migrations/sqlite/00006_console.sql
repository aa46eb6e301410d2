-- +goose Up
-- Staff sign-in state beyond the staff row: TOTP replay protection,
-- pending TOTP enrolment, hashed recovery codes, lockout, re-authentication.
CREATE TABLE staff_auth (
    staff_id       TEXT PRIMARY KEY REFERENCES staff(id) ON DELETE CASCADE,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    pending_totp   BLOB,
    recovery       BLOB,
    failures       INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER NOT NULL DEFAULT 0,
    reauth_session TEXT NOT NULL DEFAULT '',
    reauth_at      INTEGER NOT NULL DEFAULT 0
);

-- Printable enrolment sheets: freshly issued codes, sealed, short-lived.
CREATE TABLE enrolment_sheets (
    id         TEXT PRIMARY KEY,
    school_id  TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    class_id   TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX enrolment_sheets_expires ON enrolment_sheets(expires_at);

-- +goose Down
DROP TABLE enrolment_sheets;
DROP TABLE staff_auth;
