-- +goose Up
-- Back-channel logouts a platform did not take at once: retried with
-- backoff by any node (leases as in the mail outbox) until they are
-- delivered (the row goes) or expire (pruned with the other OIDC state).
CREATE TABLE logout_notices (
    id          TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL REFERENCES platforms(id) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    sid         TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    next_at     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX logout_notices_due ON logout_notices(next_at);
CREATE INDEX logout_notices_expiry ON logout_notices(expires_at);

-- +goose Down
DROP TABLE logout_notices;
