-- Command lines repeat across events and hosts (services, cron jobs, scripts): keep each
-- distinct one once, with the trigram index, and map every event to it. The trigram index was
-- the largest single cost of ingest on this store (one GIN entry set per event).
CREATE TABLE hunt_cmdline_texts (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- md5 of the text: a btree entry cannot hold a long command line itself.
    digest   text COLLATE "C" NOT NULL UNIQUE,
    cmd_line text NOT NULL
);
CREATE INDEX hunt_cmdline_texts_trgm ON hunt_cmdline_texts USING gin (cmd_line gin_trgm_ops);

INSERT INTO hunt_cmdline_texts (digest, cmd_line)
SELECT DISTINCT ON (md5(cmd_line)) md5(cmd_line), cmd_line FROM hunt_cmdlines;

ALTER TABLE hunt_cmdlines ADD COLUMN text_id bigint;
UPDATE hunt_cmdlines c SET text_id = x.id
FROM hunt_cmdline_texts x WHERE x.digest = md5(c.cmd_line);
DROP INDEX hunt_cmdlines_trgm;
ALTER TABLE hunt_cmdlines DROP COLUMN cmd_line;
ALTER TABLE hunt_cmdlines ALTER COLUMN text_id SET NOT NULL;
CREATE INDEX hunt_cmdlines_text ON hunt_cmdlines (text_id, seq);
