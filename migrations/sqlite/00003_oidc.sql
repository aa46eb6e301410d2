-- +goose Up
-- OpenID provider signing keys; the private key is sealed. One sequence
-- of generations per algorithm: the unique pair makes rotation race-free
-- across nodes (the second node to insert a generation loses).
CREATE TABLE oidc_signing_keys (
    id         TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL,
    generation INTEGER NOT NULL,
    sealed_key BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    UNIQUE (algorithm, generation)
);

-- Authorization requests from /authorize until their code is redeemed.
CREATE TABLE oidc_auth_requests (
    id              TEXT PRIMARY KEY,
    platform_id     TEXT NOT NULL REFERENCES platforms(id) ON DELETE CASCADE,
    params          TEXT NOT NULL,
    pupil_id        TEXT REFERENCES pupils(id) ON DELETE CASCADE,
    session_ref     TEXT NOT NULL DEFAULT '',
    auth_time       INTEGER NOT NULL DEFAULT 0,
    amr             TEXT NOT NULL DEFAULT '',
    acr             TEXT NOT NULL DEFAULT '',
    code_hash       BLOB,
    code_expires_at INTEGER NOT NULL DEFAULT 0,
    consumed_at     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX oidc_auth_requests_code ON oidc_auth_requests(code_hash);
CREATE INDEX oidc_auth_requests_expiry ON oidc_auth_requests(expires_at);

-- Access and refresh tokens. Refresh tokens are found by the hash of the
-- token; access tokens carry their sealed id.
CREATE TABLE oidc_tokens (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    hash            BLOB,
    platform_id     TEXT NOT NULL REFERENCES platforms(id) ON DELETE CASCADE,
    pupil_id        TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    session_ref     TEXT NOT NULL DEFAULT '',
    auth_request_id TEXT NOT NULL DEFAULT '',
    family_id       TEXT NOT NULL DEFAULT '',
    subject         TEXT NOT NULL,
    scopes          TEXT NOT NULL DEFAULT '',
    auth_time       INTEGER NOT NULL DEFAULT 0,
    amr             TEXT NOT NULL DEFAULT '',
    acr             TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER NOT NULL DEFAULT 0,
    revoked_at      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX oidc_tokens_hash ON oidc_tokens(hash);
CREATE INDEX oidc_tokens_pupil ON oidc_tokens(pupil_id, platform_id);
CREATE INDEX oidc_tokens_auth_request ON oidc_tokens(auth_request_id);
CREATE INDEX oidc_tokens_family ON oidc_tokens(family_id);
CREATE INDEX oidc_tokens_session ON oidc_tokens(session_ref);
CREATE INDEX oidc_tokens_subject ON oidc_tokens(platform_id, subject);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens(expires_at);

-- The release log: what each platform received about a pupil, and when.
-- The platform's name is copied so entries outlive the platform.
CREATE TABLE releases (
    id            TEXT PRIMARY KEY,
    pupil_id      TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    platform_id   TEXT NOT NULL,
    platform_name TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    via           TEXT NOT NULL,
    claims        TEXT NOT NULL,
    time          INTEGER NOT NULL
);
CREATE INDEX releases_pupil ON releases(pupil_id, time);

-- +goose Down
DROP TABLE releases;
DROP TABLE oidc_tokens;
DROP TABLE oidc_auth_requests;
DROP TABLE oidc_signing_keys;
