-- Rapport schema 8 (PostgreSQL): nothing to change. The SQLite twin indexes date rows by version
-- row so that a search can check a candidate's dates directly; the PostgreSQL index tables are
-- keyed by resource first already. Kept so that both backends count the same schema versions.
SELECT 1;
