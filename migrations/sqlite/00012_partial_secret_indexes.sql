-- +goose Up
-- Access tokens carry no hash and auth requests have no code until the
-- login completes: index only the rows that have one, so that an insert
-- (every login makes an auth request and an access token) maintains one
-- index fewer. Lookups by hash (hash = $1) imply IS NOT NULL and use them.
DROP INDEX oidc_tokens_hash;
CREATE UNIQUE INDEX oidc_tokens_hash ON oidc_tokens(hash) WHERE hash IS NOT NULL;
DROP INDEX oidc_auth_requests_code;
CREATE UNIQUE INDEX oidc_auth_requests_code ON oidc_auth_requests(code_hash) WHERE code_hash IS NOT NULL;

-- +goose Down
DROP INDEX oidc_tokens_hash;
CREATE UNIQUE INDEX oidc_tokens_hash ON oidc_tokens(hash);
DROP INDEX oidc_auth_requests_code;
CREATE UNIQUE INDEX oidc_auth_requests_code ON oidc_auth_requests(code_hash);
