-- Rapport schema 6 (PostgreSQL): third-party apps authorised through SMART App Launch, the OAuth
-- 2.0 authorization code flow (RFC 6749 §4.1) with PKCE (RFC 7636). The twin of
-- sqlite/0006_oauth.sql; see there for each column's purpose. Never edit a released migration:
-- add a new file. Times are milliseconds since the epoch, UTC.
--
-- Distribution: both tables are small (a few apps; codes live ten minutes and are deleted a day
-- after) and are read by key, so they stay local tables on the coordinator, like app_user.

CREATE TABLE oauth_client (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,            -- JSON array; requests must match one exactly
    secret_hash   BYTEA,                    -- SHA-256 of a confidential client's secret; NULL: public
    created_at    BIGINT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE oauth_code (
    code_hash      BYTEA PRIMARY KEY,       -- SHA-256 of the code, never the code
    client_id      TEXT NOT NULL REFERENCES oauth_client (client_id),
    user_id        BIGINT NOT NULL REFERENCES app_user (user_id),
    scopes         TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,           -- S256 only
    patient_key    TEXT,
    expires_at     BIGINT NOT NULL,
    -- The exchange sets it with `UPDATE … WHERE used_at IS NULL`: of two concurrent exchanges,
    -- the second waits for the first and then finds the row changed and updates nothing.
    used_at        BIGINT,
    token_id       BIGINT REFERENCES api_token (token_id)
);
CREATE INDEX oauth_code_by_client ON oauth_code (client_id);
CREATE INDEX oauth_code_by_expiry ON oauth_code (expires_at);
