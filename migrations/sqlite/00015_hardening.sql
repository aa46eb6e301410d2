-- +goose Up
-- Issue 15 (hardening).
-- Audit entries record the key that keyed their hash (HMAC-SHA256 under a
-- key derived from secrets.encryption_keys); '' marks a legacy entry with
-- a plain SHA-256, re-keyed by elevid at start-up.
ALTER TABLE audit_log ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
-- Enrolment codes are now stored as HMACs under a server-side key. A
-- plain hash cannot be re-keyed: unused codes issued before expire now
-- (the pupil gets "expired"; the teacher prints a new sheet).
UPDATE enrolment_codes SET expires_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000
    WHERE used_at = 0 AND expires_at > CAST(strftime('%s', 'now') AS INTEGER) * 1000000;
-- Staff recovery codes likewise: the plain hashes are removed; staff get
-- new codes by setting up their authenticator again.
UPDATE staff_auth SET recovery = NULL;
-- A plain ldap:// directory without StartTLS sends the bind password in
-- clear: it now needs an explicit "insecure" mark (shown in red). Sources
-- configured so before are marked, so that their syncs go on.
ALTER TABLE directory_sources ADD COLUMN insecure INTEGER NOT NULL DEFAULT 0;
UPDATE directory_sources SET insecure = 1 WHERE url LIKE 'ldap://%' AND start_tls = 0;

-- +goose Down
ALTER TABLE directory_sources DROP COLUMN insecure;
ALTER TABLE audit_log DROP COLUMN key_id;
