-- Rapport schema 10 (PostgreSQL): care-team alerts (crates/store/src/alerts.rs, rules in
-- crates/alerts). The twin of the SQLite migration, which explains the tables. Keys lead with
-- patient_key so the tables can be distributed by patient (Citus) with the resource tables.
CREATE TABLE alert (
    alert_id      BIGINT GENERATED ALWAYS AS IDENTITY,
    patient_key   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    cause         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('new', 'acknowledged', 'snoozed', 'dismissed', 'resolved')),
    severity      INTEGER NOT NULL,
    title         TEXT NOT NULL,
    why           TEXT NOT NULL,
    focus         TEXT,
    due_at        BIGINT,
    raised_at     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    snoozed_until BIGINT,
    reason        TEXT,
    assigned_to   BIGINT,
    resolved_at   BIGINT,
    PRIMARY KEY (patient_key, alert_id),
    UNIQUE (patient_key, rule, cause)
);
CREATE INDEX alert_by_id ON alert (alert_id);
CREATE INDEX alert_open ON alert (patient_key, severity, due_at) WHERE status IN ('new', 'acknowledged', 'snoozed');

CREATE TABLE alert_dirty (
    patient_key TEXT PRIMARY KEY,
    marks       BIGINT NOT NULL
);

CREATE TABLE alert_sweep (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    evaluated   BIGINT NOT NULL
);
