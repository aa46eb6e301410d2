-- +goose Up
-- A staff member's WebAuthn user handle: 64 random bytes, never derived
-- from the name or an id, and kept apart from the pupils' handles, so a
-- pupil's passkey can never sign in to the console (nor the reverse).
CREATE TABLE staff_handles (
    staff_id TEXT PRIMARY KEY REFERENCES staff(id) ON DELETE CASCADE,
    handle   BYTEA NOT NULL UNIQUE
);

-- Staff members' passkeys: public key material only.
CREATE TABLE staff_credentials (
    id                 BYTEA PRIMARY KEY,
    staff_id           TEXT NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
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
    last_used_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX staff_credentials_staff ON staff_credentials(staff_id);

-- +goose Down
DROP TABLE staff_credentials;
DROP TABLE staff_handles;
