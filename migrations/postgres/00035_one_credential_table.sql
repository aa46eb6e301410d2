-- +goose Up
-- One table for the passkeys of pupils and staff: owner_kind says whose,
-- and the owner's id stands in the column of that kind (pupil_id or
-- staff_id, the other NULL), so that each kind keeps its foreign key. A
-- staff member's passkey has no school. The staff members' passkeys move
-- over from staff_credentials, which goes.
ALTER TABLE credentials ADD COLUMN owner_kind TEXT NOT NULL DEFAULT 'pupil';
ALTER TABLE credentials ALTER COLUMN owner_kind DROP DEFAULT;
ALTER TABLE credentials ADD COLUMN staff_id TEXT REFERENCES staff(id) ON DELETE CASCADE;
ALTER TABLE credentials ALTER COLUMN pupil_id DROP NOT NULL;
ALTER TABLE credentials ALTER COLUMN school_id DROP NOT NULL;
ALTER TABLE credentials ADD CONSTRAINT credentials_owner CHECK (
    (owner_kind = 'pupil' AND pupil_id IS NOT NULL AND staff_id IS NULL AND school_id IS NOT NULL)
    OR (owner_kind = 'staff' AND staff_id IS NOT NULL AND pupil_id IS NULL AND school_id IS NULL));
INSERT INTO credentials (id, owner_kind, staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at)
    SELECT id, 'staff', staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at
    FROM staff_credentials;
DROP TABLE staff_credentials;
CREATE INDEX credentials_staff ON credentials(staff_id);

-- +goose Down
-- staff_credentials comes back as the credentials' columns less the
-- owner kind, the pupil, the school and the revocation.
CREATE TABLE staff_credentials (LIKE credentials INCLUDING DEFAULTS);
ALTER TABLE staff_credentials DROP COLUMN owner_kind, DROP COLUMN pupil_id, DROP COLUMN school_id, DROP COLUMN revoked_at,
    ALTER COLUMN staff_id SET NOT NULL, ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (staff_id) REFERENCES staff(id) ON DELETE CASCADE;
CREATE INDEX staff_credentials_staff ON staff_credentials(staff_id);
INSERT INTO staff_credentials (id, staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at)
    SELECT id, staff_id, public_key, attestation_format, aaguid, sign_count,
        backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at
    FROM credentials WHERE owner_kind = 'staff';
DELETE FROM credentials WHERE owner_kind = 'staff';
DROP INDEX credentials_staff;
ALTER TABLE credentials DROP CONSTRAINT credentials_owner;
ALTER TABLE credentials DROP COLUMN staff_id;
ALTER TABLE credentials DROP COLUMN owner_kind;
ALTER TABLE credentials ALTER COLUMN pupil_id SET NOT NULL;
ALTER TABLE credentials ALTER COLUMN school_id SET NOT NULL;
