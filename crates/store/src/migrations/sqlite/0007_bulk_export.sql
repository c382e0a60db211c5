-- Rapport schema 7: FHIR Bulk Data export jobs (https://hl7.org/fhir/uv/bulkdata/export.html).
-- A job is the request, who made it and where it stands; its NDJSON output lives in files in the
-- data directory, not here, so this table holds no patient data (and needs no patient_key).
CREATE TABLE export_job (
    job_id           TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES app_user (user_id),
    request          TEXT NOT NULL,   -- the kick-off URL, as the manifest repeats it
    status           TEXT NOT NULL,   -- running, done, failed, cancelled
    transaction_time INTEGER NOT NULL,   -- ms: the data exported is as of this moment
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    error            TEXT,            -- why it failed; never patient data
    outputs          TEXT             -- JSON [{"type", "count"}] once done
);
CREATE INDEX export_job_by_user ON export_job (user_id, created_at);
