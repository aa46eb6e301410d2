-- +goose Up
-- Upstream (OpenID Connect) verifications of guardians started from a
-- consent link: single-use state with nonce and PKCE verifier, then the
-- verified subject until expires_at.
CREATE TABLE guardian_verifications (
    state_hash  BLOB PRIMARY KEY,
    link_hash   BLOB NOT NULL REFERENCES guardian_links(hash) ON DELETE CASCADE,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX guardian_verifications_link ON guardian_verifications(link_hash);

-- +goose Down
DROP TABLE guardian_verifications;
