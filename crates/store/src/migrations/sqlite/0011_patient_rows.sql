-- Rapport schema 11: a patient's record read from one index. The alert evaluator reads every
-- patient's compartment (the sweep: everyone, every 15 minutes); with the patient key alone in the
-- index each resource cost a lookup of its `resource` row and another of its version's key. The
-- index now carries the type, the tombstone flag and the current version's row, so a record is one
-- range of this index and one rowid lookup per version (a patient's versions are written
-- together, so those are near each other).
DROP INDEX resource_by_patient;
CREATE INDEX resource_by_patient ON resource (patient_key, resource_type, deleted, vrow) WHERE patient_key IS NOT NULL;
