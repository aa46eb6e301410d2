-- +goose Up
-- Roster sync for a whole municipality: warnings counted by kind, and a
-- school-code attribute so that one directory source serves many schools.
ALTER TABLE sync_runs ADD COLUMN warning_counts TEXT NOT NULL DEFAULT '{}';
ALTER TABLE directory_sources ADD COLUMN school_attr TEXT NOT NULL DEFAULT '';
-- Finding a school's runs still marked running (after a crash) reads few rows.
CREATE INDEX sync_runs_running ON sync_runs(school_id) WHERE status = 'running';

-- +goose Down
DROP INDEX sync_runs_running;
ALTER TABLE directory_sources DROP COLUMN school_attr;
ALTER TABLE sync_runs DROP COLUMN warning_counts;
