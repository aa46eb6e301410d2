-- +goose Up
-- The first characters of an enrolment code locate it without revealing
-- it, so that wrong attempts can be counted against the code they aim at
-- (and its class) instead of only against the client's address.
ALTER TABLE enrolment_codes ADD COLUMN locator TEXT NOT NULL DEFAULT '';
CREATE INDEX enrolment_codes_locator ON enrolment_codes(locator) WHERE locator <> '';

-- +goose Down
DROP INDEX enrolment_codes_locator;
ALTER TABLE enrolment_codes DROP COLUMN locator;
