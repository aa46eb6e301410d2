-- +goose Up
CREATE TABLE schools (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    domain     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE classes (
    id          TEXT PRIMARY KEY,
    school_id   TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX classes_external ON classes(school_id, external_id) WHERE external_id <> '';

CREATE TABLE pupils (
    id             TEXT PRIMARY KEY,
    school_id      TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    external_id    TEXT NOT NULL DEFAULT '',
    given_name     TEXT NOT NULL,
    family_name    TEXT NOT NULL DEFAULT '',
    birth_date     TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX pupils_external ON pupils(school_id, external_id) WHERE external_id <> '';
CREATE INDEX pupils_school_status ON pupils(school_id, status);

CREATE TABLE guardians (
    id          TEXT PRIMARY KEY,
    school_id   TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL DEFAULT '',
    email       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX guardians_external ON guardians(school_id, external_id) WHERE external_id <> '';

CREATE TABLE pupil_classes (
    pupil_id TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    PRIMARY KEY (pupil_id, class_id)
);
CREATE INDEX pupil_classes_class ON pupil_classes(class_id);

CREATE TABLE pupil_guardians (
    pupil_id    TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    guardian_id TEXT NOT NULL REFERENCES guardians(id) ON DELETE CASCADE,
    PRIMARY KEY (pupil_id, guardian_id)
);
CREATE INDEX pupil_guardians_guardian ON pupil_guardians(guardian_id);

CREATE TABLE staff (
    id            TEXT PRIMARY KEY,
    school_id     TEXT REFERENCES schools(id) ON DELETE CASCADE,
    external_id   TEXT NOT NULL DEFAULT '',
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '',
    totp_secret   BLOB,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE INDEX staff_school ON staff(school_id);

CREATE TABLE staff_classes (
    staff_id TEXT NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, class_id)
);

CREATE TABLE platforms (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    protocol            TEXT NOT NULL,
    client_id           TEXT NOT NULL UNIQUE,
    settings            TEXT NOT NULL DEFAULT '{}',
    attributes          TEXT NOT NULL DEFAULT '[]',
    subject_type        TEXT NOT NULL,
    subject_type_reason TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- Consent decisions; the consent flow adds its requests and links later.
CREATE TABLE consents (
    id           TEXT PRIMARY KEY,
    pupil_id     TEXT NOT NULL REFERENCES pupils(id) ON DELETE CASCADE,
    guardian_id  TEXT REFERENCES guardians(id) ON DELETE SET NULL,
    platform_id  TEXT REFERENCES platforms(id) ON DELETE CASCADE,
    decision     TEXT NOT NULL,
    decided_at   INTEGER NOT NULL,
    withdrawn_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX consents_pupil ON consents(pupil_id);

-- The audit log refers to people by id only and has no foreign keys, so
-- that erasing a pupil leaves the chain intact.
CREATE TABLE audit_log (
    school_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    detail     TEXT NOT NULL,
    remote     TEXT NOT NULL,
    prev_hash  BLOB,
    hash       BLOB NOT NULL,
    PRIMARY KEY (school_id, seq)
);
CREATE INDEX audit_subject ON audit_log(subject_id);

CREATE TABLE audit_heads (
    school_id TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    hash      BLOB
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE locks;
DROP TABLE settings;
DROP TABLE audit_heads;
DROP TABLE audit_log;
DROP TABLE consents;
DROP TABLE platforms;
DROP TABLE staff_classes;
DROP TABLE staff;
DROP TABLE pupil_guardians;
DROP TABLE pupil_classes;
DROP TABLE guardians;
DROP TABLE pupils;
DROP TABLE classes;
DROP TABLE schools;
