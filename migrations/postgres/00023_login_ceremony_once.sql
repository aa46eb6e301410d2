-- +goose Up
-- A pupil's passkey login ceremony is a sealed value the browser holds,
-- not a row: the session it creates names it (a hash of its challenge),
-- and the unique index makes one ceremony yield one session.
ALTER TABLE sessions ADD COLUMN ceremony TEXT;
CREATE UNIQUE INDEX sessions_ceremony ON sessions(ceremony) WHERE ceremony IS NOT NULL;

-- +goose Down
DROP INDEX sessions_ceremony;
ALTER TABLE sessions DROP COLUMN ceremony;
