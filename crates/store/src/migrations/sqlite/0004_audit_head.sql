-- Rapport schema 4: the audit chain's head in a row of its own (the twin of the PostgreSQL
-- migration, which explains why; on SQLite the write transaction already holds the one write
-- lock, and the row serves `rapport audit verify`, which compares it with the chain's last
-- record to notice records removed from the end of the trail). seq 0 with no hash means "no
-- record yet". audit_event itself stays append-only; only this pointer moves.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB
);
INSERT INTO audit_head (id, seq, hash)
SELECT 1, COALESCE(MAX(seq), 0), (SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1)
FROM audit_event;
