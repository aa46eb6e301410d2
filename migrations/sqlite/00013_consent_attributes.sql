-- +goose Up
-- A consent records exactly which attributes of the platform it covers,
-- with the justification texts shown (JSON list of {name,
-- justification_da, justification_en}), and the attributes the guardian
-- refused while the rest of the grant stands (JSON list of names).
ALTER TABLE consents ADD COLUMN attributes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE consents ADD COLUMN refused TEXT NOT NULL DEFAULT '[]';

-- A platform's justification per attribute is in Danish and in English;
-- the old single text goes into both.
UPDATE platforms SET attributes = COALESCE((
    SELECT json_group_array(json_object(
        'name', json_extract(value, '$.name'),
        'justification_da', COALESCE(json_extract(value, '$.justification'), ''),
        'justification_en', COALESCE(json_extract(value, '$.justification'), '')))
    FROM json_each(platforms.attributes)), '[]');

-- Legacy decisions for every platform become one decision per platform.
INSERT INTO consents (id, pupil_id, guardian_id, platform_id, decision, decided_at, withdrawn_at, verified_subject)
    SELECT c.id || '-' || pf.id, c.pupil_id, c.guardian_id, pf.id, c.decision, c.decided_at, c.withdrawn_at, c.verified_subject
    FROM consents c CROSS JOIN platforms pf
    WHERE c.platform_id IS NULL AND c.guardian_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM consents d WHERE d.pupil_id = c.pupil_id AND d.guardian_id = c.guardian_id AND d.platform_id = pf.id);
DELETE FROM consents WHERE platform_id IS NULL;

-- Existing decisions are about the attributes the platform has now.
UPDATE consents SET attributes = COALESCE((SELECT p.attributes FROM platforms p WHERE p.id = consents.platform_id), '[]');

-- The platforms each school uses. Existing platforms stay available to
-- every existing school.
CREATE TABLE platform_activations (
    school_id    TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    platform_id  TEXT NOT NULL REFERENCES platforms(id) ON DELETE CASCADE,
    activated_by TEXT NOT NULL DEFAULT '',
    activated_at INTEGER NOT NULL,
    PRIMARY KEY (school_id, platform_id)
);
CREATE INDEX platform_activations_platform ON platform_activations(platform_id);
INSERT INTO platform_activations (school_id, platform_id, activated_by, activated_at)
    SELECT s.id, p.id, 'migration', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
    FROM schools s CROSS JOIN platforms p;

-- +goose Down
DROP TABLE platform_activations;
UPDATE platforms SET attributes = COALESCE((
    SELECT json_group_array(json_object('name', json_extract(value, '$.name'), 'justification', json_extract(value, '$.justification_da')))
    FROM json_each(platforms.attributes)), '[]');
ALTER TABLE consents DROP COLUMN refused;
ALTER TABLE consents DROP COLUMN attributes;
