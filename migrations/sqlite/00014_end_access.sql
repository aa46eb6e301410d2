-- +goose Up
-- One queue of logout notices for both protocols: OIDC back-channel
-- logout tokens and SAML LogoutRequests over SOAP. A notice names the
-- login session it ends (session_ref), and for SAML the NameID format and
-- the SessionIndex given to the SP.
ALTER TABLE logout_notices ADD COLUMN protocol TEXT NOT NULL DEFAULT 'oidc';
ALTER TABLE logout_notices ADD COLUMN session_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE logout_notices ADD COLUMN name_id_format TEXT NOT NULL DEFAULT '';
ALTER TABLE logout_notices ADD COLUMN session_index TEXT NOT NULL DEFAULT '';
CREATE INDEX logout_notices_protocol_due ON logout_notices(protocol, next_at);

-- The SPs holding a session, found per pupil when access ends.
CREATE INDEX saml_participants_pupil ON saml_participants(pupil_id, platform_id);

-- Pupil sessions not yet revoked, for the session expiry job.
CREATE INDEX sessions_unended ON sessions(expires_at) WHERE revoked_at = 0 AND kind = 'pupil';

-- +goose Down
DROP INDEX sessions_unended;
DROP INDEX saml_participants_pupil;
DROP INDEX logout_notices_protocol_due;
ALTER TABLE logout_notices DROP COLUMN session_index;
ALTER TABLE logout_notices DROP COLUMN name_id_format;
ALTER TABLE logout_notices DROP COLUMN session_ref;
ALTER TABLE logout_notices DROP COLUMN protocol;
