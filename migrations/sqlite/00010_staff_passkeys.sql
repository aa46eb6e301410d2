-- +goose Up
-- A staff member's WebAuthn user handle: 64 random bytes, never derived
-- from the name or an id, and kept apart from the pupils' handles, so a
-- pupil's passkey can never sign in to the console (nor the reverse).
CREATE TABLE staff_handles (
    staff_id TEXT PRIMARY KEY REFERENCES staff(id) ON DELETE CASCADE,
    handle   BLOB NOT NULL UNIQUE
);

-- Staff members' passkeys: public key material only.
CREATE TABLE staff_credentials (
    id                 BLOB PRIMARY KEY,
    staff_id           TEXT NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
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
    last_used_at       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX staff_credentials_staff ON staff_credentials(staff_id);

-- +goose Down
DROP TABLE staff_credentials;
DROP TABLE staff_handles;
