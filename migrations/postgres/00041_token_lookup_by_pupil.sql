-- +goose Up
-- A token's family and login session are looked up only together with
-- its pupil (the store refuses a filter without one), which the
-- (pupil_id, platform_id) index finds: two fewer index entries to write
-- for every token issued and to delete for every token purged.
DROP INDEX oidc_tokens_family;
DROP INDEX oidc_tokens_session;

-- +goose Down
CREATE INDEX oidc_tokens_family ON oidc_tokens(family_id);
CREATE INDEX oidc_tokens_session ON oidc_tokens(session_ref);
