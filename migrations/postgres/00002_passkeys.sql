-- +goose Up
-- A pupil's WebAuthn user handle: 64 random bytes, never derived from
-- the name or an id.
CREATE TABLE pupil_handles (
    pupil_id TEXT PRIMARY KEY REFERENCES pupils(id) ON DELETE CASCADE,
    handle   BYTEA NOT NULL UNIQUE
);

CREATE TABLE credentials (
    id                 BYTEA PRIMARY KEY,
    pupil_id           TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    school_id          TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    public_key         BYTEA NOT NULL,
    attestation_format TEXT NOT NULL DEFAULT '',
    aaguid             BYTEA,
    sign_count         BIGINT NOT NULL DEFAULT 0,
    backup_eligible    BOOLEAN NOT NULL DEFAULT false,
    backup_state       BOOLEAN NOT NULL DEFAULT false,
    clone_warning      BOOLEAN NOT NULL DEFAULT false,
    transports         TEXT NOT NULL DEFAULT '',
    label              TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    last_used_at       BIGINT NOT NULL DEFAULT 0,
    revoked_at         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX credentials_pupil ON credentials(pupil_id);

-- WebAuthn ceremony state: single-use, deleted when consumed.
CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL DEFAULT '',
    ref        BYTEA,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies(expires_at);

-- Enrolment codes, stored as the SHA-256 of the normalized code.
CREATE TABLE enrolment_codes (
    hash       BYTEA PRIMARY KEY,
    pupil_id   TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    school_id  TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX enrolment_codes_pupil ON enrolment_codes(pupil_id);

-- Sessions of pupils and staff; id_hash is the SHA-256 (hex) of the
-- random id in the cookie.
CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    school_id     TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    idle_timeout  BIGINT NOT NULL DEFAULT 0,
    auth_time     BIGINT NOT NULL,
    amr           TEXT NOT NULL DEFAULT '',
    acr           TEXT NOT NULL DEFAULT '',
    user_verified BOOLEAN NOT NULL DEFAULT false,
    credential_id BYTEA,
    user_agent    TEXT NOT NULL DEFAULT '',
    revoked_at    BIGINT NOT NULL DEFAULT 0,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_subject ON sessions(subject_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Fixed-window rate counters shared by all nodes.
CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    count        BIGINT NOT NULL
);

-- +goose Down
DROP TABLE rate_counters;
DROP TABLE sessions;
DROP TABLE enrolment_codes;
DROP TABLE webauthn_ceremonies;
DROP TABLE credentials;
DROP TABLE pupil_handles;
