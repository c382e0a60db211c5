-- Rapport schema 10: care-team alerts (crates/store/src/alerts.rs, rules in crates/alerts).
-- One row per patient, rule and cause: an alert is raised once per cause, whatever arrives
-- again, and keeps its lifecycle (new → acknowledged → resolved, snoozed until a time, or
-- dismissed with a reason). Rows are never deleted: a resolved alert is history.
CREATE TABLE alert (
    alert_id      INTEGER PRIMARY KEY,
    patient_key   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    cause         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('new', 'acknowledged', 'snoozed', 'dismissed', 'resolved')),
    severity      INTEGER NOT NULL,
    title         TEXT NOT NULL,
    why           TEXT NOT NULL,
    focus         TEXT,
    due_at        INTEGER,
    raised_at     INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    snoozed_until INTEGER,
    reason        TEXT,
    assigned_to   INTEGER,
    resolved_at   INTEGER,
    UNIQUE (patient_key, rule, cause)
);
-- The Today page: the open alerts of a set of patients, most urgent first.
CREATE INDEX alert_open ON alert (patient_key, severity, due_at) WHERE status IN ('new', 'acknowledged', 'snoozed');

-- Patients whose data changed since their rules were last evaluated. Written in the same
-- transaction as the data (so a crash cannot lose a re-evaluation); `marks` counts the changes,
-- so an evaluation only clears the row if nothing arrived while it ran.
CREATE TABLE alert_dirty (
    patient_key TEXT PRIMARY KEY,
    marks       INTEGER NOT NULL
) WITHOUT ROWID;

-- Where the scheduled sweep of time-based rules stands (resumable after a restart).
CREATE TABLE alert_sweep (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    evaluated   INTEGER NOT NULL
);
