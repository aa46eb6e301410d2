-- +goose Up
-- The retention job finds what is due through an index on every table
-- it purges, so a call that finds nothing due costs a few index probes,
-- not a scan (100,000 enrolments, a million release rows), and a backlog
-- goes in batches that do not re-read the table each time. Partial
-- indexes hold only the rows that can become due (used codes and links,
-- revoked sessions, audit entries that still hold a client address,
-- removed pupils), so sign-ins write no entry in them.
CREATE INDEX releases_time ON releases(time);
CREATE INDEX enrolments_ended ON enrolments(state, updated_at);
CREATE INDEX enrolment_codes_expiry ON enrolment_codes(expires_at);
CREATE INDEX enrolment_codes_used ON enrolment_codes(used_at) WHERE used_at > 0;
CREATE INDEX guardian_links_expiry ON guardian_links(expires_at);
CREATE INDEX guardian_links_used ON guardian_links(used_at) WHERE used_at > 0;
CREATE INDEX outbox_done ON outbox(status, created_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at > 0;
CREATE INDEX rate_counters_window ON rate_counters(window_end);
CREATE INDEX saml_participants_expiry ON saml_participants(expires_at);
CREATE INDEX audit_log_remote ON audit_log(time) WHERE remote <> '' AND key_id <> '';
CREATE INDEX pupils_removed ON pupils(updated_at) WHERE status = 'removed';

-- +goose Down
DROP INDEX releases_time;
DROP INDEX enrolments_ended;
DROP INDEX enrolment_codes_expiry;
DROP INDEX enrolment_codes_used;
DROP INDEX guardian_links_expiry;
DROP INDEX guardian_links_used;
DROP INDEX outbox_done;
DROP INDEX sessions_revoked;
DROP INDEX rate_counters_window;
DROP INDEX saml_participants_expiry;
DROP INDEX audit_log_remote;
DROP INDEX pupils_removed;
