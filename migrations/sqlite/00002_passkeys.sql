-- +goose Up
-- A pupil's WebAuthn user handle: 64 random bytes, never derived from
-- the name or an id.
CREATE TABLE pupil_handles (
    pupil_id TEXT PRIMARY KEY REFERENCES pupils(id) ON DELETE CASCADE,
    handle   BLOB NOT NULL UNIQUE
);

CREATE TABLE credentials (
    id                 BLOB PRIMARY KEY,
    pupil_id           TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    school_id          TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    public_key         BLOB NOT NULL,
    attestation_format TEXT NOT NULL DEFAULT '',
    aaguid             BLOB,
    sign_count         INTEGER NOT NULL DEFAULT 0,
    backup_eligible    INTEGER NOT NULL DEFAULT 0,
    backup_state       INTEGER NOT NULL DEFAULT 0,
    clone_warning      INTEGER NOT NULL DEFAULT 0,
    transports         TEXT NOT NULL DEFAULT '',
    label              TEXT NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER NOT NULL DEFAULT 0,
    revoked_at         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX credentials_pupil ON credentials(pupil_id);

-- WebAuthn ceremony state: single-use, deleted when consumed.
CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL DEFAULT '',
    ref        BLOB,
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies(expires_at);

-- Enrolment codes, stored as the SHA-256 of the normalized code.
CREATE TABLE enrolment_codes (
    hash       BLOB PRIMARY KEY,
    pupil_id   TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    school_id  TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX enrolment_codes_pupil ON enrolment_codes(pupil_id);

-- Sessions of pupils and staff; id_hash is the SHA-256 (hex) of the
-- random id in the cookie.
CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    school_id     TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    idle_timeout  INTEGER NOT NULL DEFAULT 0,
    auth_time     INTEGER NOT NULL,
    amr           TEXT NOT NULL DEFAULT '',
    acr           TEXT NOT NULL DEFAULT '',
    user_verified INTEGER NOT NULL DEFAULT 0,
    credential_id BLOB,
    user_agent    TEXT NOT NULL DEFAULT '',
    revoked_at    INTEGER NOT NULL DEFAULT 0,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_subject ON sessions(subject_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Fixed-window rate counters shared by all nodes.
CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    count        INTEGER NOT NULL
);

-- +goose Down
DROP TABLE rate_counters;
DROP TABLE sessions;
DROP TABLE enrolment_codes;
DROP TABLE webauthn_ceremonies;
DROP TABLE credentials;
DROP TABLE pupil_handles;
