-- Rapport schema 11: a patient's record read from one index. The alert evaluator reads every
-- patient's compartment (the sweep: everyone, every 15 minutes); the index now carries the type,
-- id, version and tombstone flag, so the current versions of a patient's resources (of the types
-- asked for) are found by an index-only scan before their content is read.
DROP INDEX resource_by_patient;
CREATE INDEX resource_by_patient ON resource (patient_key, resource_type) INCLUDE (id, version, deleted) WHERE patient_key IS NOT NULL;
