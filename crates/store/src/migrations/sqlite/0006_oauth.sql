-- Rapport schema 6 (SQLite): third-party apps authorised through SMART App Launch, the OAuth 2.0
-- authorization code flow (RFC 6749 §4.1) with PKCE (RFC 7636). Never edit a released migration:
-- add a new file. Times are milliseconds since the epoch, UTC.
--
-- An app gets no account of its own: a signed-in person authorises it, and the code is exchanged
-- for an ordinary API token (api_token) of that person, narrowed to the scopes they allowed and
-- living one hour. So the FHIR API, the authorisation point and the audit trail treat an app's
-- requests exactly like any other token's.

-- A registered app. `client_id` is random and public: it names the app in requests.
CREATE TABLE oauth_client (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,            -- shown to the person on the consent page
    -- JSON array of absolute URIs. A request must name one of them exactly (string equality,
    -- no prefix or pattern matching: RFC 6749 §3.1.2.2, RFC 9700 §4.1.3), so codes only ever go
    -- where the app's registration says.
    redirect_uris TEXT NOT NULL,
    -- SHA-256 of a confidential client's secret (a 256-bit random value, like api_token, so a
    -- plain hash is a safe stored form). NULL: a public client (a browser or mobile app that
    -- cannot keep a secret), which proves possession of the code with PKCE alone.
    secret_hash   BLOB,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 -- refuses new authorisations and token exchanges
) WITHOUT ROWID;

-- Authorization codes: single use, ten minutes. Only the SHA-256 of the code is stored, like
-- api_token stores token hashes, so a copy of this table redeems nothing.
CREATE TABLE oauth_code (
    code_hash      BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_client (client_id),
    user_id        INTEGER NOT NULL REFERENCES app_user (user_id),
    -- The resource scopes granted (space-separated SMART scopes), already narrowed to what the
    -- account's roles allow; launch/patient, openid and the like are not stored.
    scopes         TEXT NOT NULL,
    -- The token request must repeat it exactly (RFC 6749 §4.1.3).
    redirect_uri   TEXT NOT NULL,
    -- BASE64URL(SHA-256(code_verifier)): S256 only (RFC 7636 §4.2); `plain` is refused.
    code_challenge TEXT NOT NULL,
    -- The patient in context (a patient account's own record), returned with the token. Kept as
    -- the patient key, like every row that names a patient.
    patient_key    TEXT,
    expires_at     INTEGER NOT NULL,
    -- Set by the one exchange that takes the code, in its write transaction: a second exchange
    -- finds it set and is refused.
    used_at        INTEGER,
    -- The token the code was exchanged for: revoked if the code is presented again
    -- (RFC 6749 §4.1.2, §10.5), and when the app is disabled.
    token_id       INTEGER REFERENCES api_token (token_id)
);
CREATE INDEX oauth_code_by_client ON oauth_code (client_id);
-- Codes are deleted a day after they expire (on the next authorisation), by time.
CREATE INDEX oauth_code_by_expiry ON oauth_code (expires_at);
