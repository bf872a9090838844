-- Version 11: command results too large for one message arrive in parts (a triage package, a
-- large live query answer). Each acknowledged part is kept here until the last one arrives and
-- the command completes with the joined result, which removes them.
CREATE TABLE IF NOT EXISTS result_parts (
    command_id  TEXT NOT NULL,
    part        INTEGER NOT NULL,
    parts       INTEGER NOT NULL,
    body        BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (command_id, part)
) WITHOUT ROWID;
