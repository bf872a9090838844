-- The hunting index's terms as one b-tree keyed the way searches read them (WITHOUT ROWID),
-- instead of a row table plus a unique index that repeated every column of the key: each
-- indexed value is now written once. The endpoint column went with it: searches take it
-- from the event.
CREATE TABLE hunt_terms_clustered (
    kind  TEXT NOT NULL,      -- hash, name, path, ip, domain, user
    value TEXT NOT NULL,      -- lower case for name, path, domain, user
    time  INTEGER NOT NULL,   -- the event's time (ms)
    seq   INTEGER NOT NULL,   -- the event's position in the log
    PRIMARY KEY (kind, value, time, seq)
) WITHOUT ROWID;
INSERT OR IGNORE INTO hunt_terms_clustered (kind, value, time, seq)
SELECT kind, value, time, seq FROM hunt_terms;
DROP TABLE hunt_terms;
ALTER TABLE hunt_terms_clustered RENAME TO hunt_terms;
