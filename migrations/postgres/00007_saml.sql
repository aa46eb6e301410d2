-- +goose Up
-- Accepted SAML message ids (AuthnRequest, LogoutRequest), for replay
-- detection until they expire.
CREATE TABLE saml_message_ids (
    issuer     TEXT NOT NULL,
    id         TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, id)
);
CREATE INDEX saml_message_ids_expiry ON saml_message_ids(expires_at);

-- Verified SAML messages waiting for an answer (single-use, expiring);
-- id is the SHA-256 of the bearer token.
CREATE TABLE saml_flows (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX saml_flows_expiry ON saml_flows(expires_at);

-- IdP signing keys; the private key is sealed.
CREATE TABLE saml_keys (
    id         TEXT PRIMARY KEY,
    sealed_key BYTEA NOT NULL,
    cert_der   BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT NOT NULL DEFAULT 0
);

-- Platforms that received an assertion within a login session, for
-- single logout.
CREATE TABLE saml_participants (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL,
    pupil_id       TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    platform_id    TEXT NOT NULL REFERENCES platforms(id) ON DELETE CASCADE,
    name_id        TEXT NOT NULL,
    name_id_format TEXT NOT NULL,
    session_index  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX saml_participants_session ON saml_participants(session_id);
CREATE INDEX saml_participants_name_id ON saml_participants(platform_id, name_id);

-- +goose Down
DROP TABLE saml_participants;
DROP TABLE saml_keys;
DROP TABLE saml_flows;
DROP TABLE saml_message_ids;
