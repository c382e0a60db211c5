-- Rapport schema 1 (SQLite): the versioned FHIR resource store and its search index.
-- Never edit a released migration: add a new file.
--
-- Every table that holds patient data carries `patient_key` (the Patient id the row belongs to,
-- NULL for resources outside the Patient compartment such as Practitioner), so that the PostgreSQL
-- twin of this schema can be distributed by patient.

-- Where data came from: one row per imported file, feed message or API request.
CREATE TABLE source (
    source_id   INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,      -- 'file', 'demo', 'api', 'hl7v2'...
    name        TEXT NOT NULL,      -- file name, feed name...
    received_at INTEGER NOT NULL,   -- milliseconds since the epoch, UTC
    sha256      TEXT                -- of the whole input, when there is one
);

-- The current state of every resource: one small row, the pointer to its latest version.
CREATE TABLE resource (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_key   TEXT,
    version       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL, -- ms since the epoch
    deleted       INTEGER NOT NULL, -- 1 when the latest version is a tombstone
    sort_key      TEXT,             -- list order (normalised "family given" for patients)
    vrow          INTEGER NOT NULL, -- resource_version.vrow of the current version
    index_rows    INTEGER NOT NULL, -- search index rows written for that version
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;
CREATE INDEX resource_by_patient ON resource (patient_key) WHERE patient_key IS NOT NULL;
CREATE INDEX resource_by_sort_key ON resource (resource_type, sort_key) WHERE sort_key IS NOT NULL;

-- Every version ever written, current or not (FHIR R4 http.html#history). A delete is a version
-- with deleted = 1 and empty content. Versions are never updated or removed.
CREATE TABLE resource_version (
    vrow          INTEGER PRIMARY KEY, -- the rowid: versions are appended in write order
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    patient_key   TEXT,
    last_updated  INTEGER NOT NULL,
    deleted       INTEGER NOT NULL,
    content_hash  BLOB NOT NULL,    -- SHA-256 of the content without versionId/lastUpdated
    content       TEXT NOT NULL,    -- the resource JSON exactly as served
    source_id     INTEGER REFERENCES source (source_id),
    source_entry  INTEGER           -- entry index or line within the source
);
CREATE UNIQUE INDEX resource_version_key ON resource_version (resource_type, id, version);

-- The search parameters that index rows refer to, by a small integer instead of repeating
-- "Observation" and "code" in every row. Filled at start-up from the generated table; a row,
-- once written, never changes, so the numbers are stable.
CREATE TABLE search_param (
    param         INTEGER PRIMARY KEY,
    resource_type TEXT NOT NULL,
    code          TEXT NOT NULL,
    UNIQUE (resource_type, code)
);

-- Search index (FHIR R4 search.html), rows of the current version only. Each table is one
-- B-tree whose key is the search key followed by `vrow` (resource_version.vrow, which leads to
-- the resource id): a search is a range scan, and an insert costs one seek. Rows are kept narrow
-- (a parameter number, no repeated resource type or id) because their width is what a bulk
-- import pays for. On update the store recomputes the old version's rows and deletes them by key;
-- `resource.index_rows` counts them so a mismatch falls back to a scan (see sqlite.rs).
CREATE TABLE idx_token (
    param         INTEGER NOT NULL REFERENCES search_param (param),
    code          TEXT NOT NULL,
    system        TEXT NOT NULL,    -- '' when the value has no system
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, code, system, vrow)
) WITHOUT ROWID;

CREATE TABLE idx_string (
    param         INTEGER NOT NULL REFERENCES search_param (param),
    value         TEXT NOT NULL,    -- lower case, accents removed
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, value, vrow)
) WITHOUT ROWID;

CREATE TABLE idx_date (
    param         INTEGER NOT NULL REFERENCES search_param (param),
    start_ms      INTEGER NOT NULL, -- the value's precision as a half-open range [start, end)
    end_ms        INTEGER NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, start_ms, end_ms, vrow)
) WITHOUT ROWID;

CREATE TABLE idx_reference (
    target_id     TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    param         INTEGER NOT NULL REFERENCES search_param (param),
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (target_id, target_type, param, vrow)
) WITHOUT ROWID;

CREATE TABLE idx_quantity (
    param         INTEGER NOT NULL REFERENCES search_param (param),
    code          TEXT NOT NULL,
    value         REAL NOT NULL,
    system        TEXT NOT NULL,
    unit          TEXT NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, code, value, system, unit, vrow)
) WITHOUT ROWID;
