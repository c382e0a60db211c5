-- Rapport schema 8 (SQLite): date index rows are also found by their version row.
--
-- Why: a search is driven by its most selective clause (a patient's references, a code) and its
-- other clauses are checked per candidate (query_sql.rs, `search`). References and tokens with a
-- system are point lookups on their primary keys; a date criterion such as `date=ge2015-01-01`
-- is not (its key starts with the parameter and the date), so without this index checking it
-- meant reading every date row of the parameter since 2015. The same index gives `_sort=date` its
-- values per candidate. Date rows are about a tenth of the index rows, so the import pays little.
CREATE INDEX idx_date_by_row ON idx_date (vrow, param, start_ms, end_ms);
