-- Version 10: the hunting index, filled from the event log by its own durable consumer (off
-- the ingest path): one row per searchable value of an event, and the command lines in a
-- trigram full-text index for substring search.
CREATE TABLE IF NOT EXISTS hunt_terms (
    kind      TEXT NOT NULL,      -- hash, name, path, ip, domain, user
    value     TEXT NOT NULL,      -- lower case for name, path, domain, user
    seq       INTEGER NOT NULL,   -- the event's position in the log
    sensor_id TEXT NOT NULL,
    time      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hunt_terms_lookup ON hunt_terms (kind, value, time);

CREATE VIRTUAL TABLE IF NOT EXISTS hunt_cmdlines USING fts5(cmd_line, tokenize = 'trigram');
