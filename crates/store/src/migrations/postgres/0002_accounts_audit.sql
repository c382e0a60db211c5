-- Rapport schema 2 (PostgreSQL): accounts, sessions, API tokens, care relationships that grant
-- access, break-the-glass, and the audit trail. The twin of sqlite/0002_accounts_audit.sql; see
-- there for each table's purpose. Never edit a released migration: add a new file.
-- Times are milliseconds since the epoch, UTC.
--
-- Distribution: care_assignment and caregiver_grant are keyed by patient_key and can be
-- distributed with the resource tables; the account tables and the audit chain are small or
-- sequential and stay reference/local tables on the coordinator.

CREATE TABLE app_user (
    user_id         BIGSERIAL PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    roles           TEXT NOT NULL,
    patient_id      TEXT,
    practitioner_id TEXT,
    password_hash   TEXT,
    disabled        BOOLEAN NOT NULL DEFAULT false,
    failed_sign_ins BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    password_changed_at BIGINT
);

CREATE TABLE user_session (
    token_hash   BYTEA PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES app_user (user_id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    revoked_at   BIGINT,
    source       TEXT NOT NULL
);
CREATE INDEX user_session_by_user ON user_session (user_id);

CREATE TABLE api_token (
    token_id     BIGSERIAL PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE,
    user_id      BIGINT NOT NULL REFERENCES app_user (user_id),
    scopes       TEXT NOT NULL,
    label        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_token_by_user ON api_token (user_id);

CREATE TABLE care_assignment (
    patient_key  TEXT NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES app_user (user_id),
    assigned_at  BIGINT NOT NULL,
    assigned_by  TEXT NOT NULL,
    ended_at     BIGINT,
    PRIMARY KEY (patient_key, user_id)
);
CREATE INDEX care_assignment_by_user ON care_assignment (user_id);

CREATE TABLE caregiver_grant (
    patient_key  TEXT NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES app_user (user_id),
    can_write    BOOLEAN NOT NULL DEFAULT false,
    granted_at   BIGINT NOT NULL,
    granted_by   TEXT NOT NULL,
    revoked_at   BIGINT,
    PRIMARY KEY (patient_key, user_id)
);
CREATE INDEX caregiver_grant_by_user ON caregiver_grant (user_id);

CREATE TABLE break_glass (
    break_glass_id BIGSERIAL PRIMARY KEY,
    patient_key  TEXT NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES app_user (user_id),
    reason       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    reviewed_by  BIGINT REFERENCES app_user (user_id),
    reviewed_at  BIGINT,
    review_note  TEXT
);
CREATE INDEX break_glass_by_user ON break_glass (user_id, patient_key);

-- Append-only and hash-chained; appends are serialised by a transaction-level advisory lock
-- (see pg_access.rs) so that each record links to the one committed before it.
CREATE TABLE audit_event (
    seq           BIGINT PRIMARY KEY,
    recorded_at   BIGINT NOT NULL,
    actor_user_id BIGINT,
    actor         TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    patient_key   TEXT,
    entities      TEXT NOT NULL,
    source        TEXT NOT NULL,
    basis         TEXT NOT NULL,
    purpose       TEXT,
    flagged       BOOLEAN NOT NULL,
    detail        TEXT NOT NULL,
    prev_hash     BYTEA NOT NULL,
    hash          BYTEA NOT NULL
);
CREATE INDEX audit_event_by_patient ON audit_event (patient_key, seq) WHERE patient_key IS NOT NULL;
CREATE INDEX audit_event_by_actor ON audit_event (actor_user_id, seq);
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$;
CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
