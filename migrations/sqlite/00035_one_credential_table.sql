-- +goose Up
-- One table for the passkeys of pupils and staff: owner_kind says whose,
-- and the owner's id stands in the column of that kind (pupil_id or
-- staff_id, the other NULL), so that each kind keeps its foreign key. A
-- staff member's passkey has no school. The staff members' passkeys move
-- over from staff_credentials, which goes.
CREATE TABLE credentials_owned (
    id                 BLOB PRIMARY KEY,
    owner_kind         TEXT NOT NULL,
    pupil_id           TEXT REFERENCES pupils(id) ON DELETE CASCADE,
    staff_id           TEXT REFERENCES staff(id) ON DELETE CASCADE,
    school_id          TEXT REFERENCES schools(id) ON DELETE CASCADE,
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
    revoked_at         INTEGER NOT NULL DEFAULT 0,
    CHECK ((owner_kind = 'pupil' AND pupil_id IS NOT NULL AND staff_id IS NULL AND school_id IS NOT NULL)
        OR (owner_kind = 'staff' AND staff_id IS NOT NULL AND pupil_id IS NULL AND school_id IS NULL))
);
INSERT INTO credentials_owned (id, owner_kind, pupil_id, school_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at, revoked_at)
    SELECT id, 'pupil', pupil_id, school_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at, revoked_at
    FROM credentials;
INSERT INTO credentials_owned (id, owner_kind, staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at)
    SELECT id, 'staff', staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at
    FROM staff_credentials;
DROP TABLE credentials;
DROP TABLE staff_credentials;
ALTER TABLE credentials_owned RENAME TO credentials;
CREATE INDEX credentials_pupil ON credentials(pupil_id);
CREATE INDEX credentials_staff ON credentials(staff_id);

-- +goose Down
CREATE TABLE credentials_pupils (
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
INSERT INTO credentials_pupils (id, pupil_id, school_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at, revoked_at)
    SELECT id, pupil_id, school_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at, revoked_at
    FROM credentials WHERE owner_kind = 'pupil';
INSERT INTO staff_credentials (id, staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at)
    SELECT id, staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at
    FROM credentials WHERE owner_kind = 'staff';
DROP TABLE credentials;
ALTER TABLE credentials_pupils RENAME TO credentials;
CREATE INDEX credentials_pupil ON credentials(pupil_id);
CREATE INDEX staff_credentials_staff ON staff_credentials(staff_id);
