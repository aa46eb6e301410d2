-- +goose Up
-- The access log: staff reads and changes of pupil data. Not hash-chained
-- (the audit log is): entries are deleted when their retention ends.
CREATE TABLE access_log (
    id         TEXT PRIMARY KEY,
    school_id  TEXT NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
    pupil_id   TEXT NOT NULL DEFAULT '',
    class_id   TEXT NOT NULL DEFAULT '',
    staff_id   TEXT NOT NULL,
    staff_name TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL,
    action     TEXT NOT NULL,
    purpose    TEXT NOT NULL DEFAULT '',
    time       BIGINT NOT NULL
);
CREATE INDEX access_log_pupil ON access_log(pupil_id, time);
CREATE INDEX access_log_class ON access_log(class_id, time);
CREATE INDEX access_log_school ON access_log(school_id, time);
CREATE INDEX access_log_time ON access_log(time);

-- +goose Down
DROP TABLE access_log;
