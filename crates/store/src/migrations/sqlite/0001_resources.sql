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

-- Search index (FHIR R4 search.html), rows of the current version only. Keyed first by the
-- version row that wrote them (`vrow` = resource_version.vrow), which only grows: inserts append
-- at the right edge of the B-tree, and replacing a resource's rows is a range delete. Rows are
-- kept narrow (parameter number, no repeated resource type or id: the id is one rowid lookup
-- away) because their width is what a bulk import pays for. A second index serves searches.
CREATE TABLE idx_token (
    vrow          INTEGER NOT NULL,
    param         INTEGER NOT NULL REFERENCES search_param (param),
    system        TEXT NOT NULL,    -- '' when the value has no system
    code          TEXT NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (vrow, param, system, code)
) WITHOUT ROWID;
CREATE INDEX idx_token_search ON idx_token (param, code, system);

CREATE TABLE idx_string (
    vrow          INTEGER NOT NULL,
    param         INTEGER NOT NULL REFERENCES search_param (param),
    value         TEXT NOT NULL,    -- lower case, accents removed
    patient_key   TEXT,
    PRIMARY KEY (vrow, param, value)
) WITHOUT ROWID;
CREATE INDEX idx_string_search ON idx_string (param, value);

CREATE TABLE idx_date (
    vrow          INTEGER NOT NULL,
    param         INTEGER NOT NULL REFERENCES search_param (param),
    start_ms      INTEGER NOT NULL, -- the value's precision as a half-open range [start, end)
    end_ms        INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (vrow, param, start_ms, end_ms)
) WITHOUT ROWID;
CREATE INDEX idx_date_search ON idx_date (param, start_ms, end_ms);

CREATE TABLE idx_reference (
    vrow          INTEGER NOT NULL,
    param         INTEGER NOT NULL REFERENCES search_param (param),
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (vrow, param, target_type, target_id)
) WITHOUT ROWID;
CREATE INDEX idx_reference_search ON idx_reference (target_id, target_type, param);

CREATE TABLE idx_quantity (
    vrow          INTEGER NOT NULL,
    param         INTEGER NOT NULL REFERENCES search_param (param),
    value         REAL NOT NULL,
    system        TEXT NOT NULL,
    code          TEXT NOT NULL,
    unit          TEXT NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (vrow, param, system, code, value, unit)
) WITHOUT ROWID;
CREATE INDEX idx_quantity_search ON idx_quantity (param, code, value);
