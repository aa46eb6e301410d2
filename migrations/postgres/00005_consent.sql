-- +goose Up
-- A pupil's enrolment flow (one per pupil, restarted in place).
CREATE TABLE enrolments (
    pupil_id     TEXT PRIMARY KEY REFERENCES pupils(id) ON DELETE CASCADE,
    school_id    TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    state        TEXT NOT NULL,
    consent_rule TEXT NOT NULL,
    age          INTEGER NOT NULL DEFAULT 0,
    flagged      BOOLEAN NOT NULL DEFAULT false,
    started_by   TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX enrolments_school ON enrolments(school_id, state);

-- One current decision per guardian, pupil and platform.
ALTER TABLE consents ADD COLUMN verified_subject TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX consents_current ON consents(pupil_id, guardian_id, platform_id);

-- Guardians' magic links, stored as the SHA-256 of the token.
CREATE TABLE guardian_links (
    hash        BYTEA PRIMARY KEY,
    kind        TEXT NOT NULL,
    guardian_id TEXT NOT NULL REFERENCES guardians(id) ON DELETE CASCADE,
    pupil_id    TEXT REFERENCES pupils(id) ON DELETE CASCADE,
    school_id   TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX guardian_links_guardian ON guardian_links(guardian_id);

-- Guardians' browser sessions after a magic link; id_hash is the
-- SHA-256 (hex) of the cookie value.
CREATE TABLE guardian_sessions (
    id_hash     TEXT PRIMARY KEY,
    guardian_id TEXT NOT NULL REFERENCES guardians(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- The transactional mail outbox.
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    school_id   TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL DEFAULT '',
    body_html   TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    next_at     BIGINT NOT NULL,
    sent_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox(status, next_at);

-- +goose Down
DROP TABLE outbox;
DROP TABLE guardian_sessions;
DROP TABLE guardian_links;
DROP INDEX consents_current;
ALTER TABLE consents DROP COLUMN verified_subject;
DROP TABLE enrolments;
