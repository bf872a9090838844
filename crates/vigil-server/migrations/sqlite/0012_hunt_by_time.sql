-- Version 12: the hunting index in the order searches read it. A search walks one term's rows
-- newest first and stops at its limit, instead of collecting and sorting every match; the
-- other terms of the search are checked by exact lookups of (kind, value, time, seq).
DELETE FROM hunt_terms WHERE rowid NOT IN (
    SELECT MIN(rowid) FROM hunt_terms GROUP BY kind, value, time, seq
);
CREATE UNIQUE INDEX IF NOT EXISTS hunt_terms_by_time ON hunt_terms (kind, value, time, seq);
DROP INDEX IF EXISTS hunt_terms_lookup;
