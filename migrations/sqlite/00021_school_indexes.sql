-- +goose Up
-- Guardians and classes are listed by school (every sync run, the console).
-- Their only school_id indexes were the partial unique ones on external
-- ids, which a plain school_id = ? cannot use: each listing scanned the
-- whole table, so a sync of fifty schools read every school's rows fifty
-- times.
CREATE INDEX guardians_school ON guardians(school_id);
CREATE INDEX classes_school ON classes(school_id);

-- +goose Down
DROP INDEX guardians_school;
DROP INDEX classes_school;
