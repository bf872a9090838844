-- The priority lane: findings the agent raised and command results, sent ahead of the events
-- table and deleted only once the server acks them.
CREATE TABLE IF NOT EXISTS priority (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                  -- 'finding' (OCSF 2004 JSON) or 'result'
    uid  TEXT NOT NULL,                  -- finding uid or command id
    time INTEGER NOT NULL,
    body BLOB NOT NULL
);

-- Every command the agent carried out, so a redelivered command is never run twice: its
-- recorded result is sent again instead.
CREATE TABLE IF NOT EXISTS executed (
    id        TEXT PRIMARY KEY,
    succeeded INTEGER NOT NULL,
    result    BLOB NOT NULL,
    time      INTEGER NOT NULL
);
