-- Rapport schema 2 (SQLite): accounts, sessions, API tokens, care relationships that grant
-- access, break-the-glass, and the audit trail. Never edit a released migration: add a new file.
-- Times are milliseconds since the epoch, UTC.

-- A person (or integration) who signs in. `roles` is a comma-separated list of admin, clinician,
-- coordinator, patient, caregiver.
CREATE TABLE app_user (
    user_id         INTEGER PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,   -- trimmed and lower-cased: the sign-in name
    name            TEXT NOT NULL,
    roles           TEXT NOT NULL,
    patient_id      TEXT,                   -- a patient account's own Patient
    practitioner_id TEXT,                   -- the staff member's Practitioner (CareTeam membership)
    password_hash   TEXT,                   -- Argon2id PHC string; NULL: cannot sign in
    disabled        INTEGER NOT NULL DEFAULT 0,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0, -- failures in a row since the last success
    locked_until    INTEGER,                -- temporary lockout after repeated failures
    created_at      INTEGER NOT NULL,
    password_changed_at INTEGER
);

-- Browser sessions. Only the SHA-256 of the cookie's secret is stored, so a copy of this table
-- opens no session.
CREATE TABLE user_session (
    token_hash   BLOB PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES app_user (user_id),
    csrf_token   TEXT NOT NULL,             -- synchroniser token for this session's forms
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER,
    source       TEXT NOT NULL              -- address signed in from
);
CREATE INDEX user_session_by_user ON user_session (user_id);

-- API tokens for integrations: SMART scopes, an expiry, revocable; stored hashed.
CREATE TABLE api_token (
    token_id     INTEGER PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES app_user (user_id),
    scopes       TEXT NOT NULL,             -- space-separated
    label        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_token_by_user ON api_token (user_id);

-- A staff member assigned to a patient's panel (besides FHIR CareTeam membership). Keyed by
-- patient first, like every table of patient data.
CREATE TABLE care_assignment (
    patient_key  TEXT NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES app_user (user_id),
    assigned_at  INTEGER NOT NULL,
    assigned_by  TEXT NOT NULL,
    ended_at     INTEGER,
    PRIMARY KEY (patient_key, user_id)
) WITHOUT ROWID;
CREATE INDEX care_assignment_by_user ON care_assignment (user_id);

-- What a patient let a caregiver see (and whether to add to the record).
CREATE TABLE caregiver_grant (
    patient_key  TEXT NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES app_user (user_id),
    can_write    INTEGER NOT NULL DEFAULT 0,
    granted_at   INTEGER NOT NULL,
    granted_by   TEXT NOT NULL,
    revoked_at   INTEGER,
    PRIMARY KEY (patient_key, user_id)
) WITHOUT ROWID;
CREATE INDEX caregiver_grant_by_user ON caregiver_grant (user_id);

-- Emergency access outside the care team: a reason, an expiry, and a review by an admin.
CREATE TABLE break_glass (
    break_glass_id INTEGER PRIMARY KEY,
    patient_key  TEXT NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES app_user (user_id),
    reason       TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    reviewed_by  INTEGER REFERENCES app_user (user_id),
    reviewed_at  INTEGER,
    review_note  TEXT
);
CREATE INDEX break_glass_by_user ON break_glass (user_id, patient_key);

-- The audit trail: append-only and hash-chained (see rapport-access::audit). `hash` covers
-- `prev_hash`, `seq` and every other column, so `rapport audit verify` detects any change made
-- behind the application's back. The triggers refuse updates and deletes outright.
CREATE TABLE audit_event (
    seq           INTEGER PRIMARY KEY,
    recorded_at   INTEGER NOT NULL,
    actor_user_id INTEGER,
    actor         TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    patient_key   TEXT,
    entities      TEXT NOT NULL,            -- JSON array of references
    source        TEXT NOT NULL,
    basis         TEXT NOT NULL,
    purpose       TEXT,
    flagged       INTEGER NOT NULL,
    detail        TEXT NOT NULL,
    prev_hash     BLOB NOT NULL,
    hash          BLOB NOT NULL
);
CREATE INDEX audit_event_by_patient ON audit_event (patient_key, seq) WHERE patient_key IS NOT NULL;
CREATE INDEX audit_event_by_actor ON audit_event (actor_user_id, seq);
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
