-- +goose Up
-- A one-time (invite or reset) staff password: while password_expires is
-- set, it must be changed at the first sign-in and is refused after it.
ALTER TABLE staff ADD COLUMN password_expires BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE staff DROP COLUMN password_expires;
