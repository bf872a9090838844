-- Version 14: command lines repeat across events and hosts (services, cron jobs, scripts):
-- keep each distinct one once, with the trigram index, and point every event at it. Indexing
-- every event's command line in full was the hunting indexer's largest cost, paid under the
-- write lock the event writer waits for.
CREATE TABLE IF NOT EXISTS hunt_cmdline_texts (
    id       INTEGER PRIMARY KEY,
    cmd_line TEXT NOT NULL UNIQUE
);
-- Which text each event ran (`seq` is the event's position in the log).
CREATE TABLE IF NOT EXISTS hunt_cmdline_refs (
    seq     INTEGER PRIMARY KEY,
    text_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hunt_cmdline_refs_text ON hunt_cmdline_refs (text_id, seq);
-- The trigram index over the distinct texts (rowid = text id), kept by the indexer.
CREATE VIRTUAL TABLE IF NOT EXISTS hunt_cmdline_trigrams USING fts5(
    cmd_line, content = 'hunt_cmdline_texts', content_rowid = 'id', tokenize = 'trigram'
);

INSERT OR IGNORE INTO hunt_cmdline_texts (cmd_line) SELECT cmd_line FROM hunt_cmdlines;
INSERT OR REPLACE INTO hunt_cmdline_refs (seq, text_id)
SELECT c.rowid, x.id FROM hunt_cmdlines c JOIN hunt_cmdline_texts x ON x.cmd_line = c.cmd_line;
INSERT INTO hunt_cmdline_trigrams (hunt_cmdline_trigrams) VALUES ('rebuild');
DROP TABLE hunt_cmdlines;
