-- Rapport schema 5: versions by the time they were written, for type and system history
-- (FHIR R4 http.html#history: newest first, `_since`), which would otherwise scan every version.
-- The key grows with time, so inserts append at the right edge of this index.
CREATE INDEX resource_version_by_time ON resource_version (last_updated);
