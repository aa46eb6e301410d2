-- +goose Up
-- One LDAP directory source per school; the bind password is sealed.
CREATE TABLE directory_sources (
    school_id            TEXT PRIMARY KEY REFERENCES schools(id) ON DELETE CASCADE,
    url                  TEXT NOT NULL,
    start_tls            INTEGER NOT NULL DEFAULT 0,
    ca_pem               TEXT NOT NULL DEFAULT '',
    bind_dn              TEXT NOT NULL DEFAULT '',
    bind_password        BLOB,
    pupil_base           TEXT NOT NULL,
    pupil_filter         TEXT NOT NULL DEFAULT '',
    staff_base           TEXT NOT NULL DEFAULT '',
    staff_filter         TEXT NOT NULL DEFAULT '',
    class_base           TEXT NOT NULL DEFAULT '',
    class_filter         TEXT NOT NULL DEFAULT '',
    guardian_base        TEXT NOT NULL DEFAULT '',
    guardian_filter      TEXT NOT NULL DEFAULT '',
    page_size            INTEGER NOT NULL,
    preset               TEXT NOT NULL,
    attributes           TEXT NOT NULL DEFAULT '{}',
    interval_s           INTEGER NOT NULL DEFAULT 0,
    full_interval_s      INTEGER NOT NULL DEFAULT 0,
    grace_s              INTEGER NOT NULL,
    max_delete_percent   INTEGER NOT NULL,
    max_deletions        INTEGER NOT NULL,
    last_full_run        INTEGER NOT NULL DEFAULT 0,
    last_incremental_run INTEGER NOT NULL DEFAULT 0,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE sync_runs (
    id               TEXT PRIMARY KEY,
    school_id        TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER NOT NULL DEFAULT 0,
    mode             TEXT NOT NULL,
    dry_run          INTEGER NOT NULL DEFAULT 0,
    forced           INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    counts           TEXT NOT NULL DEFAULT '{}',
    entries          INTEGER NOT NULL DEFAULT 0,
    pages            INTEGER NOT NULL DEFAULT 0,
    warnings         TEXT NOT NULL DEFAULT '[]',
    warnings_dropped INTEGER NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sync_runs_school ON sync_runs(school_id, started_at);

-- +goose Down
DROP TABLE sync_runs;
DROP TABLE directory_sources;
