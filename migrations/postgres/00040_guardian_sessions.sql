-- +goose Up
-- Guardians' sessions join the one sessions table as kind 'guardian'
-- (one session mechanism for pupils, staff and guardians). A guardian
-- session had no idle timeout; its school is its guardian's.
INSERT INTO sessions (id_hash, kind, subject_id, school_id, created_at, last_seen_at, expires_at, idle_timeout, auth_time)
SELECT s.id_hash, 'guardian', s.guardian_id, g.school_id, s.created_at, s.created_at, s.expires_at, 0, s.created_at
FROM guardian_sessions s JOIN guardians g ON g.id = s.guardian_id;
DROP TABLE guardian_sessions;

-- +goose Down
CREATE TABLE guardian_sessions (
    id_hash     TEXT PRIMARY KEY,
    guardian_id TEXT NOT NULL REFERENCES guardians(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
-- Ended guardian sessions were deleted rows before: only unended ones
-- of existing guardians go back.
INSERT INTO guardian_sessions (id_hash, guardian_id, created_at, expires_at)
SELECT s.id_hash, s.subject_id, s.created_at, s.expires_at
FROM sessions s JOIN guardians g ON g.id = s.subject_id
WHERE s.kind = 'guardian' AND s.revoked_at = 0;
DELETE FROM sessions WHERE kind = 'guardian';
