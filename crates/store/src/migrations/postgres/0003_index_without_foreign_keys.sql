-- Rapport schema 3 (PostgreSQL): nothing to change. The SQLite twin of this migration removes
-- the index tables' foreign keys to search_param; the PostgreSQL index tables never had them
-- (they name parameters by code). Kept so that both backends count the same schema versions.
SELECT 1;
