-- +goose Up
-- Authorization requests and codes are sealed values that travel with the
-- browser and the platform (package idp), not rows: a login writes no
-- request row. A code's single use is the unique code_id of the one access
-- token issued from it (a second redemption inserts nothing). Requests in
-- flight at the upgrade are lost; the pupil starts the sign-in again.
DROP TABLE oidc_auth_requests;
ALTER TABLE oidc_tokens ADD COLUMN code_id TEXT;
CREATE UNIQUE INDEX oidc_tokens_code ON oidc_tokens(code_id) WHERE code_id IS NOT NULL;
-- Tokens of a grant are found by family_id; nothing looks them up by
-- auth_request_id any more, so an insert maintains one index fewer.
DROP INDEX oidc_tokens_auth_request;

-- +goose Down
CREATE INDEX oidc_tokens_auth_request ON oidc_tokens(auth_request_id);
DROP INDEX oidc_tokens_code;
ALTER TABLE oidc_tokens DROP COLUMN code_id;
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
CREATE UNIQUE INDEX oidc_auth_requests_code ON oidc_auth_requests(code_hash) WHERE code_hash IS NOT NULL;
CREATE INDEX oidc_auth_requests_expiry ON oidc_auth_requests(expires_at);
