-- Rapport schema 4: the audit chain's head in a row of its own.
--
-- An append must link to the record committed just before it. Appends used to take an advisory
-- lock and then read the newest audit_event row: two statements, because under READ COMMITTED a
-- statement's snapshot is taken before any lock it acquires. A `SELECT … FOR UPDATE` of this one
-- row both waits for the previous appender and, once it has committed, returns the row as that
-- appender left it (PostgreSQL re-reads a locked row that changed), so one statement suffices.
--
-- The head also lets `rapport audit verify` notice records removed from the end of the trail,
-- which a hash chain alone cannot. seq 0 with no hash means "no record yet" (the genesis hash).
-- audit_event itself stays append-only; only this pointer moves.
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA
);
INSERT INTO audit_head (id, seq, hash)
SELECT 1, COALESCE(MAX(seq), 0), (SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1)
FROM audit_event;
