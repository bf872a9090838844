-- The agent's durable outbound buffer. Events stay here until the server acks them.
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    uid       TEXT NOT NULL,
    class_uid INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    body      BLOB NOT NULL
);

-- Counters that must survive restarts (events evicted when the buffer was full).
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
