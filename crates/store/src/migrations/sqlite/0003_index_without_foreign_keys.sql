-- Rapport schema 3 (SQLite): the five search index tables without their foreign keys to
-- search_param. Never edit a released migration: add a new file.
--
-- Why: the index rows' `param` numbers are assigned by the store itself at start-up from the
-- generated search-parameter table (sqlite.rs, load_param_ids), and a row with an unknown
-- parameter is refused in code before it is written (StoreError::UnknownParameter). The foreign
-- key re-checked that on every one of the ~11 index rows per resource and cost about a quarter of
-- the index inserts of an import (BENCHMARKS.md). The PostgreSQL schema never had these keys.
-- SQLite cannot drop a constraint, so each table is rebuilt with the same columns and key.

CREATE TABLE idx_token_new (
    param         INTEGER NOT NULL,
    code          TEXT NOT NULL,
    system        TEXT NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, code, system, vrow)
) WITHOUT ROWID;
INSERT INTO idx_token_new SELECT param, code, system, vrow, patient_key FROM idx_token;
DROP TABLE idx_token;
ALTER TABLE idx_token_new RENAME TO idx_token;

CREATE TABLE idx_string_new (
    param         INTEGER NOT NULL,
    value         TEXT NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, value, vrow)
) WITHOUT ROWID;
INSERT INTO idx_string_new SELECT param, value, vrow, patient_key FROM idx_string;
DROP TABLE idx_string;
ALTER TABLE idx_string_new RENAME TO idx_string;

CREATE TABLE idx_date_new (
    param         INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, start_ms, end_ms, vrow)
) WITHOUT ROWID;
INSERT INTO idx_date_new SELECT param, start_ms, end_ms, vrow, patient_key FROM idx_date;
DROP TABLE idx_date;
ALTER TABLE idx_date_new RENAME TO idx_date;

CREATE TABLE idx_reference_new (
    target_id     TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    param         INTEGER NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (target_id, target_type, param, vrow)
) WITHOUT ROWID;
INSERT INTO idx_reference_new SELECT target_id, target_type, param, vrow, patient_key FROM idx_reference;
DROP TABLE idx_reference;
ALTER TABLE idx_reference_new RENAME TO idx_reference;

CREATE TABLE idx_quantity_new (
    param         INTEGER NOT NULL,
    code          TEXT NOT NULL,
    value         REAL NOT NULL,
    system        TEXT NOT NULL,
    unit          TEXT NOT NULL,
    vrow          INTEGER NOT NULL,
    patient_key   TEXT,
    PRIMARY KEY (param, code, value, system, unit, vrow)
) WITHOUT ROWID;
INSERT INTO idx_quantity_new SELECT param, code, value, system, unit, vrow, patient_key FROM idx_quantity;
DROP TABLE idx_quantity;
ALTER TABLE idx_quantity_new RENAME TO idx_quantity;
